//! The raw sender of `baseline`: one pinned thread that plays a server with
//! no server logic. It accepts the bench's connections, answers each
//! upgrade with a fixed 101, then writes one pre-encoded frame to every
//! socket in turn with one nonblocking `send(2)` per delivery (or per
//! `--batch` frames): no parsing, no routing, no queues, no io_uring. Its own thread CPU
//! time (getrusage RUSAGE_THREAD) over the measured window is the cost
//! being measured; nothing else runs on this thread.
//!
//! `handshake` gets the sockets ready, `sweep` is the measured send loop,
//! `measure` the CPU time and counts. What does not live here: the
//! receiving side (the bench's normal mio loops, driven by `baseline`) and
//! the report.

mod handshake;
mod measure;
mod sweep;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use handshake::listen;
pub use measure::{per, thread_cpu, Counts, CpuTime, WindowStats};
use sweep::Sweep;

use crate::driver::{phase, Shared};

/// Where the window stands; receivers read it to sample their own CPU time
/// at the same moments as the sender.
pub mod window {
    /// Sending has not started, or is warming up.
    pub const BEFORE: u8 = 0;
    /// The measured window is open.
    pub const OPEN: u8 = 1;
    /// The measured window has closed.
    pub const CLOSED: u8 = 2;
}

/// State the sender shares with the receivers and the main thread.
#[derive(Default)]
pub struct SenderShared {
    /// [`window`] state, written by the sender only.
    pub window: AtomicU8,
    /// Complete frames sent in total (warm-up and end included), set once sending is done.
    pub sent_total: AtomicU64,
    /// Set by the sender when it has stopped sending, on every exit path.
    pub done: AtomicBool,
    /// Set by the main thread once the receivers have closed: the sender may drop its sockets.
    pub release: AtomicBool,
}

/// What the sender thread is told to do.
pub struct SenderPlan {
    /// CPU to pin the sender to.
    pub cpu: usize,
    /// The listening socket the receivers connect to.
    pub listener: std::net::TcpListener,
    /// What one `send` writes: `batch` copies of the pre-encoded frame, back to back.
    pub frame: Arc<[u8]>,
    /// Frames (deliveries) in `frame`; 1 = one send per delivery.
    pub batch: u64,
    /// Deliveries per second; `None` = as fast as `send` returns.
    pub rate: Option<f64>,
    /// Sending before the window opens (not measured).
    pub warmup: Duration,
    /// The measured window.
    pub secs: Duration,
    /// The thread gives up and returns at this instant, whatever the phase.
    pub deadline: Instant,
}

/// Everything the sender thread reports.
#[derive(Debug, Default)]
pub struct SenderReport {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections whose upgrade was answered (the ones written to).
    pub upgraded: u64,
    /// The measured window.
    pub window: WindowStats,
    /// Every send, warm-up and the end included.
    pub total: Counts,
    /// Frames left half-written when the sender gave up on them.
    pub unfinished: u64,
    /// Failures by cause: handshakes, sends, pinning.
    pub errors: BTreeMap<String, u64>,
}

/// Starts the sender thread. It sets `ss.done` however it ends.
pub fn spawn(
    plan: SenderPlan,
    shared: Arc<Shared>,
    ss: Arc<SenderShared>,
) -> std::io::Result<std::thread::JoinHandle<Result<SenderReport, String>>> {
    std::thread::Builder::new()
        .name("bench-sender".into())
        .spawn(move || {
            let deadline = plan.deadline;
            let r = run(plan, &shared, &ss);
            // Also when sending never started, so receivers waiting on the close move on.
            ss.window.store(window::CLOSED, Ordering::Relaxed);
            ss.done.store(true, Ordering::Relaxed);
            if r.is_ok() {
                // Keep the sockets open until the receivers have closed theirs, so
                // they never see an EOF they would count as a failure.
                while !ss.release.load(Ordering::Relaxed) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            r.map(|(report, _sockets)| report)
        })
}

/// Pins, accepts and upgrades until the run starts, then sends.
fn run(
    plan: SenderPlan,
    shared: &Shared,
    ss: &SenderShared,
) -> Result<(SenderReport, Sweep), String> {
    let mut report = SenderReport::default();
    let cpu = plan.cpu;
    if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
        return Err(format!("could not pin the sender to CPU {cpu}"));
    }
    let streams =
        handshake::accept_and_upgrade(plan.listener, shared, ss, plan.deadline, &mut report)
            .map_err(|e| format!("sender accept loop: {e}"))?;
    report.upgraded = streams.len() as u64;
    let mut sweep = Sweep::new(streams, plan.frame, plan.batch);
    if report.upgraded == 0 || shared.phase() != phase::RUN {
        return Ok((report, sweep));
    }
    report.window = match plan.rate {
        None => sweep::send_max(&mut sweep, ss, plan.warmup, plan.secs),
        Some(rate) => sweep::send_paced(&mut sweep, ss, rate, plan.warmup, plan.secs),
    };
    ss.window.store(window::CLOSED, Ordering::Relaxed);
    report.unfinished = sweep.finish_partials(Duration::from_secs(2));
    report.total = sweep.counts;
    report.errors.append(&mut sweep.errors);
    ss.sent_total
        .store(sweep.counts.deliveries, Ordering::Relaxed);
    Ok((report, sweep))
}
