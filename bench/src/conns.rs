//! `conns`: open many idle /ws connections, hold them, and measure what
//! each one costs the server (RSS) and the kernel (socket buffers, slab).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use serde_json::json;

use crate::driver::{Conn, Shared, Workload};
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
}

/// One thread's share: connect latencies only; idle connections need no state.
struct Idle {
    connect: Histogram<u64>,
    shared: Arc<Shared>,
}

impl Workload for Idle {
    fn on_open(&mut self, _id: usize, conn: &mut Conn, now: Instant) {
        let ns = now.duration_since(conn.started).as_nanos() as u64;
        self.connect.saturating_record(ns.max(1));
        self.shared.ready.fetch_add(1, Ordering::Relaxed);
    }
    fn on_text(&mut self, _id: usize, _conn: &mut Conn, _text: &[u8], _now: Instant) {}
    fn on_closed(&mut self, _id: usize, _was_open: bool) {}
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
    let running = run::start(&a.common, a.n, budget, |_ids, shared| Idle {
        connect: new_histogram(),
        shared: Arc::clone(shared),
    })?;

    let ramp = running.ramp(a.n as u64, a.common.loops.ramp_timeout, "connecting");
    let opened = running.shared.opened.load(Ordering::Relaxed);
    let failed_ramp = running.shared.failed.load(Ordering::Relaxed);
    running.sleep(Duration::from_secs_f64(a.hold));
    let rss_after = rss(&pids);
    let kern_after = procfs::kernel_mem();
    let self_after = procfs::rss_bytes(std::process::id()).unwrap_or(0);
    let lost = running.shared.lost.load(Ordering::Relaxed);
    let (workloads, stats) = running.join()?;

    let mut connect = new_histogram();
    for w in &workloads {
        connect.add(&w.connect).map_err(|e| e.to_string())?;
    }
    let open = stats.open_at_end;
    let rate = opened as f64 / ramp.as_secs_f64().max(1e-9);
    let failures: u64 = stats.errors.values().sum();
    let ok = failures == 0 && open == a.n as u64;
    let mut rows = vec![
        ("urls".to_string(), a.common.urls.join(" ")),
        ("requested".into(), a.n.to_string()),
        ("opened".into(), opened.to_string()),
        ("failed during ramp".into(), failed_ramp.to_string()),
        (
            "ramp".into(),
            format!("{:.2}s  ({rate:.0} conn/s)", ramp.as_secs_f64()),
        ),
        ("held".into(), format!("{:.0}s", a.hold)),
        ("closed during hold".into(), lost.to_string()),
        ("open at end of hold".into(), open.to_string()),
    ];
    rows.extend(report::latency_rows("connect+upgrade", &connect));
    rows.extend(report::cause_rows("failures", &stats.errors));
    rows.extend(report::cause_rows("close frames", &stats.close_codes));
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
                "FAILED: {failures} failures, {open} of {} open at the end",
                a.n
            ),
        ));
    }
    report::print_table(&mut std::io::stdout(), "conns", &rows).map_err(|e| e.to_string())?;
    let v = json!({
        "bench": "conns", "label": a.common.label, "urls": a.common.urls,
        "requested": a.n, "opened": opened, "open_at_end": open, "closed_during_hold": lost,
        "ramp_s": ramp.as_secs_f64(), "connect_rate_per_s": rate, "hold_s": a.hold,
        "failures": stats.errors, "close_codes": stats.close_codes,
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
