//! The soak's output: one line per interval as it ends, the final table
//! with the end checks, and the JSON line. The checks and their
//! thresholds live here, in [`finish`].

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;

use super::server::Sample;
use super::workload::{IntervalTotals, Soak, CHURN_FIN, CHURN_RST};
use super::SoakArgs;
use crate::driver::{merge_counts, LoopStats, ABANDONED_UPGRADE, CLEAN_CLOSE};
use crate::report::{self as out, new_histogram};

/// What the warm-up saw.
pub struct Warm {
    /// Connections up and subscribed after its ramp.
    pub ready: u64,
    /// Its ramp's duration.
    pub ramp: Duration,
    /// The server with the whole population up.
    pub full: Sample,
    /// The server once every warm-up client had left: the RSS reference.
    pub after: Sample,
    /// Seconds the server took to drop the warm-up's clients.
    pub settled_in: f64,
    /// Publishes during the warm-up.
    pub published: u64,
    /// Failures and closes by cause (none is expected: no churn).
    pub errors: BTreeMap<String, u64>,
}

/// One interval's line.
#[derive(Debug, Clone)]
pub struct Row {
    /// Interval number, from 1.
    pub k: usize,
    /// Time since the first interval began, when the line was taken.
    pub elapsed: Duration,
    /// Subscribers accounted (up across the whole interval).
    pub subs_up: u64,
    /// Deliveries owed to them.
    pub expected: u64,
    /// Deliveries received.
    pub received: u64,
    /// Owed and not received.
    pub lost: u64,
    /// Received more than once.
    pub duplicated: u64,
    /// Received out of order.
    pub reordered: u64,
    /// Distinct arrivals beyond those owed.
    pub extra: u64,
    /// Churned: RST, clean close, FIN then abandoned handshake.
    pub churned: [u64; 3],
    /// Reconnects completed.
    pub reconnected: u64,
    /// Open connections that closed unasked.
    pub unexpected: u64,
    /// Connects or upgrades that failed.
    pub failed_connects: u64,
    /// p99 and max end-to-end latency (ns) of the deliveries published in the interval.
    pub latency: (u64, u64),
    /// Whether every thread accounted the interval in time.
    pub complete: bool,
    /// The server just after the interval was accounted.
    pub sample: Sample,
}

impl Row {
    /// Reads interval `k`'s totals.
    pub fn read(
        k: usize,
        elapsed: Duration,
        t: &IntervalTotals,
        complete: bool,
        sample: Sample,
    ) -> Row {
        let get = |x: &std::sync::atomic::AtomicU64| x.load(Ordering::Relaxed);
        let latency = match t.latency.lock().as_deref() {
            Ok(Some(h)) if !h.is_empty() => (h.value_at_quantile(0.99), h.max()),
            _ => (0, 0),
        };
        Row {
            k,
            elapsed,
            subs_up: get(&t.subs_up),
            expected: get(&t.expected),
            received: get(&t.received),
            lost: get(&t.lost),
            duplicated: get(&t.duplicated),
            reordered: get(&t.reordered),
            extra: get(&t.extra),
            churned: [get(&t.churned[0]), get(&t.churned[1]), get(&t.churned[2])],
            reconnected: get(&t.reconnected),
            unexpected: get(&t.unexpected_closes),
            failed_connects: get(&t.failed_connects),
            latency,
            complete,
            sample,
        }
    }
}

/// Everything a soak run produced, for [`finish`].
pub struct Outcome {
    /// The server before any connection.
    pub base: Sample,
    /// The warm-up, unless skipped.
    pub warm: Option<Warm>,
    /// Connections up and subscribed after the soak's ramp.
    pub ready: u64,
    /// The soak's ramp duration.
    pub ramp: Duration,
    /// One per interval.
    pub rows: Vec<Row>,
    /// The server once every client had left.
    pub end: Sample,
    /// Seconds it took to get there.
    pub settled_in: f64,
    /// The soak's failures and close frames by cause.
    pub stats: LoopStats,
    /// The threads' workloads (latency, server messages, publishes).
    pub soaks: Vec<Soak>,
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn conns_text(c: Option<u64>) -> String {
    c.map_or_else(|| "-".into(), |c| c.to_string())
}

/// One labelled server sample on its own line.
pub fn print_sample(label: &str, s: &Sample) {
    println!(
        "server {label}: rss {:.1} MiB, fds {}, connections {}",
        mib(s.rss),
        s.fds,
        conns_text(s.conns)
    );
}

/// The interval table's header.
pub fn print_header() {
    println!(
        "{:>4} {:>8} {:>8} {:>11} {:>11} {:>5} {:>4} {:>5} {:>17} {:>7} {:>6} {:>8} {:>9} {:>9} {:>8} {:>6} {:>6} {:>5}",
        "int", "elapsed", "subs-up", "expected", "received", "lost", "dup", "reord",
        "churn rst/cln/fin", "reconn", "unexp", "failconn", "p99", "max", "rss-MiB", "fds", "conns", "load"
    );
}

/// One interval's line.
pub fn print_row(r: &Row) {
    let churn = format!("{}/{}/{}", r.churned[0], r.churned[1], r.churned[2]);
    println!(
        "{:>4} {:>7.0}s {:>8} {:>11} {:>11} {:>5} {:>4} {:>5} {:>17} {:>7} {:>6} {:>8} {:>9} {:>9} {:>8.1} {:>6} {:>6} {:>5.1}{}",
        r.k,
        r.elapsed.as_secs_f64(),
        r.subs_up,
        r.expected,
        r.received,
        r.lost,
        r.duplicated,
        r.reordered,
        churn,
        r.reconnected,
        r.unexpected,
        r.failed_connects,
        out::fmt_us(r.latency.0 as f64 / out::NS_PER_US),
        out::fmt_us(r.latency.1 as f64 / out::NS_PER_US),
        mib(r.sample.rss),
        r.sample.fds,
        conns_text(r.sample.conns),
        r.sample.load,
        if r.complete { "" } else { "  (not every thread accounted in time)" }
    );
}

/// Failure causes the churn itself produces; any other cause is a failure.
fn churn_causes() -> [String; 4] {
    [
        format!("after open: {CHURN_RST}"),
        format!("after open: {CHURN_FIN}"),
        format!("after open: {CLEAN_CLOSE}"),
        ABANDONED_UPGRADE.to_string(),
    ]
}

/// Smallest RSS allowance: at a few thousand connections the server's RSS
/// is under 10 MiB, and 5% of it is less than what the allocator's own
/// page-granular growth moves by from one population to the next.
const RSS_FLOOR: u64 = 1 << 20;

/// Prints the final table and returns the JSON line and the verdict.
///
/// Thresholds: fds must come back to the empty baseline within
/// `--fd-slack` (8): every connection's fd must close, and the few extra
/// allowed are descriptors a server opens lazily once (an eventfd or timer
/// per shard, the admin connection still closing), not anything that
/// grows with the connections churned.
///
/// RSS is never compared with the empty baseline: glibc keeps freed heap in
/// its per-thread arenas, so RSS after clients leave stays at the high-water
/// mark of the busiest moment so far, and that moment depends on load (a
/// shared box's stalls queue messages). A leak, unlike a high-water mark,
/// grows with the connections served. So the two RSS checks are: the peak
/// over the last third of the interval ends may exceed the peak over the
/// first third by at most `--rss-slack` (5%, and at least [`RSS_FLOOR`]),
/// with a third of the run's reconnects in between; and the RSS once every
/// client has left may exceed the larger of the post-warm-up RSS and that
/// early peak by no more than the same allowance.
pub fn finish(a: &SoakArgs, o: Outcome) -> Result<(serde_json::Value, bool), String> {
    let mut hist = new_histogram();
    let mut server_msgs = BTreeMap::new();
    let (mut published, mut skipped) = (0, 0);
    for w in &o.soaks {
        let _ = hist.add(&w.hist);
        merge_counts(&mut server_msgs, &w.server_errors);
        published += w.published;
        skipped += w.skipped_backlog;
    }
    let sum = |f: fn(&Row) -> u64| o.rows.iter().map(f).sum::<u64>();
    let (lost, dup, reord, extra) = (
        sum(|r| r.lost),
        sum(|r| r.duplicated),
        sum(|r| r.reordered),
        sum(|r| r.extra),
    );
    let churned = [
        sum(|r| r.churned[0]),
        sum(|r| r.churned[1]),
        sum(|r| r.churned[2]),
    ];
    let expected_causes = churn_causes();
    let mut unexpected: BTreeMap<String, u64> = o
        .stats
        .errors
        .iter()
        .filter(|(c, _)| !expected_causes.contains(c))
        .map(|(c, n)| (c.clone(), *n))
        .collect();
    if let Some(w) = &o.warm {
        for (c, n) in w
            .errors
            .iter()
            .filter(|(c, _)| !expected_causes.contains(c))
        {
            *unexpected.entry(format!("warm-up: {c}")).or_default() += n;
        }
    }
    let allow = |r: u64| (r as f64 * (1.0 + a.rss_slack / 100.0)).max((r + RSS_FLOOR) as f64);
    let (early, late) = rss_thirds(&o.rows);
    let rss_ref = o
        .warm
        .as_ref()
        .map_or(o.base.rss, |w| w.after.rss)
        .max(early.peak);
    let n = super::intervals(a);
    let checks = [
        (
            "deliveries: 0 lost, 0 duplicated, 0 reordered, 0 extra",
            lost + dup + reord + extra == 0,
        ),
        (
            "every interval accounted, with subscribers up",
            o.rows.len() == n && o.rows.iter().all(|r| r.complete && r.subs_up > 0),
        ),
        (
            "whole population up after each ramp",
            o.ready == a.connections as u64
                && o.warm
                    .as_ref()
                    .is_none_or(|w| w.ready == a.connections as u64),
        ),
        (
            "no failure or close the churn did not cause",
            unexpected.is_empty(),
        ),
        ("no server error messages", server_msgs.is_empty()),
        ("no publish refused by a full write backlog", skipped == 0),
        (
            "server connections back to 0 (/health)",
            o.end.conns.is_none_or(|c| c == 0),
        ),
        (
            "server fds back to the empty baseline ± --fd-slack",
            o.end.fds.abs_diff(o.base.fds) <= a.fd_slack,
        ),
        (
            "server RSS does not grow with churn: last-third peak <= first-third peak + --rss-slack % (>= 1 MiB)",
            late.peak as f64 <= allow(early.peak),
        ),
        (
            "server RSS once every client left <= max(post-warm-up, first-third peak) + --rss-slack % (>= 1 MiB)",
            o.end.rss as f64 <= allow(rss_ref),
        ),
    ];
    let ok = checks.iter().all(|(_, pass)| *pass);
    let mut rows: Vec<(String, String)> = vec![
        ("urls".into(), a.common.urls.join(" ")),
        a.common.auth_row(),
        (
            "population".into(),
            format!(
                "{} connections: {} publishers, {} subscribers over {} channels",
                a.connections,
                a.publishers,
                a.connections - a.publishers,
                a.channels
            ),
        ),
        (
            "publishing".into(),
            format!("{:.0} publishes/s in total, {} B data", a.rate, a.size),
        ),
        (
            "churn".into(),
            format!(
                "{}% of subscribers per minute; rst {} / clean close {} / fin + abandoned handshake {}",
                a.churn, churned[0], churned[1], churned[2]
            ),
        ),
        (
            "intervals".into(),
            format!("{} of {}s (accounted {}s after each)", o.rows.len(), a.interval, a.drain),
        ),
        (
            "ramp".into(),
            format!("{} up in {:.1}s", o.ready, o.ramp.as_secs_f64()),
        ),
        ("published".into(), published.to_string()),
        ("deliveries expected".into(), sum(|r| r.expected).to_string()),
        ("deliveries received".into(), sum(|r| r.received).to_string()),
        ("lost".into(), out::loud(lost)),
        ("duplicated".into(), out::loud(dup)),
        ("out of order".into(), out::loud(reord)),
        ("extra".into(), out::loud(extra)),
        ("reconnects completed".into(), sum(|r| r.reconnected).to_string()),
    ];
    rows.extend(out::latency_rows("end-to-end (all deliveries)", &hist));
    rows.extend(server_rows(&o, rss_ref, (early, late)));
    rows.extend(out::cause_rows("unexpected", &unexpected));
    rows.extend(out::cause_rows("churn closes", &o.stats.errors));
    rows.extend(out::cause_rows("close frames", &o.stats.close_codes));
    rows.extend(out::cause_rows("server messages", &server_msgs));
    rows.extend(crate::run::save_outputs(
        &a.common,
        "soak end-to-end",
        &hist,
    ));
    for (name, pass) in &checks {
        rows.push((
            format!("check: {name}"),
            if *pass { "pass" } else { "FAIL" }.into(),
        ));
    }
    rows.push((
        "RESULT".into(),
        if ok {
            "PASS"
        } else {
            "FAILED, see the checks above"
        }
        .into(),
    ));
    out::print_table(&mut std::io::stdout(), "soak", &rows).map_err(|e| e.to_string())?;
    let v = json!({
        "bench": "soak", "label": a.common.label, "urls": a.common.urls,
        "auth": a.common.auth_mode().label(),
        "connections": a.connections, "publishers": a.publishers, "channels": a.channels,
        "rate": a.rate, "size": a.size, "interval_s": a.interval, "churn_pct_per_min": a.churn,
        "published": published, "lost": lost, "duplicated": dup, "out_of_order": reord,
        "extra": extra, "churned": {"rst": churned[0], "clean": churned[1], "fin_abandon": churned[2]},
        "latency": out::latency_json(&hist),
        "intervals": o.rows.iter().map(row_json).collect::<Vec<_>>(),
        "server": {
            "baseline": sample_json(&o.base),
            "warmup_full": o.warm.as_ref().map(|w| sample_json(&w.full)),
            "warmup_after": o.warm.as_ref().map(|w| sample_json(&w.after)),
            "end": sample_json(&o.end), "settled_in_s": o.settled_in,
        },
        "unexpected": unexpected, "failures": o.stats.errors,
        "close_codes": o.stats.close_codes, "server_messages": server_msgs,
        "checks": checks.iter().map(|(n, p)| json!({"check": n, "pass": p})).collect::<Vec<_>>(),
        "ok": ok,
    });
    Ok((v, ok))
}

/// The RSS high-water mark over some interval ends, and what happened in them.
#[derive(Debug, Clone, Copy, Default)]
struct Peak {
    /// Highest RSS sampled at those interval ends.
    peak: u64,
    /// First and last interval numbers.
    from: usize,
    to: usize,
}

/// Peaks over the first and the last third of the intervals (both the
/// same interval when there is only one).
fn rss_thirds(rows: &[Row]) -> (Peak, Peak) {
    let third = (rows.len() / 3).max(1).min(rows.len());
    let peak = |rs: &[Row]| Peak {
        peak: rs.iter().map(|r| r.sample.rss).max().unwrap_or(0),
        from: rs.first().map_or(0, |r| r.k),
        to: rs.last().map_or(0, |r| r.k),
    };
    (peak(&rows[..third]), peak(&rows[rows.len() - third..]))
}

/// Server memory and fds at each stage, and the end checks' references.
fn server_rows(o: &Outcome, rss_ref: u64, (early, late): (Peak, Peak)) -> Vec<(String, String)> {
    let s = |x: &Sample| {
        format!(
            "rss {:.1} MiB, fds {}, connections {}",
            mib(x.rss),
            x.fds,
            conns_text(x.conns)
        )
    };
    let mut rows = vec![("server, empty (baseline)".to_string(), s(&o.base))];
    if let Some(w) = &o.warm {
        rows.push((
            "warm-up".into(),
            format!(
                "{} up in {:.1}s, {} publishes, then every client left",
                w.ready,
                w.ramp.as_secs_f64(),
                w.published
            ),
        ));
        rows.push(("server, warm-up population up".into(), s(&w.full)));
        rows.push((
            "server, warm-up left".into(),
            format!("{} (settled in {:.1}s)", s(&w.after), w.settled_in),
        ));
    }
    let reconnects: u64 = o
        .rows
        .iter()
        .filter(|r| r.k > early.to && r.k <= late.to)
        .map(|r| r.reconnected)
        .sum();
    let grew = late.peak as f64 - early.peak as f64;
    rows.push((
        "RSS peak, population up".into(),
        format!(
            "intervals {}-{}: {:.1} MiB; intervals {}-{}: {:.1} MiB ({:+.1} MiB, {:+.0} B per reconnect over {} reconnects)",
            early.from,
            early.to,
            mib(early.peak),
            late.from,
            late.to,
            mib(late.peak),
            grew / (1024.0 * 1024.0),
            grew / reconnects.max(1) as f64,
            reconnects
        ),
    ));
    rows.push((
        "server, every client left".into(),
        format!("{} (settled in {:.1}s)", s(&o.end), o.settled_in),
    ));
    rows.push((
        "RSS left vs reference".into(),
        format!(
            "{:+.1} MiB ({:+.2}%) vs {:.1} MiB; vs empty baseline {:+.1} MiB",
            mib(o.end.rss) - mib(rss_ref),
            pct(o.end.rss, rss_ref),
            mib(rss_ref),
            mib(o.end.rss) - mib(o.base.rss)
        ),
    ));
    rows.push((
        "fds end vs baseline".into(),
        format!("{:+}", o.end.fds as i64 - o.base.fds as i64),
    ));
    rows
}

fn pct(x: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        (x as f64 / of as f64 - 1.0) * 100.0
    }
}

fn sample_json(s: &Sample) -> serde_json::Value {
    json!({"rss_bytes": s.rss, "fds": s.fds, "connections": s.conns, "load1": s.load})
}

fn row_json(r: &Row) -> serde_json::Value {
    json!({
        "interval": r.k, "elapsed_s": r.elapsed.as_secs_f64(), "subs_up": r.subs_up,
        "expected": r.expected, "received": r.received, "lost": r.lost,
        "duplicated": r.duplicated, "out_of_order": r.reordered, "extra": r.extra,
        "churned": r.churned, "reconnected": r.reconnected, "unexpected_closes": r.unexpected,
        "failed_connects": r.failed_connects, "complete": r.complete,
        "p99_us": r.latency.0 as f64 / out::NS_PER_US, "max_us": r.latency.1 as f64 / out::NS_PER_US,
        "server": sample_json(&r.sample),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(k: usize, rss_mib: u64) -> Row {
        Row {
            k,
            elapsed: Duration::ZERO,
            subs_up: 0,
            expected: 0,
            received: 0,
            lost: 0,
            duplicated: 0,
            reordered: 0,
            extra: 0,
            churned: [0; 3],
            reconnected: 100,
            unexpected: 0,
            failed_connects: 0,
            latency: (0, 0),
            complete: true,
            sample: Sample {
                rss: rss_mib << 20,
                ..Sample::default()
            },
        }
    }

    #[test]
    fn rss_peaks_cover_the_first_and_last_thirds() {
        let rows: Vec<Row> = [10, 12, 11, 11, 13, 12, 12, 14, 12]
            .iter()
            .enumerate()
            .map(|(i, m)| row(i + 1, *m))
            .collect();
        let (early, late) = rss_thirds(&rows);
        assert_eq!((early.from, early.to, early.peak >> 20), (1, 3, 12));
        assert_eq!((late.from, late.to, late.peak >> 20), (7, 9, 14));
        let (early, late) = rss_thirds(&rows[..1]);
        assert_eq!(
            (early.from, late.to, early.peak, late.peak),
            (1, 1, 10 << 20, 10 << 20)
        );
        let (early, late) = rss_thirds(&rows[..2]);
        assert_eq!((early.to, late.from), (1, 2));
    }
}
