//! Output of a run: the human table, the one-line JSON summary, and the
//! latency distribution in HdrHistogram's percentile-distribution text
//! format (the `.hgrm` files the HdrHistogram plotter reads).

use std::collections::BTreeMap;
use std::io::{self, Write};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Histogram values are nanoseconds; reports and `.hgrm` files use microseconds.
pub const NS_PER_US: f64 = 1000.0;

/// A new latency histogram: 1 ns to 60 s at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// The percentiles every report prints.
pub const PERCENTILES: [(&str, f64); 6] = [
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99.9", 99.9),
    ("p99.99", 99.99),
    ("max", 100.0),
];

/// Latency summary in microseconds, as JSON.
pub fn latency_json(h: &Histogram<u64>) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("count".into(), json!(h.len()));
    for (name, p) in PERCENTILES {
        m.insert(format!("{name}_us"), json!(round3(us(h, p))));
    }
    m.insert("mean_us".into(), json!(round3(h.mean() / NS_PER_US)));
    Value::Object(m)
}

fn us(h: &Histogram<u64>, p: f64) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    let v = if p >= 100.0 {
        h.max()
    } else {
        h.value_at_percentile(p)
    };
    v as f64 / NS_PER_US
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A count that must be zero, shouted when it is not.
pub fn loud(n: u64) -> String {
    if n == 0 {
        "0".into()
    } else {
        format!("{n}  <-- MUST BE 0")
    }
}

/// Prints `rows` as an aligned two-column table under `title`.
pub fn print_table(out: &mut impl Write, title: &str, rows: &[(String, String)]) -> io::Result<()> {
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    writeln!(out, "== {title} ==")?;
    for (k, v) in rows {
        writeln!(out, "  {k:<w$}  {v}")?;
    }
    Ok(())
}

/// Table rows for a latency histogram.
pub fn latency_rows(label: &str, h: &Histogram<u64>) -> Vec<(String, String)> {
    let mut rows = vec![(format!("{label} samples"), h.len().to_string())];
    if !h.is_empty() {
        let line = PERCENTILES
            .iter()
            .map(|(n, p)| format!("{n} {}", fmt_us(us(h, *p))))
            .collect::<Vec<_>>()
            .join("  ");
        rows.push((format!("{label} latency"), line));
    }
    rows
}

/// "87.3us", "1.24ms" or "2.1s".
pub fn fmt_us(v: f64) -> String {
    if v < 1000.0 {
        format!("{v:.1}us")
    } else if v < 1_000_000.0 {
        format!("{:.2}ms", v / 1000.0)
    } else {
        format!("{:.2}s", v / 1_000_000.0)
    }
}

/// Table rows for counts by cause; "none" when empty.
pub fn cause_rows(label: &str, causes: &BTreeMap<String, u64>) -> Vec<(String, String)> {
    if causes.is_empty() {
        return vec![(label.to_string(), "none".into())];
    }
    causes
        .iter()
        .map(|(k, v)| (format!("{label}: {k}"), v.to_string()))
        .collect()
}

/// Writes `h` (nanoseconds) in HdrHistogram's percentile-distribution format,
/// values divided by `scale` (1000 gives microseconds), 5 ticks per half distance,
/// exactly as Java's `outputPercentileDistribution` does.
pub fn write_hgrm(out: &mut impl Write, h: &Histogram<u64>, scale: f64) -> io::Result<()> {
    writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / scale;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                writeln!(
                    out,
                    "{value:12.3} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                )?;
            } else {
                writeln!(out, "{value:12.3} {q:2.12} {total:10}")?;
            }
        }
    }
    let (mean, sd) = if h.is_empty() {
        (0.0, 0.0)
    } else {
        (h.mean(), h.stdev())
    };
    writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        mean / scale,
        sd / scale
    )?;
    writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / scale,
        h.len()
    )?;
    writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_bucket_count(h.sigfig())
    )
}

/// HdrHistogram's sub-bucket count for a precision: the power of two
/// covering 2 * 10^sigfig (2048 at 3 digits). The crate keeps it private.
fn sub_bucket_count(sigfig: u8) -> u64 {
    (2 * 10u64.pow(u32::from(sigfig))).next_power_of_two()
}

/// Writes the `.hgrm` file for `h`.
pub fn save_hgrm(path: &str, h: &Histogram<u64>) -> io::Result<()> {
    let mut f = io::BufWriter::new(std::fs::File::create(path)?);
    write_hgrm(&mut f, h, NS_PER_US)?;
    f.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Histogram<u64> {
        let mut h = new_histogram();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        h
    }

    #[test]
    fn hgrm_has_java_header_rows_and_footer() {
        let mut out = Vec::new();
        write_hgrm(&mut out, &sample(), NS_PER_US).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines[1], "");
        assert_eq!(
            lines[2],
            "       1.000 0.000000000000          1           1.00"
        );
        let last = lines[lines.len() - 4];
        assert!(last.ends_with(" 1.000000000000       1000"), "{last:?}");
        assert_eq!(
            last.split_whitespace().count(),
            3,
            "last row has no 1/(1-p)"
        );
        assert!(last.trim_start().starts_with("1000"), "{last:?}");
        assert_eq!(
            lines[lines.len() - 3],
            "#[Mean    =      500.505, StdDeviation   =      288.676]"
        );
        assert_eq!(
            lines[lines.len() - 2],
            "#[Max     =     1000.447, Total count    =         1000]"
        );
        assert_eq!(
            lines[lines.len() - 1],
            format!(
                "#[Buckets = {:12}, SubBuckets     =         2048]",
                sample().buckets()
            )
        );
    }

    #[test]
    fn hgrm_rows_are_monotonic_with_fixed_columns() {
        let mut out = Vec::new();
        write_hgrm(&mut out, &sample(), NS_PER_US).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut prev = (0.0f64, 0.0f64, 0u64);
        for line in text.lines().skip(2).filter(|l| !l.starts_with('#')) {
            assert_eq!(&line[12..13], " ", "value column is 12 wide: {line:?}");
            let f: Vec<&str> = line.split_whitespace().collect();
            let row = (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            );
            assert!(
                row.0 >= prev.0 && row.1 >= prev.1 && row.2 >= prev.2,
                "{line:?}"
            );
            prev = row;
        }
        assert_eq!(prev.2, 1000);
    }

    #[test]
    fn empty_histogram_still_writes_a_valid_file() {
        let mut out = Vec::new();
        write_hgrm(&mut out, &new_histogram(), NS_PER_US).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Total count    =            0]"));
    }

    #[test]
    fn microsecond_formatting_picks_units() {
        assert_eq!(fmt_us(87.25), "87.2us");
        assert_eq!(fmt_us(1240.0), "1.24ms");
        assert_eq!(fmt_us(2_100_000.0), "2.10s");
    }
}
