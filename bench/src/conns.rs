//! `conns`: open many idle /ws connections, hold them, and measure what
//! each one costs the server (RSS) and the kernel (socket buffers, slab).
//! With `--subscribe-shared` / `--subscribe-own` each connection first
//! subscribes (one channel shared by all, one of its own, or both), so the
//! same figure also prices a subscription. With `--expect-message` the
//! shared channel's subscribers then wait for one publication (made by
//! someone else, e.g. `POST /api/publish`) and the run reports how many got
//! it, how many twice, and the time from its `sent_unix_us` stamp to receipt.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// With --subscribe-shared: once every connection is subscribed, print
    /// `ready subscribed=N` on stderr and hold only until every subscribed
    /// connection has received one `message` on the shared channel (at most
    /// --hold seconds), then 1 s more to catch duplicates. The publication's
    /// data should carry `"sent_unix_us":T` (wall clock, microseconds since
    /// the Unix epoch, taken by the publisher): latency is receipt minus T,
    /// so the publisher must share this host's clock.
    #[arg(long, requires = "subscribe_shared")]
    pub expect_message: bool,
}

/// The channel every connection joins with `--subscribe-shared`.
const SHARED_CHANNEL: &str = "conns-shared";

/// With `--expect-message`: how long to keep listening after the last
/// subscriber got the message, so a duplicate still in flight is counted.
const DUPLICATE_GRACE: Duration = Duration::from_secs(1);

/// What `--expect-message` learned in one thread.
struct Expected {
    /// Messages on the shared channel, per local connection.
    got: Vec<u32>,
    /// Publish-to-receipt latency (ns) of each first receipt.
    latency: Histogram<u64>,
    /// Messages whose data had no `sent_unix_us` stamp.
    unstamped: u64,
    /// Connections (all threads) that got at least one message.
    received: Arc<AtomicU64>,
    /// Wall clock (ns since the Unix epoch) at `base`, to date an `Instant`.
    base_unix_ns: u64,
    /// The `Instant` of `base_unix_ns`.
    base: Instant,
}

impl Expected {
    fn new(n: usize, received: Arc<AtomicU64>) -> Self {
        let base = Instant::now();
        let base_unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Expected {
            got: vec![0; n],
            latency: new_histogram(),
            unstamped: 0,
            received,
            base_unix_ns,
            base,
        }
    }

    /// Counts one message at local connection `id`, received at `now`.
    fn record(&mut self, id: usize, text: &[u8], now: Instant) {
        self.got[id] = self.got[id].saturating_add(1);
        if self.got[id] > 1 {
            return;
        }
        self.received.fetch_add(1, Ordering::Relaxed);
        let Some(sent_us) = sent_unix_us(text) else {
            self.unstamped += 1;
            return;
        };
        let now_ns = self.base_unix_ns + now.saturating_duration_since(self.base).as_nanos() as u64;
        let lat = now_ns.saturating_sub(sent_us.saturating_mul(1000)).max(1);
        self.latency.saturating_record(lat);
    }

    /// Extra copies received beyond the first, over all local connections.
    fn duplicates(&self) -> u64 {
        self.got
            .iter()
            .map(|&g| u64::from(g.saturating_sub(1)))
            .sum()
    }
}

/// The `"sent_unix_us":T` stamp of a message, if it has one.
fn sent_unix_us(text: &[u8]) -> Option<u64> {
    const KEY: &[u8] = br#""sent_unix_us":"#;
    let at = text.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = text[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&text[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

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
    /// With `--expect-message`: the messages counted so far.
    expected: Option<Expected>,
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
    fn on_text(&mut self, id: usize, _conn: &mut Conn, text: &[u8], now: Instant) {
        // Without subscriptions, as before the flags: whatever arrives is ignored.
        if self.per_conn() == 0 {
            return;
        }
        if let (Some(e), true) = (&mut self.expected, is_shared_message(text)) {
            e.record(id, text, now);
        } else if self.owed[id] > 0 && text.starts_with(br#"{"type":"subscribed""#) {
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
    let received = Arc::new(AtomicU64::new(0));
    let (expect, received_in) = (a.expect_message, Arc::clone(&received));
    let running = run::start(&a.common, a.n, budget, move |ids, shared| Idle {
        connect: new_histogram(),
        shared: Arc::clone(shared),
        ids: ids.to_vec(),
        subscribe_shared: sub_shared,
        subscribe_own: sub_own,
        owed: vec![0; ids.len()],
        subscribed: 0,
        server_errors: BTreeMap::new(),
        expected: expect.then(|| Expected::new(ids.len(), Arc::clone(&received_in))),
    })?;

    let what = if sub_shared || sub_own {
        "connecting + subscribing"
    } else {
        "connecting"
    };
    let ramp = running.ramp(a.n as u64, a.common.loops.ramp_timeout, what);
    let opened = running.shared.opened.load(Ordering::Relaxed);
    let failed_ramp = running.shared.failed.load(Ordering::Relaxed);
    let waited = if a.expect_message {
        Some(wait_for_message(&running, &received, a.hold))
    } else {
        running.sleep(Duration::from_secs_f64(a.hold));
        None
    };
    let rss_after = rss(&pids);
    let kern_after = procfs::kernel_mem();
    let self_after = procfs::rss_bytes(std::process::id()).unwrap_or(0);
    let lost = running.shared.lost.load(Ordering::Relaxed);
    let (workloads, stats) = running.join()?;

    let mut connect = new_histogram();
    let (mut subscribed, mut server_errors) = (0, BTreeMap::new());
    let mut msg = MessageTally::new();
    for w in &workloads {
        connect.add(&w.connect).map_err(|e| e.to_string())?;
        subscribed += w.subscribed;
        merge_counts(&mut server_errors, &w.server_errors);
        if let Some(e) = &w.expected {
            msg.add(e)?;
        }
    }
    let subscribing = sub_shared || sub_own;
    let open = stats.open_at_end;
    let rate = opened as f64 / ramp.as_secs_f64().max(1e-9);
    let failures: u64 = stats.errors.values().sum();
    let all_subscribed = !subscribing || subscribed == a.n as u64;
    let all_received = !a.expect_message || (msg.received == subscribed && msg.duplicates == 0);
    let ok = failures == 0
        && open == a.n as u64
        && all_subscribed
        && server_errors.is_empty()
        && all_received;
    let mut rows = vec![
        ("urls".to_string(), a.common.urls.join(" ")),
        a.common.auth_row(),
        a.common.compression_row(),
        a.common.encoding_row(),
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
    if let Some(waited) = waited {
        rows.extend(msg.rows(subscribed, waited));
    }
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
    rows.extend(if a.expect_message {
        run::save_outputs(&a.common, "publish to receipt latency", &msg.latency)
    } else {
        run::save_outputs(&a.common, "connect + upgrade latency", &connect)
    });
    if !ok {
        rows.push((
            "RESULT".into(),
            format!(
                "FAILED: {failures} failures, {open} of {} open at the end, \
                 {subscribed} subscribed, {} server errors{}",
                a.n,
                server_errors.values().sum::<u64>(),
                if all_received {
                    String::new()
                } else {
                    format!(
                        ", message received by {} of {subscribed} ({} duplicates)",
                        msg.received, msg.duplicates
                    )
                }
            ),
        ));
    }
    report::print_table(&mut std::io::stdout(), "conns", &rows).map_err(|e| e.to_string())?;
    let v = json!({
        "bench": "conns", "label": a.common.label, "urls": a.common.urls,
        "auth": a.common.auth_mode().label(),
        "compression": a.common.compression,
        "encoding": a.common.encoding.name(),
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
        "expect_message": a.expect_message,
        "message": waited.map(|w| msg.json(subscribed, w)),
        "ok": ok,
    });
    Ok((v, ok))
}

/// `--expect-message`'s wait: says the bench is ready, then returns once
/// every subscribed connection has the message (plus [`DUPLICATE_GRACE`]) or
/// after `hold` seconds. Returns the seconds from the ready line to the end.
fn wait_for_message<W>(running: &run::Running<W>, received: &AtomicU64, hold: f64) -> f64 {
    let ready = running.shared.ready.load(Ordering::Relaxed);
    // The orchestrating script waits for this line before it publishes.
    eprintln!("ready subscribed={ready}");
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs_f64(hold);
    while Instant::now() < until && !running.finished() {
        if received.load(Ordering::Relaxed) >= ready {
            running.sleep(DUPLICATE_GRACE.min(until.saturating_duration_since(Instant::now())));
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    t0.elapsed().as_secs_f64()
}

/// `--expect-message`'s results merged over threads.
struct MessageTally {
    received: u64,
    duplicates: u64,
    unstamped: u64,
    latency: Histogram<u64>,
}

impl MessageTally {
    fn new() -> Self {
        MessageTally {
            received: 0,
            duplicates: 0,
            unstamped: 0,
            latency: new_histogram(),
        }
    }

    fn add(&mut self, e: &Expected) -> Result<(), String> {
        self.received += e.got.iter().filter(|&&g| g > 0).count() as u64;
        self.duplicates += e.duplicates();
        self.unstamped += e.unstamped;
        self.latency.add(&e.latency).map_err(|e| e.to_string())
    }

    fn rows(&self, subscribed: u64, waited: f64) -> Vec<(String, String)> {
        let mut rows = vec![
            (
                "message received".into(),
                format!("{} of {subscribed} subscribed", self.received),
            ),
            ("message duplicates".into(), self.duplicates.to_string()),
            ("message without stamp".into(), self.unstamped.to_string()),
            ("waited after ready".into(), format!("{waited:.2}s")),
        ];
        rows.extend(report::latency_rows("publish to receipt", &self.latency));
        rows
    }

    fn json(&self, subscribed: u64, waited: f64) -> serde_json::Value {
        json!({
            "subscribed": subscribed, "received": self.received,
            "missing": subscribed.saturating_sub(self.received),
            "duplicates": self.duplicates, "unstamped": self.unstamped,
            "waited_s": waited, "latency": report::latency_json(&self.latency),
        })
    }
}

/// Whether `text` is a publication on [`SHARED_CHANNEL`].
fn is_shared_message(text: &[u8]) -> bool {
    text.starts_with(br#"{"type":"message","channel":"conns-shared","#)
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
    fn sent_stamp_is_read_from_the_message_data() {
        let m = br#"{"type":"message","channel":"conns-shared","data":{"sent_unix_us":1764680000123456}}"#;
        assert!(is_shared_message(m));
        assert_eq!(sent_unix_us(m), Some(1_764_680_000_123_456));
        assert_eq!(
            sent_unix_us(br#"{"type":"message","channel":"conns-shared","data":1}"#),
            None
        );
        assert!(!is_shared_message(
            br#"{"type":"message","channel":"own-1","data":1}"#
        ));
    }

    #[test]
    fn a_second_copy_counts_as_a_duplicate_not_a_receipt() {
        let received = Arc::new(AtomicU64::new(0));
        let mut e = Expected::new(2, Arc::clone(&received));
        let sent = e.base_unix_ns / 1000;
        let m = format!(
            r#"{{"type":"message","channel":"conns-shared","data":{{"sent_unix_us":{sent}}}}}"#
        );
        let later = e.base + Duration::from_millis(3);
        e.record(0, m.as_bytes(), later);
        e.record(0, m.as_bytes(), later);
        e.record(
            1,
            br#"{"type":"message","channel":"conns-shared","data":0}"#,
            later,
        );
        assert_eq!(received.load(Ordering::Relaxed), 2);
        assert_eq!((e.duplicates(), e.unstamped, e.latency.len()), (1, 1, 1));
        let lat_ms = e.latency.max() as f64 / 1e6;
        assert!((2.9..4.1).contains(&lat_ms), "{lat_ms}");
    }

    #[test]
    fn subscriptions_text_names_what_was_subscribed() {
        assert_eq!(subscriptions_text(false, false), "none");
        assert!(subscriptions_text(true, false).contains(SHARED_CHANNEL));
        assert!(subscriptions_text(false, true).contains("own-N"));
        assert!(subscriptions_text(true, true).starts_with("2 per connection"));
    }
}
