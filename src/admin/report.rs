//! The periodic latency report: every `--latency-report-interval`, shard 0
//! gathers every shard's fan-out latency for the interval (starting the
//! next), logs one summary line, and
//! with `--latency-report-dir` writes the interval as an .hgrm file.

use std::rc::Rc;

use crate::latency;
use crate::shard::{Query, Shard};

/// Runs on shard 0 for the life of the process (if the interval is not 0).
pub async fn report_latency_forever(shard: Rc<Shard>) {
    let cfg = &shard.config.config;
    let interval = cfg.latency_report_interval;
    loop {
        glommio::timer::sleep(interval).await;
        let merged = interval_fanout(&shard, true).await;
        log::info!(
            "latency interval={interval:?} fanout {}",
            latency::summary(&merged)
        );
        if let Some(dir) = &cfg.latency_report_dir {
            let stamp = humantime::format_rfc3339_millis(std::time::SystemTime::now())
                .to_string()
                .replace(':', "");
            let path = dir.join(format!("corecast-latency-{stamp}.hgrm"));
            // A few KB written once a minute; not worth a blocking-pool hop.
            match std::fs::write(&path, latency::hgrm(&merged)) {
                Ok(()) => log::debug!("latency report written path={}", path.display()),
                Err(e) => log::warn!("cannot write latency report path={}: {e}", path.display()),
            }
        }
    }
}

/// Every shard's fan-out latency for the current interval, added together;
/// `reset` starts the next interval.
pub async fn interval_fanout(shard: &Rc<Shard>, reset: bool) -> hdrhistogram::Histogram<u64> {
    let query = Query::Metrics {
        reset_latency: reset,
    };
    let reports = shard.query(&shard.all_shards(), query).await;
    let mut merged = latency::new_histogram();
    for latency in reports.iter().filter_map(|r| r.latency.as_ref()) {
        // Same bounds on every shard, so add cannot fail.
        let _ = merged.add(&latency.fanout_interval);
    }
    merged
}
