//! The public vocabulary of a link: [`RedisOptions`], [`RedisError`], [`LinkState`] and [`LinkStats`]; no behaviour.

use std::fmt;
use std::time::Duration;

use super::resp::ProtocolError;

/// Timeouts, limits and retry pacing of one link.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// TCP connect plus login (AUTH, SELECT, CLIENT SETNAME); default 1 s.
    pub connect_timeout: Duration,
    /// Longest wait for a reply; also how long a link owing replies may stay
    /// silent before it is declared dead. Default 1 s.
    pub command_timeout: Duration,
    /// Commands (or subscribe confirmations) awaiting replies before new
    /// ones get [`RedisError::Busy`]; bounds the queue. Default 10,000.
    pub max_in_flight: usize,
    /// First reconnect delay, doubled per failure; default 100 ms.
    pub backoff_min: Duration,
    /// Cap of the reconnect delay; default 5 s.
    pub backoff_max: Duration,
    /// Quiet time after which an idle link sends a PING to prove it is
    /// alive (catches a peer that vanished without a FIN); default 5 s.
    pub probe_interval: Duration,
}

impl Default for RedisOptions {
    fn default() -> RedisOptions {
        RedisOptions {
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
            max_in_flight: 10_000,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            probe_interval: Duration::from_secs(5),
        }
    }
}

/// Why a Redis call failed, by who caused it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisError {
    /// Not connected, or the connection was lost before the reply.
    Unavailable(String),
    /// No reply within `command_timeout`.
    Timeout,
    /// `max_in_flight` replies are already owed.
    Busy,
    /// Redis answered with an error reply.
    Server(String),
    /// Redis sent bytes that are not RESP2, or an unexpected reply.
    Protocol(String),
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisError::Unavailable(why) => write!(f, "redis unavailable: {why}"),
            RedisError::Timeout => f.write_str("redis timeout"),
            RedisError::Busy => f.write_str("redis busy: too many commands in flight"),
            RedisError::Server(msg) => write!(f, "redis error: {msg}"),
            RedisError::Protocol(why) => write!(f, "redis protocol error: {why}"),
        }
    }
}

impl std::error::Error for RedisError {}

impl From<ProtocolError> for RedisError {
    fn from(e: ProtocolError) -> RedisError {
        RedisError::Protocol(e.0)
    }
}

/// Where a link is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Connecting or logging in (a subscriber: also resubscribing).
    Connecting,
    /// Serving calls.
    Up,
    /// Lost or refused; waiting out the backoff (or closed).
    Down,
}

/// Counters of one link, copied out by `stats()`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Connections made after the first.
    pub reconnects: u64,
    /// Commands accepted (probes not counted).
    pub commands: u64,
    /// Calls that failed (error reply, timeout, busy, lost link) plus link failures.
    pub errors: u64,
    /// Sum of command round trips in microseconds.
    pub latency_sum_us: u64,
    /// Number of round trips in `latency_sum_us`.
    pub latency_count: u64,
    /// Replies owed right now.
    pub in_flight: usize,
    /// Pub/sub messages delivered.
    pub messages: u64,
    /// The last link failure.
    pub last_error: Option<String>,
}
