//! `soak`: a steady population with churn for a bounded time, reported
//! once per interval and checked at the end (issue 9). `workload` is the
//! per-thread client side, `server` the /proc and `/health` probes, and
//! `report` the interval lines, the final table and the verdict.
//!
//! Order of a run: baseline sample (no connections) → warm-up (the whole
//! population connects, subscribes, is published to, and leaves) → settle
//! and sample → the soak proper (ramp, then intervals of publishing and
//! churn, one line each) → everyone leaves → settle and sample → checks.

mod report;
mod server;
mod workload;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use crate::driver::phase;
use crate::run::{self, ns_since_epoch, Common, Running};
use report::{Outcome, Row, Warm};
use server::{Probe, Sample};
use workload::{Plan, Soak, SoakShared};

/// Options of `soak`.
#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    #[command(flatten)]
    pub common: Common,
    /// Connections held throughout, publishers included.
    #[arg(long, default_value_t = 15_000)]
    pub connections: usize,
    /// Publisher connections (never churned); each cycles over every channel.
    #[arg(long, default_value_t = 10)]
    pub publishers: usize,
    /// Channels; subscriber i joins channel i % channels.
    #[arg(long, default_value_t = 300)]
    pub channels: usize,
    /// Total publishes per second over all publishers.
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// Size of each publish's `data` in bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Length of the soak proper, in minutes (rounded to whole intervals).
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// Seconds per accounting interval; one report line each.
    #[arg(long, default_value_t = 60.0)]
    pub interval: f64,
    /// Subscribers reconnecting per minute, in percent of the subscribers.
    #[arg(long, default_value_t = 10.0)]
    pub churn: f64,
    /// Seconds the warm-up population is published to and churned before it
    /// leaves; 0 skips the warm-up (the RSS check then compares with the
    /// empty baseline).
    #[arg(long, default_value_t = 60.0)]
    pub warmup: f64,
    /// Seconds after an interval ends before it is accounted: deliveries still
    /// in flight then count as lost. Generous, as this box is shared: a
    /// delivery seconds late shows in the latency columns, not as a loss.
    #[arg(long, default_value_t = 15.0)]
    pub drain: f64,
    /// Server process(es) to watch; default: whatever listens on the URLs' ports.
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
    /// The server's admin listener (HOST:PORT), read for /health's connection count.
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// Seconds to wait, once every client has left, for the server to drop them all.
    #[arg(long, default_value_t = 60.0)]
    pub settle: f64,
    /// End check: server fds may differ from the empty baseline by at most this many.
    #[arg(long, default_value_t = 8)]
    pub fd_slack: u64,
    /// RSS checks' allowance in percent (at least 1 MiB): late peak vs early
    /// peak, and RSS after everyone left vs max(post-warm-up RSS, early peak).
    #[arg(long, default_value_t = 5.0)]
    pub rss_slack: f64,
}

/// Longest wait for every thread to account an interval.
const EVAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `soak`; returns the report's JSON and whether every check passed.
pub fn run(a: SoakArgs) -> Result<(serde_json::Value, bool), String> {
    validate(&a)?;
    // Before the warm-up, not only at the soak's own start a minute later.
    run::check_outputs(&a.common)?;
    let ports: Vec<u16> = a
        .common
        .urls
        .iter()
        .map(|u| crate::net::parse_url(u).map(|u| u.addr.port()))
        .collect::<Result<_, _>>()?;
    let probe = Probe::find(&ports, &a.server_pids, a.admin)?;
    let base = probe.sample();
    report::print_sample("baseline, no connections", &base);
    let warm = match a.warmup > 0.0 {
        true => Some(warm_up(&a, &probe, &base)?),
        false => None,
    };
    let n = intervals(&a);
    let sh = Arc::new(SoakShared::new(n, a.channels, true));
    let budget = Duration::from_secs_f64(n as f64 * a.interval + a.drain + 60.0);
    let running = start(&a, &sh, budget)?;
    let ramp = running.ramp(
        a.connections as u64,
        a.common.loops.ramp_timeout,
        "soak: connecting + subscribing",
    );
    let ready = running.shared.ready.load(Ordering::Relaxed);
    println!(
        "soak: {ready} of {} connections up and subscribed in {:.1}s; {n} intervals of {}s",
        a.connections,
        ramp.as_secs_f64(),
        a.interval
    );
    let rows = intervals_loop(&a, &running, &sh, &probe, n);
    let (ws, stats) = running.join()?;
    let (end, settled_in) = probe.settle(base.fds + a.fd_slack, Duration::from_secs_f64(a.settle));
    report::print_sample("end, every client gone", &end);
    let out = Outcome {
        base,
        warm,
        ready,
        ramp,
        rows,
        end,
        settled_in,
        stats,
        soaks: ws,
    };
    report::finish(&a, out)
}

fn validate(a: &SoakArgs) -> Result<(), String> {
    if a.publishers == 0 || a.channels == 0 || a.connections <= a.publishers {
        return Err(
            "need --publishers >= 1, --channels >= 1 and --connections > --publishers".into(),
        );
    }
    if a.connections - a.publishers < a.channels {
        return Err(
            "need at least one subscriber per channel (--connections - --publishers >= --channels)"
                .into(),
        );
    }
    if !(a.rate > 0.0 && a.interval > 0.0 && a.minutes > 0.0) {
        return Err("--rate, --interval and --minutes must be positive".into());
    }
    if !(0.0..a.interval).contains(&a.drain) {
        return Err("--drain must be shorter than --interval".into());
    }
    if !(0.0..=100.0).contains(&a.churn) {
        return Err("--churn is a percentage per minute, 0 to 100".into());
    }
    Ok(())
}

/// Whole intervals in `--minutes`, at least one.
fn intervals(a: &SoakArgs) -> usize {
    ((a.minutes * 60.0 / a.interval).round() as usize).max(1)
}

/// Starts the loop threads over the whole population.
fn start(a: &SoakArgs, sh: &Arc<SoakShared>, budget: Duration) -> Result<Running<Soak>, String> {
    let plan = Plan {
        publishers: a.publishers,
        size: a.size,
        publish_every: Duration::from_secs_f64(a.publishers as f64 / a.rate),
        churn_per_min: a.churn / 100.0,
    };
    let sh = Arc::clone(sh);
    run::start(&a.common, a.connections, budget, move |ids, shared| {
        Soak::new(ids, plan.clone(), Arc::clone(&sh), Arc::clone(shared))
    })
}

/// The whole population connects, subscribes, is published to and churned
/// for `--warmup` seconds, as in the soak, and leaves; then the server
/// settles. Every code path the soak takes has then allocated once.
fn warm_up(a: &SoakArgs, probe: &Probe, base: &Sample) -> Result<Warm, String> {
    let sh = Arc::new(SoakShared::new(0, a.channels, true));
    let running = start(a, &sh, Duration::from_secs_f64(a.warmup + 60.0))?;
    let ramp = running.ramp(
        a.connections as u64,
        a.common.loops.ramp_timeout,
        "warm-up: connecting + subscribing",
    );
    let ready = running.shared.ready.load(Ordering::Relaxed);
    running.run_for(a.warmup);
    let full = probe.sample();
    let (ws, stats) = running.join()?;
    let (after, settled_in) =
        probe.settle(base.fds + a.fd_slack, Duration::from_secs_f64(a.settle));
    report::print_sample("warm-up, whole population up", &full);
    report::print_sample("warm-up, every client gone", &after);
    Ok(Warm {
        ready,
        ramp,
        full,
        after,
        settled_in,
        published: ws.iter().map(|w| w.published).sum(),
        errors: stats.errors,
    })
}

/// Runs the intervals: publishing and churn, and one accounted line per
/// interval, `--drain` after it ends. The last interval ends the publishing.
fn intervals_loop(
    a: &SoakArgs,
    running: &Running<Soak>,
    sh: &SoakShared,
    probe: &Probe,
    n: usize,
) -> Vec<Row> {
    let threads = a.common.loops.threads.max(1) as u64;
    let every = Duration::from_secs_f64(a.interval);
    let t0 = Instant::now();
    sh.start_ns[1].store(ns_since_epoch(t0), Ordering::Relaxed);
    sh.interval.store(1, Ordering::Relaxed);
    running.set_phase(phase::RUN);
    report::print_header();
    let mut rows = Vec::with_capacity(n);
    for k in 1..=n {
        let end = t0 + every * k as u32;
        running.sleep(end.saturating_duration_since(Instant::now()));
        if k < n {
            sh.start_ns[k + 1].store(ns_since_epoch(Instant::now()), Ordering::Relaxed);
            sh.interval.store(k as u64 + 1, Ordering::Relaxed);
        } else {
            running.set_phase(phase::DRAIN);
        }
        running.sleep(Duration::from_secs_f64(a.drain));
        sh.eval_req.store(k as u64, Ordering::Release);
        let t = &sh.totals[k];
        let asked = Instant::now();
        while t.evaluated_by.load(Ordering::Acquire) < threads
            && asked.elapsed() < EVAL_TIMEOUT
            && !running.finished()
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let complete = t.evaluated_by.load(Ordering::Acquire) >= threads;
        let row = Row::read(k, t0.elapsed(), t, complete, probe.sample());
        report::print_row(&row);
        rows.push(row);
        if running.finished() {
            eprintln!("soak: every bench thread has stopped (deadline?); ending early");
            break;
        }
    }
    rows
}
