//! `ShardMetrics`: one shard's counters, written only by that shard's
//! thread (a `RefCell`, no atomics on the message path), and [`Counters`],
//! the plain copy a scrape carries across the bus and merges.

use std::cell::RefCell;

use crate::error::CloseReason;
use crate::message::ErrorCode;

/// Close reasons as counted (index = position), also the `reason` label.
pub const CLOSE_REASONS: [&str; 14] = [
    "client_closed",
    "shutdown",
    "protocol_error",
    "invalid_utf8",
    "message_too_big",
    "slow_consumer",
    "heartbeat_timeout",
    "disconnected",
    "abnormal",
    "invalid_token",
    "auth_required",
    "token_expired",
    "insufficient_state",
    "bad_request",
];

/// Handshake outcomes other than an upgrade, by HTTP status; "dropped" is a
/// client that timed out or vanished before a full request.
pub const HANDSHAKE_FAILURES: [&str; 9] = [
    "400", "401", "403", "404", "405", "426", "431", "503", "dropped",
];

/// JSON request error codes, in [`ErrorCode::ALL`] order.
pub const N_ERROR_CODES: usize = ErrorCode::ALL.len();

/// Counters of one shard since it started.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    /// TCP connections accepted on the public port.
    pub accepted: u64,
    /// Upgrades to /ws or /echo completed.
    pub upgraded: u64,
    /// Connections refused with 503 at `--max-connections`.
    pub refused: u64,
    /// Non-upgrade answers and dropped handshakes, by [`HANDSHAKE_FAILURES`].
    pub handshake_failures: [u64; HANDSHAKE_FAILURES.len()],
    /// Connections ended, by [`CLOSE_REASONS`].
    pub closed: [u64; CLOSE_REASONS.len()],
    /// Data messages received from clients (/ws and /echo).
    pub messages_received: u64,
    /// Publishes accepted (client and API), whether or not anyone listened.
    pub published: u64,
    /// Frames queued to local subscribers by fan-out (publish and broadcast).
    pub delivered: u64,
    /// Bytes read from client sockets after the handshake.
    pub bytes_in: u64,
    /// Bytes written to client sockets after the handshake.
    pub bytes_out: u64,
    /// JSON request errors, by [`ErrorCode::ALL`].
    pub request_errors: [u64; N_ERROR_CODES],
    /// Messages sent to other shards.
    pub bus_sent: u64,
    /// Messages received from other shards.
    pub bus_received: u64,
    /// Ticker passes run (each visits a slice of the connection table).
    pub ticker_passes: u64,
    /// History publications evicted by `--history-max-bytes` (read from the
    /// shard's history store when a report is made).
    pub history_evictions: u64,
    /// History channel records evicted by `--history-max-channels`.
    pub history_channel_evictions: u64,
    /// Longest ticker pass, in nanoseconds of the shard thread's CPU time (a
    /// maximum, not a sum, when merged).
    pub ticker_pass_max_ns: u64,
    /// Flush passes run (each writes every outbox fan-out filled since the last).
    pub flush_passes: u64,
    /// Frames compressed for permessage-deflate (once per window size per
    /// encoding per shard per publish, once per reply).
    pub compressed_frames: u64,
    /// Messages converted from the native JSON to another encoding (once
    /// per encoding per shard per publish, once per reply).
    pub converted_frames: u64,
    /// Compressed messages received and inflated.
    pub inflated_messages: u64,
    /// Redis mode: messages received on this shard's pub/sub links.
    pub redis_received: u64,
    /// Redis mode: messages from Redis dropped as malformed.
    pub redis_dropped: u64,
    /// Redis mode: publishes without a waiting caller that Redis did not take.
    pub redis_publish_failures: u64,
    /// Redis mode: gaps in a history channel's live delivery repaired (or
    /// attempted) from the stream.
    pub redis_gap_repairs: u64,
    /// Redis mode: channels whose subscribers were evicted (4010 on /ws,
    /// unsubscribe 2500 for Centrifugo) because a gap could not be repaired.
    pub redis_evictions: u64,
}

impl Counters {
    /// Adds another shard's counters (for totals).
    pub fn add(&mut self, o: &Counters) {
        let add_all = |a: &mut [u64], b: &[u64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        self.accepted += o.accepted;
        self.upgraded += o.upgraded;
        self.refused += o.refused;
        add_all(&mut self.handshake_failures, &o.handshake_failures);
        add_all(&mut self.closed, &o.closed);
        self.messages_received += o.messages_received;
        self.published += o.published;
        self.delivered += o.delivered;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        add_all(&mut self.request_errors, &o.request_errors);
        self.bus_sent += o.bus_sent;
        self.bus_received += o.bus_received;
        self.ticker_passes += o.ticker_passes;
        self.history_evictions += o.history_evictions;
        self.history_channel_evictions += o.history_channel_evictions;
        self.ticker_pass_max_ns = self.ticker_pass_max_ns.max(o.ticker_pass_max_ns);
        self.flush_passes += o.flush_passes;
        self.compressed_frames += o.compressed_frames;
        self.converted_frames += o.converted_frames;
        self.inflated_messages += o.inflated_messages;
        self.redis_received += o.redis_received;
        self.redis_dropped += o.redis_dropped;
        self.redis_publish_failures += o.redis_publish_failures;
        self.redis_gap_repairs += o.redis_gap_repairs;
        self.redis_evictions += o.redis_evictions;
    }

    /// Connections closed as slow consumers.
    pub fn slow_consumers(&self) -> u64 {
        self.closed[close_index(CloseReason::SlowConsumer)]
    }
}

/// The counters of one shard.
#[derive(Debug, Default)]
pub struct ShardMetrics(RefCell<Counters>);

impl ShardMetrics {
    /// Updates the counters; `f` must not touch the metrics again.
    pub fn bump(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut self.0.borrow_mut());
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> Counters {
        *self.0.borrow()
    }

    /// Counts a connection's end.
    pub fn on_close(&self, reason: CloseReason) {
        self.bump(|c| c.closed[close_index(reason)] += 1);
    }

    /// Counts a failed handshake by HTTP status (None: dropped without answer).
    pub fn on_handshake_failure(&self, status: Option<u16>) {
        // No allocation: clients can make this happen at will.
        let i = match status {
            Some(400) => 0,
            Some(401) => 1,
            Some(403) => 2,
            Some(404) => 3,
            Some(405) => 4,
            Some(426) => 5,
            Some(431) => 6,
            Some(503) => 7,
            _ => HANDSHAKE_FAILURES.len() - 1,
        };
        self.bump(|c| c.handshake_failures[i] += 1);
    }

    /// Counts a JSON request error.
    pub fn on_request_error(&self, code: ErrorCode) {
        self.bump(|c| c.request_errors[code as usize] += 1);
    }

    /// Logs the totals as one line (at shard exit).
    pub fn log_summary(&self) {
        let c = self.snapshot();
        let closed: Vec<String> = CLOSE_REASONS
            .iter()
            .zip(c.closed)
            .filter(|(_, n)| *n > 0)
            .map(|(l, n)| format!("{l}:{n}"))
            .collect();
        log::info!(
            "shard stats accepted={} upgraded={} refused={} published={} delivered={} messages_received={} \
             bytes_in={} bytes_out={} slow_consumers={} flush_passes={} ticker_pass_max_us={} closed=[{}]",
            c.accepted,
            c.upgraded,
            c.refused,
            c.published,
            c.delivered,
            c.messages_received,
            c.bytes_in,
            c.bytes_out,
            c.slow_consumers(),
            c.flush_passes,
            c.ticker_pass_max_ns / 1000,
            closed.join(" "),
        );
    }
}

/// Position of a close reason in [`CLOSE_REASONS`].
pub fn close_index(reason: CloseReason) -> usize {
    match reason {
        CloseReason::ClientClosed(_) => 0,
        CloseReason::GoingAway => 1,
        CloseReason::Protocol(_) => 2,
        CloseReason::InvalidUtf8 => 3,
        CloseReason::TooBig => 4,
        CloseReason::SlowConsumer => 5,
        CloseReason::HeartbeatTimeout => 6,
        CloseReason::Disconnected => 7,
        CloseReason::Abnormal => 8,
        CloseReason::InvalidToken => 9,
        CloseReason::AuthRequired => 10,
        CloseReason::TokenExpired => 11,
        CloseReason::InsufficientState => 12,
        CloseReason::BadRequest => 13,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_failures_count_under_their_own_label() {
        for (i, label) in HANDSHAKE_FAILURES.iter().enumerate() {
            let m = ShardMetrics::default();
            m.on_handshake_failure(label.parse().ok());
            let c = m.snapshot();
            assert_eq!(c.handshake_failures[i], 1, "{label}");
            assert_eq!(c.handshake_failures.iter().sum::<u64>(), 1, "{label}");
        }
    }

    #[test]
    fn close_labels_match_reasons() {
        for reason in [
            CloseReason::ClientClosed(1000),
            CloseReason::GoingAway,
            CloseReason::Protocol(crate::error::Violation::ReservedBits),
            CloseReason::InvalidUtf8,
            CloseReason::TooBig,
            CloseReason::SlowConsumer,
            CloseReason::HeartbeatTimeout,
            CloseReason::Disconnected,
            CloseReason::Abnormal,
            CloseReason::InvalidToken,
            CloseReason::AuthRequired,
            CloseReason::TokenExpired,
            CloseReason::InsufficientState,
            CloseReason::BadRequest,
        ] {
            assert_eq!(CLOSE_REASONS[close_index(reason)], reason.label());
        }
    }

    #[test]
    fn handshake_failures_map_statuses() {
        let m = ShardMetrics::default();
        m.on_handshake_failure(Some(431));
        m.on_handshake_failure(None);
        m.on_handshake_failure(Some(599));
        let c = m.snapshot();
        assert_eq!(c.handshake_failures[6], 1);
        assert_eq!(c.handshake_failures[8], 2);
    }
}
