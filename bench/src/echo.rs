//! `echo`: round trips on /echo. Closed loop by default (each connection
//! sends its next message when the previous one returns); with `--rate`,
//! open loop on a fixed schedule, latency measured from each message's
//! intended send time so a stalled server cannot hide its stall
//! (coordinated-omission correction, as wrk2 does).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use serde_json::json;

use crate::driver::{phase, Conn, Shared, State, Workload};
use crate::report::{self, new_histogram};
use crate::run::{self, Common};

/// Options of `echo`.
#[derive(Debug, Clone, Args)]
pub struct EchoArgs {
    #[command(flatten)]
    pub common: Common,
    /// Connections.
    #[arg(short = 'c', long, default_value_t = 100)]
    pub connections: usize,
    /// Message size in bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10.0)]
    pub secs: f64,
    /// Total messages per second over all connections; 0 = closed loop.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
}

/// Per-connection round-trip state.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Intended send time of the message in flight.
    outstanding: Option<Instant>,
    /// Intended send time of the next message (rate mode).
    next_due: Option<Instant>,
}

struct Echo {
    slots: Vec<Slot>,
    payload: Vec<u8>,
    /// Per-connection interval in rate mode; `None` = closed loop.
    interval: Option<Duration>,
    phase: u8,
    hist: Histogram<u64>,
    sent: u64,
    received_in_run: u64,
    mismatched: u64,
    unexpected: u64,
    skipped_backlog: u64,
    shared: Arc<Shared>,
}

impl Echo {
    fn send(&mut self, local: usize, conn: &mut Conn, intended: Instant) {
        if conn.send_text(&self.payload) {
            self.slots[local].outstanding = Some(intended);
            self.sent += 1;
        } else {
            self.skipped_backlog += 1;
        }
    }
}

impl Workload for Echo {
    fn on_open(&mut self, _id: usize, _conn: &mut Conn, _now: Instant) {
        self.shared.ready.fetch_add(1, Ordering::Relaxed);
    }

    fn on_text(&mut self, id: usize, conn: &mut Conn, text: &[u8], now: Instant) {
        let Some(t0) = self.slots[id].outstanding.take() else {
            self.unexpected += 1;
            return;
        };
        if text != self.payload.as_slice() {
            self.mismatched += 1;
        }
        self.hist
            .saturating_record(now.saturating_duration_since(t0).as_nanos().max(1) as u64);
        if self.phase == phase::RUN {
            self.received_in_run += 1;
            if self.interval.is_none() {
                self.send(id, conn, Instant::now());
            }
        }
    }

    fn on_closed(&mut self, id: usize, _was_open: bool) {
        self.slots[id].outstanding = None;
    }

    fn tick(&mut self, conns: &mut [Conn], phase: u8, now: Instant) -> Option<Duration> {
        let entering_run = self.phase != phase::RUN && phase == phase::RUN;
        self.phase = phase;
        if phase != phase::RUN {
            return None;
        }
        // Closed loop: replies trigger the sends; a turn only has work as RUN begins.
        if self.interval.is_none() && !entering_run {
            return None;
        }
        let n = conns.len().max(1) as u32;
        let mut soonest: Option<Instant> = None;
        // Index loop: `send` borrows `self` while a connection is borrowed too.
        #[allow(clippy::needless_range_loop)]
        for i in 0..conns.len() {
            if conns[i].state != State::Open {
                continue;
            }
            match self.interval {
                None => {
                    if entering_run && self.slots[i].outstanding.is_none() {
                        self.send(i, &mut conns[i], now);
                    }
                }
                Some(iv) => {
                    // Stagger first sends so connections do not fire in lockstep.
                    let due = *self.slots[i]
                        .next_due
                        .get_or_insert(now + iv * i as u32 / n);
                    if self.slots[i].outstanding.is_none() && due <= now {
                        self.send(i, &mut conns[i], due);
                        self.slots[i].next_due = Some(due + iv);
                    }
                    let next = self.slots[i].next_due.unwrap_or(now);
                    soonest = Some(soonest.map_or(next, |s| s.min(next)));
                }
            }
        }
        soonest.map(|s| s.saturating_duration_since(now))
    }
}

/// Runs `echo`; returns the report's JSON and whether every check passed.
pub fn run(a: EchoArgs) -> Result<(serde_json::Value, bool), String> {
    let interval = (a.rate > 0.0).then(|| Duration::from_secs_f64(a.connections as f64 / a.rate));
    let payload: Vec<u8> = (0..a.size).map(|i| b'a' + (i % 26) as u8).collect();
    let budget = Duration::from_secs_f64(a.secs + 30.0);
    let running = run::start(&a.common, a.connections, budget, move |ids, shared| Echo {
        slots: vec![Slot::default(); ids.len()],
        payload: payload.clone(),
        interval,
        phase: phase::RAMP,
        hist: new_histogram(),
        sent: 0,
        received_in_run: 0,
        mismatched: 0,
        unexpected: 0,
        skipped_backlog: 0,
        shared: Arc::clone(shared),
    })?;
    let ramp = running.ramp(
        a.connections as u64,
        a.common.loops.ramp_timeout,
        "connecting",
    );
    let secs = running.run_for(a.secs);
    running.sleep(Duration::from_secs(2));
    let (ws, stats) = running.join()?;

    let mut hist = new_histogram();
    let (mut sent, mut recv, mut mism, mut unexp, mut skipped) = (0, 0, 0, 0, 0);
    for w in &ws {
        hist.add(&w.hist).map_err(|e| e.to_string())?;
        sent += w.sent;
        recv += w.received_in_run;
        mism += w.mismatched;
        unexp += w.unexpected;
        skipped += w.skipped_backlog;
    }
    let failures: u64 = stats.errors.values().sum();
    let ok = failures == 0 && mism == 0 && unexp == 0 && skipped == 0 && hist.len() == sent;
    let mode = match a.rate {
        r if r > 0.0 => format!("fixed rate {r:.0} msg/s (latency from intended send time)"),
        _ => "closed loop".into(),
    };
    let mut rows = vec![
        ("urls".to_string(), a.common.urls.join(" ")),
        a.common.auth_row(),
        a.common.compression_row(),
        a.common.encoding_row(),
        ("mode".into(), mode),
        (
            "connections".into(),
            format!(
                "{} requested, {} open at end",
                a.connections, stats.open_at_end
            ),
        ),
        ("message size".into(), format!("{} B", a.size)),
        ("ramp".into(), format!("{:.2}s", ramp.as_secs_f64())),
        ("measured".into(), format!("{secs:.2}s")),
        ("sent".into(), sent.to_string()),
        ("round trips/s".into(), format!("{:.0}", recv as f64 / secs)),
        ("answered / sent".into(), format!("{} / {sent}", hist.len())),
        ("mismatched echoes".into(), mism.to_string()),
        ("unexpected messages".into(), unexp.to_string()),
        ("sends skipped (write backlog)".into(), skipped.to_string()),
    ];
    rows.extend(report::latency_rows("round-trip", &hist));
    rows.extend(report::cause_rows("failures", &stats.errors));
    rows.extend(report::cause_rows("close frames", &stats.close_codes));
    rows.extend(run::save_outputs(
        &a.common,
        &format!("echo round trip, {} conns, {} B", a.connections, a.size),
        &hist,
    ));
    if !ok {
        rows.push((
            "RESULT".into(),
            "FAILED: see failures / unanswered / mismatched above".into(),
        ));
    }
    report::print_table(&mut std::io::stdout(), "echo", &rows).map_err(|e| e.to_string())?;
    let v = json!({
        "bench": "echo", "label": a.common.label, "urls": a.common.urls,
        "auth": a.common.auth_mode().label(),
        "compression": a.common.compression,
        "encoding": a.common.encoding.name(),
        "connections": a.connections, "size": a.size, "rate": a.rate, "secs": secs,
        "sent": sent, "answered": hist.len(), "round_trips_per_s": recv as f64 / secs,
        "mismatched": mism, "unexpected": unexp, "skipped_backlog": skipped,
        "latency": report::latency_json(&hist),
        "failures": stats.errors, "close_codes": stats.close_codes, "ok": ok,
    });
    Ok((v, ok))
}
