//! `baseline`: the floor under a server's per-delivery cost on this
//! kernel. A raw sender thread (`sender`), pinned where the server would
//! run, accepts N connections from the bench's usual receiving loops and
//! writes one pre-encoded frame to each in turn, one nonblocking `send`
//! per delivery, with no server logic at all. Its thread CPU time per
//! delivery is what a naive server cannot go below; compare.sh sets
//! corecast's server CPU per delivery against it.
//!
//! The frame is byte for byte what corecast sends a `fanout` subscriber for
//! a publish of `--size` bytes of data: an unmasked text frame holding
//! `{"type":"message","channel":"fanout-0","data":D}`, with D the stamp
//! object `fanout` publishes (padded to `--size` bytes). So `--size 64`
//! gives the wire bytes of compare.sh's fan-out runs.
//!
//! Receivers decode every frame (header checked by the codec, payload
//! compared with the expected bytes) and count them, so the report checks
//! that every delivery sent was received.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use crate::driver::{phase, Conn, LoopStats, Shared, Workload};
use crate::report;
use crate::run::{self, Common, CpuList, Loops};
use crate::sender::{self, per, thread_cpu, window, CpuTime, SenderPlan, SenderReport};
use crate::seq::{write_stamp, Stamp};
use crate::ws;

/// Options of `baseline`.
#[derive(Debug, Clone, Args)]
pub struct BaselineArgs {
    #[command(flatten)]
    pub loops: Loops,
    /// Connections (one delivery per connection per round).
    #[arg(long, default_value_t = 1000)]
    pub subs: usize,
    /// Size of the message's `data` in bytes, as `fanout --size`.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Deliveries per second, sent in bursts every 1 ms; 0 = as fast as send returns.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    pub secs: f64,
    /// Seconds of sending before the measured window opens.
    #[arg(long, default_value_t = 0.5)]
    pub warmup: f64,
    /// Seconds to wait after sending stops for the receivers to catch up.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// Frames per send: K copies back to back in one `send` to the same socket,
    /// as a server that coalesces a connection's queued messages would write them.
    #[arg(long, default_value_t = 1)]
    pub batch: u64,
    /// CPU the sender thread is pinned to (where compare.sh runs the server).
    #[arg(long, default_value = "0", value_parser = run::parse_cpu_list)]
    pub sender_cpu: CpuList,
    /// Free-form label copied into the JSON line.
    #[arg(long)]
    pub label: Option<String>,
}

/// Descriptors the process holds besides the connections (stdio, epoll, listener, ...).
const FD_RESERVE: u64 = 64;

/// Descriptors a run with `subs` connections needs: both ends live in this process.
pub fn fds_needed(subs: usize) -> u64 {
    2 * subs as u64 + FD_RESERVE
}

/// The frame corecast sends a fan-out subscriber for `size` bytes of data,
/// and the offset of its payload.
pub fn delivery_frame(size: usize) -> (Vec<u8>, usize) {
    let mut payload = br#"{"type":"message","channel":"fanout-0","data":"#.to_vec();
    let stamp = Stamp {
        publisher: 0,
        seq: 0,
        sent_ns: 0,
    };
    write_stamp(&mut payload, stamp, size);
    payload.push(b'}');
    let mut frame = Vec::with_capacity(payload.len() + 10);
    ws::encode_header(&mut frame, ws::OP_TEXT, payload.len(), false);
    let header = frame.len();
    frame.extend_from_slice(&payload);
    (frame, header)
}

/// Counters the receiving threads add to.
#[derive(Default)]
struct RecvShared {
    /// Frames received, flushed once per loop turn.
    received: AtomicU64,
    /// Threads that have sampled their CPU time at the window's close.
    closed_seen: AtomicU64,
}

/// One receiving thread: counts frames, checks them, samples its own CPU.
struct Receiver {
    expected: Arc<[u8]>,
    shared: Arc<Shared>,
    recv: Arc<RecvShared>,
    sender: Arc<sender::SenderShared>,
    pending: u64,
    received: u64,
    mismatched: u64,
    /// CPU time when the sender opened and closed its window.
    cpu_open: Option<CpuTime>,
    cpu_close: Option<CpuTime>,
}

impl Workload for Receiver {
    fn on_open(&mut self, _id: usize, _conn: &mut Conn, _now: Instant) {
        self.shared.ready.fetch_add(1, Ordering::Relaxed);
    }

    fn on_text(&mut self, _id: usize, _conn: &mut Conn, text: &[u8], _now: Instant) {
        self.received += 1;
        self.pending += 1;
        if text != &self.expected[..] {
            self.mismatched += 1;
        }
    }

    fn on_closed(&mut self, _id: usize, _was_open: bool) {}

    fn tick(&mut self, _conns: &mut [Conn], _phase: u8, _now: Instant) -> Option<Duration> {
        if self.pending > 0 {
            self.recv
                .received
                .fetch_add(std::mem::take(&mut self.pending), Ordering::Relaxed);
        }
        let w = self.sender.window.load(Ordering::Relaxed);
        if w != window::BEFORE && self.cpu_open.is_none() {
            self.cpu_open = Some(thread_cpu());
        }
        if w == window::CLOSED && self.cpu_close.is_none() {
            self.cpu_close = Some(thread_cpu());
            self.recv.closed_seen.fetch_add(1, Ordering::Relaxed);
        }
        None
    }
}

/// Runs `baseline`; returns the report's JSON and whether every check passed.
pub fn run(a: BaselineArgs) -> Result<(serde_json::Value, bool), String> {
    check_args(&a)?;
    let (frame, header) = delivery_frame(a.size);
    let expected: Arc<[u8]> = Arc::from(&frame[header..]);
    let (listener, addr) = sender::listen(a.subs).map_err(|e| format!("listen: {e}"))?;
    let common = Common {
        urls: vec![format!("ws://{addr}/ws")],
        loops: a.loops.clone(),
        hgrm: None,
        plot: None,
        label: a.label.clone(),
        // The other end is the bench's own sender, not corecast.
        jwt_hmac_secret: None,
        compression: false,
        encoding: crate::run::Encoding::Json,
    };
    let ss = Arc::new(sender::SenderShared::default());
    let recv = Arc::new(RecvShared::default());
    let budget = Duration::from_secs_f64(a.warmup + a.secs + a.drain + 30.0);
    let (ss2, recv2, exp2) = (Arc::clone(&ss), Arc::clone(&recv), Arc::clone(&expected));
    let running = run::start(&common, a.subs, budget, move |_ids, shared| Receiver {
        expected: Arc::clone(&exp2),
        shared: Arc::clone(shared),
        recv: Arc::clone(&recv2),
        sender: Arc::clone(&ss2),
        pending: 0,
        received: 0,
        mismatched: 0,
        cpu_open: None,
        cpu_close: None,
    })?;
    let plan = SenderPlan {
        cpu: a.sender_cpu.0[0],
        listener,
        frame: Arc::from(frame.repeat(a.batch as usize)),
        batch: a.batch,
        rate: (a.rate > 0.0).then_some(a.rate),
        warmup: Duration::from_secs_f64(a.warmup),
        secs: Duration::from_secs_f64(a.secs),
        deadline: running.deadline,
    };
    let sending = sender::spawn(plan, Arc::clone(&running.shared), Arc::clone(&ss))
        .map_err(|e| format!("spawn: {e}"))?;
    let ramp = running.ramp(a.subs as u64, a.loops.ramp_timeout, "connecting");
    running.set_phase(phase::RUN);
    while !ss.done.load(Ordering::Relaxed) && !running.finished() {
        running.sleep(Duration::from_millis(20));
        if Instant::now() >= running.deadline {
            break;
        }
    }
    running.set_phase(phase::DRAIN);
    let drain_until = Instant::now() + Duration::from_secs_f64(a.drain);
    // A thread idle in poll sees the window close up to one poll timeout late;
    // wait for that too, or its CPU would be unknown.
    let threads = a.loops.threads.max(1) as u64;
    let caught_up = || {
        recv.received.load(Ordering::Relaxed) >= ss.sent_total.load(Ordering::Relaxed)
            && recv.closed_seen.load(Ordering::Relaxed) >= threads
    };
    while !caught_up() && Instant::now() < drain_until && !running.finished() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let drained = recv.received.load(Ordering::Relaxed) >= ss.sent_total.load(Ordering::Relaxed);
    let (receivers, stats) = running.join()?;
    ss.release.store(true, Ordering::Relaxed);
    let sent = sending
        .join()
        .map_err(|_| "sender thread panicked".to_string())??;
    report_baseline(&a, &frame, ramp, drained, &sent, &receivers, stats)
}

fn check_args(a: &BaselineArgs) -> Result<(), String> {
    if a.subs == 0 || a.batch == 0 || a.secs <= 0.0 || a.rate < 0.0 || a.warmup < 0.0 {
        return Err(
            "--subs, --batch and --secs must be positive, --rate and --warmup not negative".into(),
        );
    }
    if a.sender_cpu.0.len() != 1 {
        return Err("--sender-cpu takes one CPU".into());
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: RLIMIT_NOFILE with a pointer to an rlimit owned by this frame.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if rc == 0 && fds_needed(a.subs) > lim.rlim_cur {
        return Err(format!(
            "--subs {} needs {} fds (both ends of every connection are in this process); \
             the open-files limit is {}",
            a.subs,
            fds_needed(a.subs),
            lim.rlim_cur
        ));
    }
    Ok(())
}

/// What the receiving threads counted, merged.
struct Received {
    frames: u64,
    mismatched: u64,
    /// CPU-seconds over the sender's window, summed over threads; `None` if a
    /// thread missed a window edge (it ended early).
    cpu: Option<f64>,
}

fn merge(receivers: &[Receiver]) -> Received {
    let mut r = Received {
        frames: 0,
        mismatched: 0,
        cpu: Some(0.0),
    };
    for w in receivers {
        r.frames += w.received;
        r.mismatched += w.mismatched;
        r.cpu = match (r.cpu, w.cpu_open, w.cpu_close) {
            (Some(sum), Some(a), Some(b)) => Some(sum + (b - a).total()),
            _ => None,
        };
    }
    r
}

fn report_baseline(
    a: &BaselineArgs,
    frame: &[u8],
    ramp: Duration,
    drained: bool,
    s: &SenderReport,
    receivers: &[Receiver],
    stats: LoopStats,
) -> Result<(serde_json::Value, bool), String> {
    let r = merge(receivers);
    let w = &s.window;
    let lost = s.total.deliveries.saturating_sub(r.frames);
    let extra = r.frames.saturating_sub(s.total.deliveries);
    let failures: u64 = stats.errors.values().sum::<u64>() + s.errors.values().sum::<u64>();
    let ok = lost == 0
        && extra == 0
        && r.mismatched == 0
        && failures == 0
        && s.unfinished == 0
        && s.upgraded == a.subs as u64
        && w.counts.deliveries > 0;
    let recv_cpu = r.cpu.map(|c| per(c, w.secs));
    let mode = match a.rate {
        x if x > 0.0 => format!("fixed rate {x:.0} deliveries/s, bursts every 1 ms"),
        _ => "max rate (send round-robin as fast as it returns)".into(),
    };
    let mut rows = vec![
        ("mode".to_string(), mode),
        (
            "connections".into(),
            format!(
                "{} requested, {} accepted, {} upgraded",
                a.subs, s.accepted, s.upgraded
            ),
        ),
        (
            "frame".into(),
            format!(
                "{} B on the wire (corecast's fan-out message for {} B of data), {} per send",
                frame.len(),
                a.size,
                a.batch
            ),
        ),
        (
            "placement".into(),
            format!(
                "sender CPU {}, receivers {} thread(s) on CPUs {}",
                a.sender_cpu.0[0],
                a.loops.threads,
                a.loops
                    .cpus
                    .as_ref()
                    .map_or("(affinity mask)".into(), |c| format!("{:?}", c.0))
            ),
        ),
        ("ramp".into(), format!("{:.2}s", ramp.as_secs_f64())),
        (
            "measured".into(),
            format!("{:.2}s after {:.1}s warm-up", w.secs, a.warmup),
        ),
        (
            "deliveries".into(),
            format!("{}  ({:.0}/s)", w.counts.deliveries, w.per_s()),
        ),
        (
            "sender CPU".into(),
            format!(
                "{:.3} s/s  (user {:.3}s, sys {:.3}s)",
                w.cpu_per_s(),
                w.cpu.user,
                w.cpu.sys
            ),
        ),
        (
            "sender CPU per delivery".into(),
            format!("{:.3} us", w.us_per_delivery()),
        ),
        (
            "send calls / EAGAIN / partial".into(),
            format!(
                "{} / {} / {}",
                w.counts.calls, w.counts.eagain, w.counts.partial
            ),
        ),
        (
            "receiver CPU".into(),
            recv_cpu.map_or("n/a (a receiver ended early)".into(), |c| {
                format!("{c:.3} s/s")
            }),
        ),
        (
            "sent / received (whole run)".into(),
            format!("{} / {}", s.total.deliveries, r.frames),
        ),
        (
            "drained".into(),
            if drained {
                "yes".into()
            } else {
                format!("NO, after {:.0}s", a.drain)
            },
        ),
        ("lost".into(), report::loud(lost)),
        ("mismatched frames".into(), report::loud(r.mismatched)),
        ("unfinished frames".into(), report::loud(s.unfinished)),
    ];
    rows.extend(report::cause_rows("sender failures", &s.errors));
    rows.extend(report::cause_rows("failures", &stats.errors));
    rows.extend(report::cause_rows("close frames", &stats.close_codes));
    if !ok {
        rows.push((
            "RESULT".into(),
            "FAILED: lost, mismatched or unfinished frames, or failures, see above".into(),
        ));
    }
    report::print_table(&mut std::io::stdout(), "baseline", &rows).map_err(|e| e.to_string())?;
    let v = json!({
        "bench": "baseline", "scenario": "baseline", "label": a.label,
        "subs": a.subs, "size": a.size, "frame_bytes": frame.len(), "batch": a.batch, "rate": a.rate,
        "sender_cpu": a.sender_cpu.0[0], "threads": a.loops.threads,
        "secs": w.secs, "warmup": a.warmup,
        "deliveries": w.counts.deliveries, "deliveries_per_s": w.per_s(),
        "sender_cpu_s_per_s": w.cpu_per_s(), "sender_user_s": w.cpu.user,
        "sender_sys_s": w.cpu.sys, "sender_us_per_delivery": w.us_per_delivery(),
        "receiver_cpu_s_per_s": recv_cpu,
        "send_calls": w.counts.calls, "eagain": w.counts.eagain, "partial": w.counts.partial,
        "eagain_total": s.total.eagain, "accepted": s.accepted, "upgraded": s.upgraded,
        "sent_total": s.total.deliveries, "received_total": r.frames, "drained": drained,
        "lost": lost, "extra": extra, "mismatched": r.mismatched, "unfinished": s.unfinished,
        "sender_failures": s.errors, "failures": stats.errors, "close_codes": stats.close_codes,
        "ok": ok,
    });
    Ok((v, ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_frame_is_corecasts_fanout_message() {
        let (frame, header) = delivery_frame(64);
        let (f, used) = ws::decode(&frame).unwrap().unwrap();
        assert_eq!(
            (f.opcode, f.fin, used, header),
            (ws::OP_TEXT, true, frame.len(), 2)
        );
        let v: serde_json::Value = serde_json::from_slice(f.payload).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["channel"], "fanout-0");
        assert_eq!(serde_json::to_vec(&v["data"]).unwrap().len(), 64);
        assert!(crate::seq::parse_stamp(f.payload).is_some());
    }

    #[test]
    fn delivery_frame_uses_the_16_bit_length_past_125() {
        let (frame, header) = delivery_frame(1000);
        assert_eq!((header, frame[1]), (4, 126));
        let (f, used) = ws::decode(&frame).unwrap().unwrap();
        assert_eq!((used, &frame[header..]), (frame.len(), f.payload));
    }

    #[test]
    fn both_ends_of_every_connection_count_against_the_fd_limit() {
        assert_eq!(fds_needed(1000), 2064);
        assert!(fds_needed(9_968) <= 20_000);
        assert!(fds_needed(9_969) > 20_000);
    }

    #[test]
    fn receiver_cpu_is_unknown_when_a_thread_missed_the_window() {
        let ss = Arc::new(sender::SenderShared::default());
        let mk = |open: Option<f64>, close: Option<f64>| Receiver {
            expected: Arc::from(&b"x"[..]),
            shared: Arc::new(Shared::default()),
            recv: Arc::new(RecvShared::default()),
            sender: Arc::clone(&ss),
            pending: 0,
            received: 3,
            mismatched: 0,
            cpu_open: open.map(|s| CpuTime { user: s, sys: 0.0 }),
            cpu_close: close.map(|s| CpuTime { user: s, sys: 0.0 }),
        };
        let r = merge(&[mk(Some(1.0), Some(1.5)), mk(Some(2.0), Some(2.25))]);
        assert_eq!((r.frames, r.cpu), (6, Some(0.75)));
        assert_eq!(merge(&[mk(Some(1.0), None)]).cpu, None);
    }
}
