//! Latency distributions: one pair of `hdrhistogram::Histogram`s per shard
//! (publish -> frame handed to the kernel, per subscriber; and publish ->
//! arrival on another shard), merged with `Histogram::add` on read, and
//! their renderings: .hgrm text, one-line summaries, Prometheus buckets.
//!
//! Times are nanoseconds on one process-wide monotonic clock
//! ([`now_ns`]), so a stamp taken on one shard can be compared on another.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Instant;

use hdrhistogram::Histogram;

/// Largest latency tracked, in µs (60 s); larger values saturate.
const MAX_TRACKABLE_US: u64 = 60_000_000;
/// Significant digits kept (0.1% resolution).
const SIGFIG: u8 = 3;
/// Prometheus bucket bounds in seconds, from 50 µs to 10 s.
pub const PROM_BUCKETS: [f64; 17] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the process's first call; never 0 (0 means "no stamp").
pub fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
}

/// An empty histogram of µs values.
pub fn new_histogram() -> Histogram<u64> {
    // Constant, valid bounds: low 1 < high, sigfig 3 <= 5.
    Histogram::new_with_bounds(1, MAX_TRACKABLE_US, SIGFIG).expect("valid histogram bounds")
}

/// A shard's distributions. They only ever grow (Prometheus histograms
/// must not go down); an "interval" is the fan-out histogram minus the copy
/// taken at the last mark, so each delivery is still recorded once.
#[derive(Debug)]
pub struct Latency {
    /// Publish entering the server -> its frame handed to the kernel, per subscriber (µs).
    pub fanout: Histogram<u64>,
    /// Publish entering the server -> arrival on another shard (µs).
    pub bus_hop: Histogram<u64>,
    /// `fanout` as it was at the start of the current interval.
    fanout_mark: Histogram<u64>,
}

/// What a shard reports: totals since start and the current interval.
#[derive(Debug)]
pub struct LatencySnapshot {
    /// Fan-out latency since start.
    pub fanout: Histogram<u64>,
    /// Bus-hop latency since start.
    pub bus_hop: Histogram<u64>,
    /// Fan-out latency since the last mark (the interval /latency and the
    /// periodic report show).
    pub fanout_interval: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            fanout: new_histogram(),
            bus_hop: new_histogram(),
            fanout_mark: new_histogram(),
        }
    }
}

impl Latency {
    /// Records `now - since` (ns stamps) into `h`, in µs.
    pub fn record(h: &mut Histogram<u64>, since_ns: u64, now_ns: u64) {
        h.saturating_record((now_ns.saturating_sub(since_ns) / 1000).max(1));
    }

    /// Copies out totals and the current interval.
    pub fn snapshot(&self) -> LatencySnapshot {
        let mut interval = self.fanout.clone();
        // The mark is an earlier copy of `fanout`, so every count it holds is
        // still there and subtract cannot fail.
        let _ = interval.subtract(&self.fanout_mark);
        LatencySnapshot {
            fanout: self.fanout.clone(),
            bus_hop: self.bus_hop.clone(),
            fanout_interval: interval,
        }
    }

    /// Starts a new interval.
    pub fn mark(&mut self) {
        self.fanout_mark = self.fanout.clone();
    }
}

/// "count=N p50=Xus p90=… p99=… p99.9=… max=…" for logs.
pub fn summary(h: &Histogram<u64>) -> String {
    format!(
        "count={} p50={}us p90={}us p99={}us p99.9={}us max={}us",
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    )
}

/// HdrHistogram's percentile-distribution text (.hgrm), values in µs, as
/// `outputPercentileDistribution(out, 5, 1.0)` writes it.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = String::from("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            let value = h.highest_equivalent(v.value_iterated_to()) as f64;
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:12.3} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{value:12.3} {q:2.12} {total:10}");
            }
        }
    }
    let sub_buckets = 2u64.pow((2.0 * 10f64.powi(SIGFIG as i32)).log2().ceil() as u32);
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean(),
        h.stdev()
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64,
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_buckets
    );
    out
}

/// Prometheus histogram parts in seconds: (sum, count, buckets). Bucket
/// counts are per bucket (prometheus-client accumulates them when it
/// encodes), and the last bound is `f64::MAX`, which it writes as `+Inf`.
pub fn prom_buckets(h: &Histogram<u64>) -> (f64, u64, Vec<(f64, u64)>) {
    let mut buckets = Vec::with_capacity(PROM_BUCKETS.len() + 1);
    let mut below = 0;
    for upper in PROM_BUCKETS {
        let cumulative = h.count_between(0, (upper * 1e6) as u64);
        buckets.push((upper, cumulative - below));
        below = cumulative;
    }
    buckets.push((f64::MAX, h.len() - below));
    (h.mean() * h.len() as f64 / 1e6, h.len(), buckets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hgrm_has_the_standard_shape() {
        let mut h = new_histogram();
        for v in 1..=1000 {
            h.record(v).unwrap();
        }
        let text = hgrm(&h);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert!(
            lines[2].trim_start().starts_with("1.000 0.000000000000"),
            "{}",
            lines[2]
        );
        let last_data = lines.iter().rev().find(|l| !l.starts_with('#')).unwrap();
        assert!(
            last_data.contains("1.000000000000       1000"),
            "{last_data}"
        );
        assert!(
            text.contains("#[Max     =     1000.000, Total count    =         1000]"),
            "{text}"
        );
        assert!(text.contains("SubBuckets     =         2048]"), "{text}");
    }

    #[test]
    fn empty_hgrm_still_has_the_footer() {
        let text = hgrm(&new_histogram());
        assert!(text.contains("Total count    =            0"), "{text}");
    }

    #[test]
    fn prom_buckets_count_each_bucket_once() {
        let mut h = new_histogram();
        h.record(80).unwrap(); // 80 µs: above 50 µs, within 100 µs
        h.record(3_000_000).unwrap(); // 3 s
        let (sum, count, b) = prom_buckets(&h);
        assert_eq!(count, 2);
        assert_eq!(b[0], (0.00005, 0));
        assert_eq!(b[1], (0.0001, 1));
        assert_eq!(
            b.iter().map(|(_, n)| n).sum::<u64>(),
            2,
            "per-bucket counts add up to the total"
        );
        assert_eq!(
            *b.last().unwrap(),
            (f64::MAX, 0),
            "+Inf bucket holds what is above 10 s"
        );
        assert!((sum - 3.00008).abs() < 0.01, "{sum}");
    }

    #[test]
    fn an_interval_is_what_came_after_the_mark() {
        let mut l = Latency::default();
        l.fanout.record(10).unwrap();
        l.mark();
        l.fanout.record(20).unwrap();
        let s = l.snapshot();
        assert_eq!((s.fanout.len(), s.fanout_interval.len()), (2, 1));
        assert_eq!(s.fanout_interval.max(), 20);
    }
}
