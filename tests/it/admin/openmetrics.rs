//! Parsing and checking OpenMetrics text, as served by /metrics.

use std::collections::BTreeMap;

use crate::harness::{get, TestServer};

/// One sample line.
#[derive(Debug)]
pub(super) struct Sample {
    pub(super) name: String,
    pub(super) labels: BTreeMap<String, String>,
    pub(super) value: f64,
}

/// A parsed /metrics answer.
#[derive(Debug, Default)]
pub(super) struct Scrape {
    pub(super) types: BTreeMap<String, String>,
    pub(super) helps: BTreeMap<String, String>,
    pub(super) samples: Vec<Sample>,
}

impl Scrape {
    /// Parses OpenMetrics text, failing on any line it does not understand
    /// and on anything after `# EOF`.
    pub(super) fn parse(text: &str) -> Scrape {
        let mut out = Scrape::default();
        let mut eof = false;
        for line in text.lines() {
            assert!(!eof, "line after # EOF: {line}");
            if line == "# EOF" {
                eof = true;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                out.types.insert(name.to_string(), kind.to_string());
            } else if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("# HELP name text");
                out.helps.insert(name.to_string(), help.to_string());
            } else {
                assert!(
                    !line.starts_with('#') && !line.is_empty(),
                    "unexpected line: {line:?}"
                );
                out.samples.push(parse_sample(line));
            }
        }
        assert!(eof, "no # EOF");
        out
    }

    pub(super) fn rows(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }

    /// Sum of `name` over every label set.
    pub(super) fn total(&self, name: &str) -> f64 {
        let rows = self.rows(name);
        assert!(!rows.is_empty(), "no samples named {name}");
        rows.iter().map(|s| s.value).sum()
    }

    /// Sum of `name` over shards where label `key` is `value`.
    pub(super) fn total_where(&self, name: &str, key: &str, value: &str) -> f64 {
        let rows: Vec<&Sample> = self
            .rows(name)
            .into_iter()
            .filter(|s| s.labels.get(key).is_some_and(|v| v == value))
            .collect();
        assert!(!rows.is_empty(), "no {name}{{{key}=\"{value}\"}}");
        rows.iter().map(|s| s.value).sum()
    }

    /// `name` on one shard (summed over its other labels).
    pub(super) fn shard(&self, name: &str, shard: &str) -> f64 {
        self.total_where(name, "shard", shard)
    }
}

/// `name{k="v",...} value` or `name value`.
fn parse_sample(line: &str) -> Sample {
    let (series, value) = line
        .rsplit_once(' ')
        .unwrap_or_else(|| panic!("no value: {line}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
    };
    let (name, labels) = match series.split_once('{') {
        None => (series, BTreeMap::new()),
        Some((name, rest)) => {
            let inner = rest
                .strip_suffix('}')
                .unwrap_or_else(|| panic!("unclosed labels: {line}"));
            (name, parse_labels(inner, line))
        }
    };
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "bad metric name in {line}"
    );
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// `k="v",k2="v2"` (values here never contain quotes or commas).
fn parse_labels(inner: &str, line: &str) -> BTreeMap<String, String> {
    inner
        .split(',')
        .map(|pair| {
            let (k, v) = pair
                .split_once('=')
                .unwrap_or_else(|| panic!("bad label in {line}"));
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or_else(|| panic!("unquoted label value in {line}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Checks a histogram family on every shard: buckets ascending in `le`,
/// cumulative counts never decreasing, `+Inf` equal to `_count`, and a
/// non-negative `_sum`.
pub(super) fn assert_histogram_well_formed(m: &Scrape, family: &str) {
    for shard in ["0", "1"] {
        let buckets: Vec<(f64, f64)> = m
            .rows(&format!("{family}_bucket"))
            .into_iter()
            .filter(|s| s.labels["shard"] == shard)
            .map(|s| {
                // OpenMetrics spells the last bound "+Inf"; others are finite numbers.
                let le = &s.labels["le"];
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    let bound: f64 = le.parse().unwrap_or_else(|_| panic!("le={le:?}"));
                    assert!(
                        bound.is_finite(),
                        "{family}: le={le:?} is not how OpenMetrics writes +Inf"
                    );
                    bound
                };
                (bound, s.value)
            })
            .collect();
        assert!(buckets.len() >= 2, "{family} shard {shard}: {buckets:?}");
        for pair in buckets.windows(2) {
            assert!(
                pair[0].0 < pair[1].0,
                "{family} shard {shard}: le not ascending {buckets:?}"
            );
            assert!(
                pair[0].1 <= pair[1].1,
                "{family} shard {shard}: not cumulative {buckets:?}"
            );
        }
        let (last_le, last_count) = *buckets.last().expect("a bucket");
        assert_eq!(
            last_le,
            f64::INFINITY,
            "{family} shard {shard}: last bucket is +Inf"
        );
        assert_eq!(
            last_count,
            m.shard(&format!("{family}_count"), shard),
            "{family}: +Inf == _count"
        );
        assert!(m.shard(&format!("{family}_sum"), shard) >= 0.0);
    }
}

/// Change of `name` (summed over shards) from `a` to `b`.
pub(super) fn delta(a: &Scrape, b: &Scrape, name: &str) -> f64 {
    b.total(name) - a.total(name)
}

/// `corecast_connections_closed_total` for one reason, over all shards.
pub(super) fn closed(m: &Scrape, reason: &str) -> f64 {
    m.total_where("corecast_connections_closed_total", "reason", reason)
}

/// GET /metrics on the admin port, parsed.
pub(super) fn scrape(server: &TestServer) -> Scrape {
    let response = get(server.admin_addr(), "/metrics");
    assert_eq!(response.status, 200, "{}", response.body);
    Scrape::parse(&response.body)
}
