//! `conns`: open many idle /ws connections, hold them, and measure what
//! each one costs the server (RSS) and the kernel (socket buffers, slab).
//! With `--subscribe-shared` / `--subscribe-own` each connection first
//! subscribes (one channel shared by all, one of its own, or both), so the
//! same figure also prices a subscription.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use serde_json::json;

use crate::driver::{merge_counts, Conn, Shared, Workload};
use crate::fanout::other_message;
use crate::procfs::{self, KernelMem};
use crate::report::{self, new_histogram};
use crate::run::{self, Common};
use crate::sender::per;

/// Options of `conns`.
#[derive(Debug, Clone, Args)]
pub struct ConnsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Connections to open.
    #[arg(short = 'n', long)]
    pub n: usize,
    /// Seconds to hold them once the ramp is done.
    #[arg(long, default_value_t = 60.0)]
    pub hold: f64,
    /// Server process(es) to measure; default: whatever listens on the URLs' ports.
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
    /// After the upgrade, subscribe every connection to one channel shared by
    /// all (`conns-shared`) and wait for its `subscribed` reply.
    #[arg(long)]
    pub subscribe_shared: bool,
    /// After the upgrade, subscribe every connection to a channel of its own
    /// (`own-N`, N its index) and wait for its `subscribed` reply.
    #[arg(long)]
    pub subscribe_own: bool,
}

/// The channel every connection joins with `--subscribe-shared`.
const SHARED_CHANNEL: &str = "conns-shared";

/// One thread's share: connect latencies and, when subscribing, the replies
/// each connection still waits for.
struct Idle {
    connect: Histogram<u64>,
    shared: Arc<Shared>,
    /// Global index of each local connection (names its own channel).
    ids: Vec<usize>,
    /// Subscribe to [`SHARED_CHANNEL`] after the upgrade.
    subscribe_shared: bool,
    /// Subscribe to `own-N` after the upgrade.
    subscribe_own: bool,
    /// `subscribed` replies still owed, per local connection.
    owed: Vec<u8>,
    /// Connections that got every reply they asked for.
    subscribed: u64,
    /// Server messages other than the expected replies, by type and code.
    server_errors: BTreeMap<String, u64>,
}

impl Idle {
    /// Subscriptions each connection makes.
    fn per_conn(&self) -> u8 {
        u8::from(self.subscribe_shared) + u8::from(self.subscribe_own)
    }
}

impl Workload for Idle {
    fn on_open(&mut self, id: usize, conn: &mut Conn, now: Instant) {
        let ns = now.duration_since(conn.started).as_nanos() as u64;
        self.connect.saturating_record(ns.max(1));
        self.owed[id] = self.per_conn();
        if self.owed[id] == 0 {
            self.shared.ready.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // A connection counts as ready (for the ramp) only once subscribed.
        if self.subscribe_shared {
            conn.send_text(subscribe_msg(SHARED_CHANNEL).as_bytes());
        }
        if self.subscribe_own {
            conn.send_text(subscribe_msg(&own_channel(self.ids[id])).as_bytes());
        }
    }
    fn on_text(&mut self, id: usize, _conn: &mut Conn, text: &[u8], _now: Instant) {
        // Without subscriptions, as before the flags: whatever arrives is ignored.
        if self.per_conn() == 0 {
            return;
        }
        if self.owed[id] > 0 && text.starts_with(br#"{"type":"subscribed""#) {
            self.owed[id] -= 1;
            if self.owed[id] == 0 {
                self.subscribed += 1;
                self.shared.ready.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            other_message(&mut self.server_errors, text);
        }
    }
    fn on_closed(&mut self, id: usize, _was_open: bool) {
        self.owed[id] = 0;
    }
    fn tick(&mut self, _conns: &mut [Conn], _phase: u8, _now: Instant) -> Option<Duration> {
        None
    }
}

/// Runs `conns`; returns the report's JSON and whether every check passed.
pub fn run(a: ConnsArgs) -> Result<(serde_json::Value, bool), String> {
    let ports: Vec<u16> = a
        .common
        .urls
        .iter()
        .map(|u| crate::net::parse_url(u).map(|u| u.addr.port()))
        .collect::<Result<_, _>>()?;
    let mut pids = a.server_pids.clone();
    if pids.is_empty() {
        for p in &ports {
            pids.extend(procfs::listening_pids(*p));
        }
        pids.sort_unstable();
        pids.dedup();
    }
    let rss = |pids: &[u32]| {
        pids.iter()
            .filter_map(|p| procfs::rss_bytes(*p))
            .sum::<u64>()
    };
    let rss_before = rss(&pids);
    let kern_before = procfs::kernel_mem();
    let self_before = procfs::rss_bytes(std::process::id()).unwrap_or(0);

    let budget = Duration::from_secs_f64(a.hold + 30.0);
    let (sub_shared, sub_own) = (a.subscribe_shared, a.subscribe_own);
    let running = run::start(&a.common, a.n, budget, move |ids, shared| Idle {
        connect: new_histogram(),
        shared: Arc::clone(shared),
        ids: ids.to_vec(),
        subscribe_shared: sub_shared,
        subscribe_own: sub_own,
        owed: vec![0; ids.len()],
        subscribed: 0,
        server_errors: BTreeMap::new(),
    })?;

    let what = if sub_shared || sub_own {
        "connecting + subscribing"
    } else {
        "connecting"
    };
    let ramp = running.ramp(a.n as u64, a.common.loops.ramp_timeout, what);
    let opened = running.shared.opened.load(Ordering::Relaxed);
    let failed_ramp = running.shared.failed.load(Ordering::Relaxed);
    running.sleep(Duration::from_secs_f64(a.hold));
    let rss_after = rss(&pids);
    let kern_after = procfs::kernel_mem();
    let self_after = procfs::rss_bytes(std::process::id()).unwrap_or(0);
    let lost = running.shared.lost.load(Ordering::Relaxed);
    let (workloads, stats) = running.join()?;

    let mut connect = new_histogram();
    let (mut subscribed, mut server_errors) = (0, BTreeMap::new());
    for w in &workloads {
        connect.add(&w.connect).map_err(|e| e.to_string())?;
        subscribed += w.subscribed;
        merge_counts(&mut server_errors, &w.server_errors);
    }
    let subscribing = sub_shared || sub_own;
    let open = stats.open_at_end;
    let rate = opened as f64 / ramp.as_secs_f64().max(1e-9);
    let failures: u64 = stats.errors.values().sum();
    let all_subscribed = !subscribing || subscribed == a.n as u64;
    let ok = failures == 0 && open == a.n as u64 && all_subscribed && server_errors.is_empty();
    let mut rows = vec![
        ("urls".to_string(), a.common.urls.join(" ")),
        a.common.auth_row(),
        a.common.compression_row(),
        ("requested".into(), a.n.to_string()),
        ("opened".into(), opened.to_string()),
        ("failed during ramp".into(), failed_ramp.to_string()),
        (
            "ramp".into(),
            format!("{:.2}s  ({rate:.0} conn/s)", ramp.as_secs_f64()),
        ),
        (
            "subscriptions".into(),
            subscriptions_text(sub_shared, sub_own),
        ),
        (
            "subscribed (every reply)".into(),
            if subscribing {
                format!("{subscribed} of {}", a.n)
            } else {
                "-".into()
            },
        ),
        ("held".into(), format!("{:.0}s", a.hold)),
        ("closed during hold".into(), lost.to_string()),
        ("open at end of hold".into(), open.to_string()),
    ];
    rows.extend(report::latency_rows("connect+upgrade", &connect));
    rows.extend(report::cause_rows("failures", &stats.errors));
    rows.extend(report::cause_rows("close frames", &stats.close_codes));
    rows.extend(report::cause_rows("server errors", &server_errors));
    rows.push(("server pids".into(), format!("{pids:?}")));
    rows.push(growth_row("server RSS", rss_before, rss_after, open, ""));
    rows.extend(kernel_rows(&kern_before, &kern_after, open));
    rows.push(growth_row(
        "bench RSS (this process)",
        self_before,
        self_after,
        open,
        "",
    ));
    rows.extend(run::save_outputs(
        &a.common,
        "connect + upgrade latency",
        &connect,
    ));
    if !ok {
        rows.push((
            "RESULT".into(),
            format!(
                "FAILED: {failures} failures, {open} of {} open at the end, \
                 {subscribed} subscribed, {} server errors",
                a.n,
                server_errors.values().sum::<u64>()
            ),
        ));
    }
    report::print_table(&mut std::io::stdout(), "conns", &rows).map_err(|e| e.to_string())?;
    let v = json!({
        "bench": "conns", "label": a.common.label, "urls": a.common.urls,
        "auth": a.common.auth_mode().label(),
        "compression": a.common.compression,
        "requested": a.n, "opened": opened, "open_at_end": open, "closed_during_hold": lost,
        "ramp_s": ramp.as_secs_f64(), "connect_rate_per_s": rate, "hold_s": a.hold,
        "failures": stats.errors, "close_codes": stats.close_codes,
        "subscribe_shared": sub_shared, "subscribe_own": sub_own,
        "subscriptions_per_conn": u8::from(sub_shared) + u8::from(sub_own),
        "subscriptions": subscriptions_text(sub_shared, sub_own),
        "subscribed": subscribing.then_some(subscribed), "server_errors": server_errors,
        "connect_latency": report::latency_json(&connect),
        "server_pids": pids, "server_rss_before": rss_before, "server_rss_after": rss_after,
        "server_rss_per_conn": per_conn(rss_before, rss_after, open),
        "kernel_tcp_mem_before": kern_before.tcp_mem_bytes, "kernel_tcp_mem_after": kern_after.tcp_mem_bytes,
        "kernel_slab_before": kern_before.slab_bytes, "kernel_slab_after": kern_after.slab_bytes,
        "mem_available_before": kern_before.available_bytes, "mem_available_after": kern_after.available_bytes,
        "tcp_inuse_after": kern_after.tcp_inuse,
        "bench_rss_per_conn": per_conn(self_before, self_after, open),
        "ok": ok,
    });
    Ok((v, ok))
}

/// The subscribe command for `channel`.
fn subscribe_msg(channel: &str) -> String {
    format!(r#"{{"type":"subscribe","channel":"{channel}"}}"#)
}

/// The channel of its own that connection `id` joins with `--subscribe-own`.
fn own_channel(id: usize) -> String {
    format!("own-{id}")
}

/// What each connection subscribed to, for the table and the JSON.
fn subscriptions_text(shared: bool, own: bool) -> String {
    match (shared, own) {
        (false, false) => "none".into(),
        (true, false) => format!("1 per connection: {SHARED_CHANNEL} (shared by all)"),
        (false, true) => "1 per connection: own-N (one channel each)".into(),
        (true, true) => {
            format!("2 per connection: {SHARED_CHANNEL} (shared by all) + own-N (one each)")
        }
    }
}

/// Kernel memory moves, per connection. Both ends of a loopback connection are
/// counted, the bench's as well as the server's.
fn kernel_rows(b: &KernelMem, a: &KernelMem, open: u64) -> Vec<(String, String)> {
    const BOTH: &str = ", both ends";
    vec![
        growth_row(
            "kernel TCP buffers (sockstat mem)",
            b.tcp_mem_bytes,
            a.tcp_mem_bytes,
            open,
            BOTH,
        ),
        growth_row("kernel slab", b.slab_bytes, a.slab_bytes, open, BOTH),
        (
            "MemAvailable drop".into(),
            format!(
                "{} ({:.0} B/conn, whole system incl. bench)",
                mib(b.available_bytes.saturating_sub(a.available_bytes)),
                per_conn(a.available_bytes, b.available_bytes, open)
            ),
        ),
        (
            "TCP sockets in use".into(),
            format!("{} -> {}", b.tcp_inuse, a.tcp_inuse),
        ),
    ]
}

/// A "before -> after (B/conn)" row for a memory figure; `note` follows the unit.
fn growth_row(label: &str, before: u64, after: u64, open: u64, note: &str) -> (String, String) {
    (
        label.into(),
        format!(
            "{} -> {} ({:.0} B/conn{note})",
            mib(before),
            mib(after),
            per_conn(before, after, open)
        ),
    )
}

/// Bytes gained per open connection from `before` to `after` (0 with none open).
fn per_conn(before: u64, after: u64, open: u64) -> f64 {
    per(after as f64 - before as f64, open as f64)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_msg_is_the_protocol_command() {
        let v: serde_json::Value = serde_json::from_str(&subscribe_msg(&own_channel(7))).unwrap();
        assert_eq!(v, json!({"type": "subscribe", "channel": "own-7"}));
    }

    #[test]
    fn subscriptions_text_names_what_was_subscribed() {
        assert_eq!(subscriptions_text(false, false), "none");
        assert!(subscriptions_text(true, false).contains(SHARED_CHANNEL));
        assert!(subscriptions_text(false, true).contains("own-N"));
        assert!(subscriptions_text(true, true).starts_with("2 per connection"));
    }
}
