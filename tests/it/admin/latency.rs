//! /latency (.hgrm), the periodic latency report, and parsing .hgrm text.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::harness::{get, log_field, Pool, TestServer, WAIT};

use super::openmetrics::scrape;

/// The first line of every .hgrm distribution.
const HGRM_HEADER: &str = "       Value     Percentile TotalCount 1/(1-Percentile)";

// ---- /latency and the periodic report ----

#[test]
fn latency_serves_hgrm_counting_every_delivery_and_reset_starts_over() {
    let server = TestServer::start(&["--shards", "2"]);
    let mut pool = Pool::new(&server);
    let mut publisher = pool.on_shard(0);
    let mut subs = [pool.on_shard(0), pool.on_shard(1)];
    for sub in &mut subs {
        sub.subscribe("t");
    }
    const K: u64 = 20;
    for seq in 0..K {
        publisher.send_json(&json!({"type":"publish","channel":"t","data":seq}));
    }
    for sub in &mut subs {
        for _ in 0..K {
            assert_eq!(sub.recv_json()["type"], "message");
        }
    }
    let deliveries = 2 * K;

    let response = get(server.admin_addr(), "/latency");
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{response:?}"
    );
    let hgrm = Hgrm::parse(&response.body);
    assert_eq!(hgrm.total_count, deliveries, "{}", response.body);
    assert_eq!(
        hgrm.rows.last().map(|r| r.2),
        Some(deliveries),
        "{}",
        response.body
    );
    assert!(hgrm.max > 0.0 && hgrm.mean > 0.0, "{}", response.body);

    let reset = get(server.admin_addr(), "/latency?reset=true");
    assert_eq!(reset.status, 200);
    assert_eq!(
        Hgrm::parse(&reset.body).total_count,
        deliveries,
        "the reset answer is the distribution before the reset"
    );
    let after = get(server.admin_addr(), "/latency");
    let empty = Hgrm::parse(&after.body);
    assert_eq!(empty.total_count, 0, "{}", after.body);
    assert!(empty.rows.is_empty(), "{}", after.body);
    // Prometheus histograms must never go down: the reset starts a new
    // /latency interval but leaves the exported totals alone.
    let metrics = scrape(&server);
    assert_eq!(
        metrics.total("corecast_fanout_latency_seconds_count"),
        deliveries as f64,
        "a /latency reset must not reset /metrics"
    );
}

#[test]
fn latency_report_logs_each_interval_and_writes_hgrm_files() {
    let (dir, server) = report_server("report");
    let (mut sub, _) = server.ws_client();
    sub.subscribe("r");
    let (mut publisher, _) = server.ws_client();
    const K: u64 = 10;
    for seq in 0..K {
        publisher.send_json(&json!({"type":"publish","channel":"r","data":seq}));
    }
    for _ in 0..K {
        assert_eq!(sub.recv_json()["type"], "message");
    }

    // Each interval logs its count and resets: the counts add up to the deliveries.
    let deadline = Instant::now() + WAIT;
    let mut counted = 0;
    let mut n = 0;
    while counted < K {
        n += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let line = server
            .wait_for_log_count("latency interval=", n, left)
            .unwrap_or_else(|| {
                panic!(
                    "no report #{n} with {counted}/{K} counted:\n{}",
                    server.log_text()
                )
            });
        assert!(line.contains("interval=200ms fanout count="), "{line}");
        counted += log_field(&line, "count=").parse::<u64>().expect("count=N");
    }
    assert_eq!(counted, K, "{}", server.log_text());

    // Shard 0 logs each file once it is written.
    let written = server.wait_for_log("latency report written path=", WAIT);
    assert!(written.is_some(), "{}", server.log_text());
    let files = report_files(&dir.0);
    let text = std::fs::read_to_string(&files[0]).expect("read report");
    let hgrm = Hgrm::parse(&text);
    assert!(hgrm.total_count <= K, "{text}");
}

#[test]
fn every_latency_report_interval_gets_its_own_file() {
    let (dir, server) = report_server("intervals");
    // Shard 0 logs each file once it is written.
    let line = server.wait_for_log_count("latency report written path=", 5, WAIT);
    assert!(line.is_some(), "{}", server.log_text());
    let files = report_files(&dir.0);
    assert!(
        files.len() >= 5,
        "5 intervals wrote {} distinct files (a later interval overwrote an earlier one): {files:?}",
        files.len()
    );
}

/// A one-shard server writing a latency report every 200 ms into a fresh
/// directory named after `tag`; the directory lives as long as the returned guard.
fn report_server(tag: &str) -> (TempDir, TestServer) {
    let dir = TempDir::new(tag);
    let dir_arg = dir.0.to_str().expect("utf-8 temp path");
    let server = TestServer::start(&[
        "--shards",
        "1",
        "--latency-report-interval",
        "200ms",
        "--latency-report-dir",
        dir_arg,
    ]);
    (dir, server)
}

/// A fresh directory under the system temp dir, removed on drop.
pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn new(tag: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_nanos();
        let path =
            std::env::temp_dir().join(format!("corecast-it-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `corecast-latency-*.hgrm` files in `dir`, sorted.
fn report_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read report dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("corecast-latency-") && name.ends_with(".hgrm")
        })
        .collect();
    files.sort();
    files
}

// ---- helpers: .hgrm text ----

/// A parsed percentile distribution.
#[derive(Debug)]
struct Hgrm {
    /// (value, percentile, total count) per data line.
    rows: Vec<(f64, f64, u64)>,
    mean: f64,
    max: f64,
    total_count: u64,
}

impl Hgrm {
    /// Parses .hgrm text: the header, data lines whose percentile and total
    /// count never decrease, and the `#[Mean`/`#[Max`/`#[Buckets` footer.
    fn parse(text: &str) -> Hgrm {
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(HGRM_HEADER), "{text}");
        assert_eq!(
            lines.next(),
            Some(""),
            "blank line after the header: {text}"
        );
        let mut rows: Vec<(f64, f64, u64)> = Vec::new();
        let (mut mean, mut max, mut total_count, mut buckets) = (None, None, None, false);
        for line in lines {
            if let Some(rest) = line.strip_prefix("#[Mean") {
                mean = Some(footer_number(rest, "="));
            } else if let Some(rest) = line.strip_prefix("#[Max") {
                max = Some(footer_number(rest, "="));
                let count = rest.split("Total count").nth(1).expect("Total count");
                total_count = Some(footer_number(count, "=") as u64);
            } else if line.starts_with("#[Buckets") {
                buckets = true;
            } else {
                let cols: Vec<&str> = line.split_whitespace().collect();
                assert!(cols.len() == 3 || cols.len() == 4, "bad data line {line:?}");
                let row = (
                    cols[0].parse().expect("value"),
                    cols[1].parse().expect("percentile"),
                    cols[2].parse().expect("total count"),
                );
                if let Some(prev) = rows.last() {
                    assert!(
                        prev.0 <= row.0 && prev.1 <= row.1 && prev.2 <= row.2,
                        "decreasing: {line}"
                    );
                }
                rows.push(row);
            }
        }
        assert!(buckets, "no #[Buckets footer: {text}");
        Hgrm {
            rows,
            mean: mean.expect("#[Mean footer"),
            max: max.expect("#[Max footer"),
            total_count: total_count.expect("Total count"),
        }
    }
}

/// The number after the first `sep` in a footer fragment like `=  12.5, ...`.
fn footer_number(fragment: &str, sep: &str) -> f64 {
    let after = fragment.split_once(sep).expect("footer separator").1;
    let number = after
        .trim_start()
        .split([',', ']'])
        .next()
        .unwrap_or("")
        .trim();
    number
        .parse()
        .unwrap_or_else(|_| panic!("bad footer number in {fragment:?}"))
}
