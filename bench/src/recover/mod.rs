//! `recover`: a reconnect storm on one history channel (issue 12). N
//! subscribers read `NS:recover` while publishers publish at a fixed rate
//! throughout; after `--warmup` every subscriber closes its socket at once,
//! reconnects and subscribes with `recover:true` from its last offset and
//! epoch. Measures each subscriber's time from its close to its
//! `recovered:true` reply and the storm's total, and checks every
//! subscriber's offsets across the reconnect: lost, duplicated, reordered
//! and `recovered:false` must all be 0. One storm per run, every wait
//! bounded: the run stops by itself.

mod workload;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use serde_json::json;

use crate::driver::{merge_counts, LoopStats};
use crate::report::{self, new_histogram};
use crate::run::{self, ns_since_epoch, Common};
use crate::seq::SeqReport;
use workload::{Plan, RecoverLoad, RecoverShared, DISCONNECT};

/// Options of `recover`.
#[derive(Debug, Clone, Args)]
pub struct RecoverArgs {
    #[command(flatten)]
    pub common: Common,
    /// Subscribers, all on the one history channel.
    #[arg(long, default_value_t = 1000)]
    pub subs: usize,
    /// Publisher connections, publishing throughout (never disconnected).
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Total publishes per second over all publishers.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Size of each publish's `data` in bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Seconds of publishing in all, the storm included.
    #[arg(long, default_value_t = 5.0)]
    pub secs: f64,
    /// Seconds of publishing before the storm (must be less than --secs).
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Seconds the storm may take, from the disconnect to the last reply,
    /// before the run gives up on the missing subscribers.
    #[arg(long, default_value_t = 10.0)]
    pub recover_timeout: f64,
    /// Seconds to wait after publishing stops for acks and deliveries.
    #[arg(long, default_value_t = 3.0)]
    pub drain: f64,
    /// The namespace of the channel (`NAMESPACE:recover`): the server's
    /// config must give it `history_size` and `history_ttl` (bench/history.toml).
    #[arg(long, default_value = "h")]
    pub namespace: String,
}

/// Runs `recover`; returns the report's JSON and whether every check passed.
pub fn run(a: RecoverArgs) -> Result<(serde_json::Value, bool), String> {
    check_args(&a)?;
    let sh = Arc::new(RecoverShared::default());
    let plan = Plan {
        publishers: a.publishers,
        channel: format!("{}:recover", a.namespace),
        size: a.size,
        publish_every: Duration::from_secs_f64(a.publishers as f64 / a.rate),
    };
    let total = a.subs + a.publishers;
    let budget = Duration::from_secs_f64(a.secs + a.recover_timeout + a.drain + 30.0);
    let sh2 = Arc::clone(&sh);
    let running = run::start(&a.common, total, budget, move |ids, shared| {
        RecoverLoad::new(ids, plan.clone(), Arc::clone(&sh2), Arc::clone(shared))
    })?;
    let ramp = running.ramp(
        total as u64,
        a.common.loops.ramp_timeout,
        "connecting + subscribing",
    );
    if let Some(e) = sh.no_history.get() {
        let _ = running.join();
        return Err(e.clone());
    }
    let ready = running.shared.ready.load(Ordering::Relaxed);
    running.set_phase(crate::driver::phase::RUN);
    let t0 = Instant::now();
    running.sleep(Duration::from_secs_f64(a.warmup));
    let storm_at = Instant::now();
    sh.storm_ns
        .store(ns_since_epoch(storm_at).max(1), Ordering::Relaxed);
    let storm_done = wait_for_storm(&running, &sh, a.subs as u64, a.recover_timeout);
    let rest = Duration::from_secs_f64(a.secs).saturating_sub(t0.elapsed());
    running.sleep(rest);
    running.set_phase(crate::driver::phase::DRAIN);
    let secs = t0.elapsed().as_secs_f64();
    let drained = drain(&running, &sh, a.drain);
    let (ws, stats) = running.join()?;
    let s = summarize(&ws, &sh, ns_since_epoch(storm_at));
    let facts = Facts {
        ramp,
        ready,
        secs,
        storm_done,
        drained,
    };
    report_recover(&a, &facts, &s, &stats)
}

/// Refuses option values that cannot make a run.
fn check_args(a: &RecoverArgs) -> Result<(), String> {
    if a.subs == 0 || a.publishers == 0 {
        return Err("--subs and --publishers must be at least 1".into());
    }
    if a.rate <= 0.0 {
        return Err("--rate must be above 0: publishing continues through the storm".into());
    }
    if !(a.warmup > 0.0 && a.warmup < a.secs) {
        return Err(format!(
            "--warmup {} must be above 0 and below --secs {}: the storm happens while publishing",
            a.warmup, a.secs
        ));
    }
    Ok(())
}

/// Waits until every subscriber answered its recovery, or the timeout;
/// true if all did.
fn wait_for_storm(
    running: &run::Running<RecoverLoad>,
    sh: &RecoverShared,
    subs: u64,
    timeout: f64,
) -> bool {
    let until = Instant::now() + Duration::from_secs_f64(timeout);
    loop {
        let answered =
            sh.recovered.load(Ordering::Relaxed) + sh.not_recovered.load(Ordering::Relaxed);
        if answered >= subs {
            return true;
        }
        if Instant::now() >= until || running.finished() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits, up to `secs`, for every publish to be acked and deliveries to
/// stop arriving (no new one for 300 ms); true if both happened.
fn drain(running: &run::Running<RecoverLoad>, sh: &RecoverShared, secs: f64) -> bool {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let quiet_for = Duration::from_millis(300);
    let (mut last, mut since) = (u64::MAX, Instant::now());
    while Instant::now() < until && !running.finished() {
        let delivered = sh.delivered.load(Ordering::Relaxed);
        if delivered != last {
            (last, since) = (delivered, Instant::now());
        }
        let acked = sh.acked.load(Ordering::Relaxed) >= sh.published.load(Ordering::Relaxed);
        if acked && since.elapsed() >= quiet_for {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// What the main thread saw of the run's timeline.
struct Facts {
    ramp: Duration,
    ready: u64,
    secs: f64,
    storm_done: bool,
    drained: bool,
}

/// Everything the threads counted, merged.
#[derive(Debug, Default)]
struct Summary {
    recovery: Option<Histogram<u64>>,
    replayed: Option<Histogram<u64>>,
    /// From the storm to the last `recovered:true` reply (ns).
    total_ns: u64,
    disconnected: u64,
    recovered: u64,
    not_recovered: u64,
    published: u64,
    acked: u64,
    top: u64,
    delivered: u64,
    offsets: SeqReport,
    reconnect_failures: u64,
    unexpected_closes: u64,
    skipped: u64,
    server_errors: std::collections::BTreeMap<String, u64>,
}

fn summarize(ws: &[RecoverLoad], sh: &RecoverShared, storm_ns: u64) -> Summary {
    let load = |x: &AtomicU64| x.load(Ordering::Relaxed);
    let top = load(&sh.top);
    let mut s = Summary {
        disconnected: load(&sh.disconnected),
        recovered: load(&sh.recovered),
        not_recovered: load(&sh.not_recovered),
        published: load(&sh.published),
        acked: load(&sh.acked),
        top,
        delivered: load(&sh.delivered),
        ..Summary::default()
    };
    let mut recovery = new_histogram();
    let mut replayed = Histogram::new(3).expect("valid histogram");
    for w in ws {
        let _ = recovery.add(&w.recovery);
        let _ = replayed.add(&w.replayed);
        s.total_ns = s.total_ns.max(w.last_recovered_ns.saturating_sub(storm_ns));
        for t in w.trackers() {
            s.offsets += t.finish(top);
        }
        s.reconnect_failures += w.reconnect_failures;
        s.unexpected_closes += w.unexpected_closes;
        s.skipped += w.skipped_backlog;
        merge_counts(&mut s.server_errors, &w.server_errors);
    }
    s.recovery = Some(recovery);
    s.replayed = Some(replayed);
    s
}

/// The checks a healthy run passes; each failure is one line saying which.
fn failed_checks(subs: usize, f: &Facts, s: &Summary, failures: u64) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            out.push(what);
        }
    };
    check(
        f.ready as usize >= subs,
        format!("only {} connections ready after the ramp", f.ready),
    );
    check(
        s.disconnected == subs as u64,
        format!("the storm disconnected {} of {subs}", s.disconnected),
    );
    check(
        f.storm_done && s.recovered == s.disconnected,
        format!("{} of {} recovered", s.recovered, s.disconnected),
    );
    check(
        s.not_recovered == 0,
        format!("{} recovered:false", s.not_recovered),
    );
    check(s.offsets.lost == 0, format!("{} lost", s.offsets.lost));
    check(
        s.offsets.duplicated == 0,
        format!("{} duplicated", s.offsets.duplicated),
    );
    check(
        s.offsets.reordered == 0,
        format!("{} reordered", s.offsets.reordered),
    );
    check(
        s.acked == s.published && f.drained,
        format!(
            "{} of {} publishes acked, drained: {}",
            s.acked, s.published, f.drained
        ),
    );
    check(
        failures == 0 && s.unexpected_closes == 0 && s.skipped == 0,
        format!(
            "{failures} failures, {} unexpected closes, {} sends skipped",
            s.unexpected_closes, s.skipped
        ),
    );
    check(
        s.server_errors.is_empty(),
        "unexpected server messages".into(),
    );
    out
}

fn report_recover(
    a: &RecoverArgs,
    f: &Facts,
    s: &Summary,
    stats: &LoopStats,
) -> Result<(serde_json::Value, bool), String> {
    // The storm's own closes are the bench's doing, not failures.
    let mut errors = stats.errors.clone();
    errors.remove(&format!("after open: {DISCONNECT}"));
    let failures: u64 = errors.values().sum();
    let failed = failed_checks(a.subs, f, s, failures);
    let ok = failed.is_empty();
    let recovery = s.recovery.clone().unwrap_or_else(new_histogram);
    let replayed = s
        .replayed
        .clone()
        .unwrap_or_else(|| Histogram::new(3).unwrap());
    let ms = |ns: u64| format!("{:.2} ms", ns as f64 / 1e6);
    let mut rows = vec![
        ("urls".to_string(), a.common.urls.join(" ")),
        a.common.auth_row(),
        ("history".into(), format!("on ({}:recover)", a.namespace)),
        (
            "subscribers / publishers".into(),
            format!("{} / {}", a.subs, a.publishers),
        ),
        (
            "publishing".into(),
            format!(
                "{:.0}/s, {} B data, {:.2}s (storm after {:.2}s)",
                a.rate, a.size, f.secs, a.warmup
            ),
        ),
        (
            "ramp (connect + subscribe)".into(),
            format!("{:.2}s", f.ramp.as_secs_f64()),
        ),
        ("disconnected together".into(), s.disconnected.to_string()),
        ("recovered:true".into(), s.recovered.to_string()),
        ("recovered:false".into(), report::loud(s.not_recovered)),
        (
            "storm total (disconnect to last recovered)".into(),
            ms(s.total_ns),
        ),
    ];
    rows.extend(report::latency_rows("recovery per subscriber", &recovery));
    rows.extend([
        (
            "replayed from history per subscriber".into(),
            format!("mean {:.1}, max {}", replayed.mean(), replayed.max()),
        ),
        (
            "published / acked / last offset".into(),
            format!("{} / {} / {}", s.published, s.acked, s.top),
        ),
        ("delivered".into(), s.delivered.to_string()),
        ("lost".into(), report::loud(s.offsets.lost)),
        ("duplicated".into(), report::loud(s.offsets.duplicated)),
        ("out of order".into(), report::loud(s.offsets.reordered)),
        (
            "reconnects retried".into(),
            s.reconnect_failures.to_string(),
        ),
        (
            "unexpected closes".into(),
            report::loud(s.unexpected_closes),
        ),
    ]);
    rows.extend(report::cause_rows("failures", &errors));
    rows.extend(report::cause_rows("close frames", &stats.close_codes));
    rows.extend(report::cause_rows("server messages", &s.server_errors));
    rows.extend(run::save_outputs(
        &a.common,
        "recovery per subscriber",
        &recovery,
    ));
    if !ok {
        rows.push(("RESULT".into(), format!("FAILED: {}", failed.join("; "))));
    }
    report::print_table(&mut std::io::stdout(), "recover", &rows).map_err(|e| e.to_string())?;
    let v = json!({
        "bench": "recover", "label": a.common.label, "urls": a.common.urls,
        "auth": a.common.auth_mode().label(), "history": "on",
        "channel": format!("{}:recover", a.namespace),
        "subs": a.subs, "publishers": a.publishers, "rate": a.rate, "size": a.size,
        "secs": f.secs, "warmup": a.warmup,
        "disconnected": s.disconnected, "recovered": s.recovered,
        "recovered_false": s.not_recovered,
        "storm_total_ms": s.total_ns as f64 / 1e6,
        "recovery": report::latency_json(&recovery),
        "replayed_mean": replayed.mean(), "replayed_max": replayed.max(),
        "published": s.published, "acked": s.acked, "last_offset": s.top,
        "delivered": s.delivered,
        "lost": s.offsets.lost, "duplicated": s.offsets.duplicated,
        "out_of_order": s.offsets.reordered,
        "reconnects_retried": s.reconnect_failures,
        "unexpected_closes": s.unexpected_closes, "skipped_backlog": s.skipped,
        "failures": errors, "close_codes": stats.close_codes,
        "server_messages": s.server_errors, "failed_checks": failed, "ok": ok,
    });
    Ok((v, ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> RecoverArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            a: RecoverArgs,
        }
        let mut argv = vec!["recover", "--url", "ws://127.0.0.1:1/ws"];
        argv.extend_from_slice(extra);
        <Cli as clap::Parser>::try_parse_from(argv).unwrap().a
    }

    fn healthy() -> (Facts, Summary) {
        let f = Facts {
            ramp: Duration::from_millis(100),
            ready: 11,
            secs: 5.0,
            storm_done: true,
            drained: true,
        };
        let s = Summary {
            disconnected: 10,
            recovered: 10,
            published: 500,
            acked: 500,
            top: 500,
            ..Summary::default()
        };
        (f, s)
    }

    #[test]
    fn options_that_cannot_make_a_storm_are_refused() {
        assert!(check_args(&args(&[])).is_ok());
        let e = check_args(&args(&["--warmup", "5", "--secs", "5"])).unwrap_err();
        assert!(e.contains("--warmup"), "{e}");
        assert!(check_args(&args(&["--rate", "0"])).is_err());
        assert!(check_args(&args(&["--subs", "0"])).is_err());
    }

    #[test]
    fn a_healthy_run_passes_every_check() {
        let (f, s) = healthy();
        assert!(failed_checks(10, &f, &s, 0).is_empty());
    }

    #[test]
    fn each_fault_fails_the_run_and_says_which() {
        type Spoil = fn(&mut Facts, &mut Summary);
        let cases: [(&str, Spoil); 7] = [
            ("recovered:false", |_, s| s.not_recovered = 1),
            ("lost", |_, s| s.offsets.lost = 2),
            ("duplicated", |_, s| s.offsets.duplicated = 1),
            ("reordered", |_, s| s.offsets.reordered = 1),
            ("9 of 10 recovered", |_, s| s.recovered = 9),
            ("acked", |_, s| s.acked = 499),
            ("unexpected closes", |_, s| s.unexpected_closes = 1),
        ];
        for (what, spoil) in cases {
            let (mut f, mut s) = healthy();
            spoil(&mut f, &mut s);
            let failed = failed_checks(10, &f, &s, 0);
            assert_eq!(failed.len(), 1, "{what}: {failed:?}");
            assert!(failed[0].contains(what), "{what}: {failed:?}");
        }
        let (mut f, s) = healthy();
        f.storm_done = false;
        assert!(
            !failed_checks(10, &f, &s, 0).is_empty(),
            "a timed-out storm fails"
        );
        let (f, s) = healthy();
        assert_eq!(failed_checks(10, &f, &s, 3).len(), 1, "connection failures");
    }
}
