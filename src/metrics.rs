//! `ShardMetrics`: plain `Cell` counters, one set per shard, written only
//! by that shard's thread (no atomics on the message path).
//!
//! Today they feed the summary a shard logs when it stops; the Prometheus
//! endpoint will gather them over the bus.

use std::cell::Cell;

use crate::error::CloseReason;

/// Counters of one shard since it started.
#[derive(Debug, Default)]
pub struct ShardMetrics {
    /// TCP connections accepted.
    pub accepted: Cell<u64>,
    /// Upgrades to /ws or /echo completed.
    pub upgraded: Cell<u64>,
    /// Requests answered with an HTTP error status or dropped mid-handshake.
    pub handshake_failures: Cell<u64>,
    /// Connections refused with 503 at `--max-connections`.
    pub refused: Cell<u64>,
    /// Publishes that found a channel with subscribers somewhere.
    pub published: Cell<u64>,
    /// Frames queued to local subscribers by fan-out.
    pub delivered: Cell<u64>,
    /// Client requests answered with a JSON error.
    pub request_errors: Cell<u64>,
    /// Connections cut off at `--max-outbound-bytes`.
    pub slow_consumers: Cell<u64>,
    /// Connections closed for not answering a ping.
    pub heartbeat_timeouts: Cell<u64>,
    /// Connections closed for an RFC 6455 violation (1002, 1007, 1009).
    pub protocol_closes: Cell<u64>,
    /// Connections ended, any reason.
    pub closed: Cell<u64>,
}

impl ShardMetrics {
    /// Adds one to a counter.
    pub fn inc(counter: &Cell<u64>) {
        counter.set(counter.get() + 1);
    }

    /// Counts a connection's end by its reason.
    pub fn on_close(&self, reason: CloseReason) {
        Self::inc(&self.closed);
        if matches!(
            reason,
            CloseReason::Protocol(_) | CloseReason::InvalidUtf8 | CloseReason::TooBig
        ) {
            Self::inc(&self.protocol_closes);
        }
    }

    /// Logs the counters as one line (at shard exit).
    pub fn log_summary(&self) {
        log::info!(
            "shard stats accepted={} upgraded={} handshake_failures={} refused={} published={} \
             delivered={} request_errors={} slow_consumers={} heartbeat_timeouts={} protocol_closes={} closed={}",
            self.accepted.get(),
            self.upgraded.get(),
            self.handshake_failures.get(),
            self.refused.get(),
            self.published.get(),
            self.delivered.get(),
            self.request_errors.get(),
            self.slow_consumers.get(),
            self.heartbeat_timeouts.get(),
            self.protocol_closes.get(),
            self.closed.get(),
        );
    }
}
