//! `ConnState`: one upgraded connection, as it lives in the shard's table:
//! what fan-out, the ticker and the epoll set reach (outbox, timers,
//! readiness bits), the socket itself, and what the connection's poll
//! keeps between polls ([`Parked`]). There is no task per connection: the
//! shard's run queue ([`crate::reactor`]) says which connections to poll.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::Parked;
use crate::error::CloseReason;
use crate::http::Route;
use crate::outbox::{Frame, Outbox};
use crate::reactor::{self, READABLE, WRITABLE};
use crate::shard::UserSlot;
use crate::wire::Wire;
use crate::ws;

/// One upgraded connection: outbox, timers, readiness, socket and the
/// protocol state its poll parks here.
#[derive(Debug)]
pub struct ConnState {
    /// Frames waiting for the socket.
    pub(crate) outbox: Outbox,
    /// Per-shard sequence number; tells a reused key from its old owner.
    pub(crate) seq: u64,
    /// The decoder, channels and read state, between two polls.
    pub(super) parked: Parked,
    /// Last ping sent (shard ms, low 32 bits: see [`since`]).
    last_ping_ms: u32,
    /// First ping not yet followed by any received byte (low 32 bits of
    /// shard ms, never 0); 0 when none.
    pub(super) unanswered_ping_ms: u32,
    /// When a closing connection is dropped regardless (low 32 bits of shard ms).
    close_deadline_ms: u32,
    /// This connection's key in the shard's table (what waking it queues).
    key: u32,
    /// The socket; closed when the connection leaves the table. The flush
    /// pass and the connection's poll both write to it.
    fd: OwnedFd,
    /// The connection's user in the shard's [`crate::shard::Users`];
    /// [`UserSlot::NONE`] while anonymous.
    pub(crate) user: UserSlot,
    /// Shard second ([`crate::shard::Shard::now_ms`] / 1000) at which the
    /// connection is closed: its token's expiry (4002), or, under
    /// `--require-auth`, the end of its time to send `connect` (4001);
    /// 0 when none.
    pub(crate) auth_deadline_s: u32,
    /// Set once the server has queued its close frame.
    pub(super) closing: Option<CloseReason>,
    /// `/ws` (pub/sub; broadcasts reach only these), `/echo`, or
    /// `/connection/websocket` with its encoding.
    pub(super) route: Route,
    /// Reads paused until other shards acknowledge a subscribe.
    pub(crate) awaiting_ack: bool,
    /// Deadline passed: the connection must end at its next poll.
    pub(super) dead: bool,
    /// `READABLE`/`WRITABLE` edges, set by the shard's epoll events and
    /// cleared when a `recv` or `send` comes up short (so an idle socket
    /// is never asked again until the kernel says something changed),
    /// plus the sticky `READ_CLOSED`/`WRITE_CLOSED` hang-up bits that no
    /// short transfer clears (see [`crate::reactor`]).
    pub(crate) ready: u8,
    /// In the shard's flush list (queued to by fan-out since the last pass).
    pub(crate) dirty: bool,
    /// In the shard's run queue (woken since its last poll began).
    pub(super) scheduled: bool,
    /// How the connection wants its frames: encoding and compression
    /// (permessage-deflate's window). With no context takeover that is its
    /// whole compression state: the compressors are the shard's.
    pub(crate) wire: Wire,
}

impl ConnState {
    /// State of connection `key` on socket `fd`, opened at `now_ms`.
    pub fn new(
        key: u32,
        fd: OwnedFd,
        seq: u64,
        now_ms: u64,
        route: Route,
        wire: Wire,
    ) -> ConnState {
        ConnState {
            outbox: Outbox::default(),
            seq,
            parked: Parked::default(),
            last_ping_ms: now_ms as u32,
            unanswered_ping_ms: 0,
            close_deadline_ms: 0,
            key,
            fd,
            user: UserSlot::NONE,
            auth_deadline_s: 0,
            closing: None,
            route,
            awaiting_ack: false,
            dead: false,
            ready: READABLE | WRITABLE,
            dirty: false,
            scheduled: false,
            wire,
        }
    }

    /// The socket's descriptor.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Records readiness (edge and sticky bits) and wakes the connection.
    pub fn on_readiness(&mut self, ready: u8) {
        self.ready |= ready;
        self.wake();
    }

    /// True once the server has queued its close frame.
    pub fn is_closing(&self) -> bool {
        self.closing.is_some()
    }

    /// A write to the socket failed: the connection must end now.
    pub(crate) fn fail(&mut self) {
        self.dead = true;
        self.wake();
    }

    /// True for /ws connections (the ones `/api/broadcast` reaches).
    pub fn is_pubsub(&self) -> bool {
        self.route == Route::Ws
    }

    /// The Centrifugo encoding of a /connection/websocket client; `None`
    /// for /ws and /echo.
    pub(crate) fn centrifugo(&self) -> Option<crate::centrifugo::Encoding> {
        match self.route {
            Route::Centrifugo(encoding) => Some(encoding),
            _ => None,
        }
    }

    /// Takes `channel` off the connection's channel list (the shard ended
    /// that subscription). False when it is not there, or when the list is
    /// out of the table because the connection is being polled.
    pub(crate) fn forget_channel(&mut self, channel: &str) -> bool {
        self.parked.channels.remove(channel)
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.outbox.queued()
    }

    /// Queues a frame, without waking the connection (the shard's flush pass
    /// writes it). Returns false when the outbox's cost (bytes plus a
    /// per-frame charge, [`crate::outbox::ENTRY_COST`]) is over `limit`; the
    /// caller then closes the connection as a slow consumer. A frame that
    /// finds the outbox empty always fits, so a message of the largest
    /// allowed size can be sent whatever the limit. Frames queued after the
    /// server's close frame are dropped.
    pub fn push(&mut self, frame: Frame, limit: usize) -> bool {
        if self.closing.is_some() {
            return true;
        }
        let was_empty = self.outbox.is_empty();
        let cost = self.outbox.push(frame);
        was_empty || cost <= limit
    }

    /// Queues the close frame for `reason` (once); the connection must then be
    /// gone by `deadline_ms`. Returns false if it was already closing.
    pub fn begin_close(&mut self, reason: CloseReason, deadline_ms: u64) -> bool {
        if self.closing.is_some() {
            return false;
        }
        if matches!(
            reason,
            CloseReason::SlowConsumer | CloseReason::HeartbeatTimeout
        ) {
            self.outbox.discard_unstarted();
        }
        if reason != CloseReason::Abnormal {
            let frame = match self.route {
                // Centrifugo's disconnect codes carry the reconnect advice.
                Route::Centrifugo(_) => crate::centrifugo::close_frame(reason),
                _ => ws::close(reason.code(), reason.text()),
            };
            self.outbox.push(Frame::Own(frame));
        }
        self.closing = Some(reason);
        self.close_deadline_ms = deadline_ms as u32;
        self.wake();
        true
    }

    /// Periodic check: pings, the pong timeout, the token's expiry and the
    /// close deadline; an idle outbox gives its storage back.
    pub fn tick(&mut self, now: u64, ping_ms: u64, pong_ms: u64, close_deadline: u64) {
        self.outbox.reclaim();
        if self.closing.is_some() {
            if passed(now, self.close_deadline_ms) && !self.dead {
                self.dead = true;
                self.wake();
            }
            return;
        }
        if self.auth_deadline_s != 0 && now / 1000 >= u64::from(self.auth_deadline_s) {
            let reason = if self.user.is_some() {
                CloseReason::TokenExpired
            } else {
                CloseReason::AuthRequired
            };
            self.begin_close(reason, close_deadline);
            return;
        }
        if self.unanswered_ping_ms != 0 && since(now, self.unanswered_ping_ms) >= pong_ms {
            self.begin_close(CloseReason::HeartbeatTimeout, close_deadline);
            return;
        }
        if since(now, self.last_ping_ms) >= ping_ms {
            self.last_ping_ms = now as u32;
            if self.unanswered_ping_ms == 0 {
                self.unanswered_ping_ms = (now as u32).max(1);
            }
            let ping = match self.route {
                // The SDKs watch for the protocol's own ping, not the
                // WebSocket one (browsers hide those).
                Route::Centrifugo(encoding) => crate::centrifugo::ping_frame(encoding),
                _ => ws::PING.clone(),
            };
            self.outbox.push(Frame::Own(ping));
            self.wake();
        }
    }

    /// Queues the connection for a poll (to read again, or to see a state
    /// change), once until that poll begins.
    pub(crate) fn wake(&mut self) {
        if !self.scheduled {
            self.scheduled = true;
            reactor::schedule(self.key);
        }
    }
}

/// Milliseconds from `then` (the low 32 bits of a shard time) to `now`.
/// Keeping 32 bits saves 12 bytes per connection; it is exact for spans
/// under 49 days, and every timer span is bounded far below that
/// (`Config::validate`).
fn since(now: u64, then: u32) -> u64 {
    u64::from((now as u32).wrapping_sub(then))
}

/// True once `now` has reached `deadline` (low 32 bits of a shard time set
/// less than 24 days before).
fn passed(now: u64, deadline: u32) -> bool {
    (deadline.wrapping_sub(now as u32) as i32) <= 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_timer_fields_survive_the_32_bit_wrap() {
        let before_wrap = u64::from(u32::MAX) - 5;
        assert_eq!(since(before_wrap + 10, before_wrap as u32), 10);
        assert!(passed(before_wrap + 10, (before_wrap + 3) as u32));
        assert!(!passed(before_wrap, (before_wrap + 3) as u32));
    }
}
