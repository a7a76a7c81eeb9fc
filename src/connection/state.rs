//! `ConnState`: the half of a connection that lives in the shard's table,
//! so fan-out and the ticker can queue frames and wake the task without
//! touching the socket.

use std::task::Waker;

use bytes::Bytes;

use crate::error::CloseReason;
use crate::outbox::Outbox;
use crate::readiness::{READABLE, WRITABLE};
use crate::ws;

/// The half of a connection that the shard can reach: outbox, waker, timers.
#[derive(Debug)]
pub struct ConnState {
    /// Frames waiting for the socket.
    pub(super) outbox: Outbox,
    /// Wakes the connection's task when something is queued.
    pub(super) waker: Option<Waker>,
    /// Per-shard sequence number; tells a reused key from its old owner.
    pub(crate) seq: u64,
    /// Last ping sent (shard ms).
    last_ping_ms: u64,
    /// First ping not yet followed by any received byte; 0 when none.
    pub(super) unanswered_ping_ms: u64,
    /// When a closing connection is dropped regardless (shard ms).
    close_deadline_ms: u64,
    /// Set once the server has queued its close frame.
    pub(super) closing: Option<CloseReason>,
    /// Reads paused until other shards acknowledge a subscribe.
    pub(crate) awaiting_ack: bool,
    /// Deadline passed: the task must end now.
    pub(super) dead: bool,
    /// A /ws (pub/sub) connection, as opposed to /echo; broadcasts reach only these.
    pubsub: bool,
    /// `READABLE`/`WRITABLE` edges, set by the shard's epoll events and
    /// cleared by the task when a `recv` or `send` comes up short (so an
    /// idle socket is never asked again until the kernel says something
    /// changed), plus the sticky `READ_CLOSED`/`WRITE_CLOSED` hang-up bits
    /// that no short transfer clears (see [`crate::readiness`]).
    pub(super) ready: u8,
}

impl ConnState {
    /// State of a connection opened at `now_ms`.
    pub fn new(seq: u64, now_ms: u64, pubsub: bool) -> ConnState {
        ConnState {
            outbox: Outbox::default(),
            waker: None,
            seq,
            last_ping_ms: now_ms,
            unanswered_ping_ms: 0,
            close_deadline_ms: 0,
            closing: None,
            awaiting_ack: false,
            dead: false,
            pubsub,
            ready: READABLE | WRITABLE,
        }
    }

    /// Records readiness (edge and sticky bits) and wakes the task.
    pub fn on_readiness(&mut self, ready: u8) {
        self.ready |= ready;
        self.wake();
    }

    /// True for /ws connections.
    pub fn is_pubsub(&self) -> bool {
        self.pubsub
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.outbox.queued()
    }

    /// Queues a frame. Returns false when the outbox's cost (bytes plus a
    /// per-frame charge, [`crate::outbox::ENTRY_COST`]) is over `limit`; the
    /// caller then closes the connection as a slow consumer. A frame that
    /// finds the outbox empty always fits, so a message of the largest
    /// allowed size can be sent whatever the limit. Frames queued after the
    /// server's close frame are dropped.
    pub fn push(&mut self, frame: Bytes, stamp: u64, limit: usize) -> bool {
        if self.closing.is_some() {
            return true;
        }
        let was_empty = self.outbox.is_empty();
        let cost = self.outbox.push(frame, stamp);
        self.wake();
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
            self.outbox.push(ws::close(reason.code(), reason.text()), 0);
        }
        self.closing = Some(reason);
        self.close_deadline_ms = deadline_ms;
        self.wake();
        true
    }

    /// Periodic check: pings, the pong timeout and the close deadline.
    pub fn tick(&mut self, now: u64, ping_ms: u64, pong_ms: u64, close_deadline: u64) {
        if self.closing.is_some() {
            if now >= self.close_deadline_ms && !self.dead {
                self.dead = true;
                self.wake();
            }
            return;
        }
        if self.unanswered_ping_ms != 0 && now - self.unanswered_ping_ms >= pong_ms {
            self.begin_close(CloseReason::HeartbeatTimeout, close_deadline);
            return;
        }
        if now - self.last_ping_ms >= ping_ms {
            self.last_ping_ms = now;
            if self.unanswered_ping_ms == 0 {
                self.unanswered_ping_ms = now;
            }
            self.outbox.push(ws::PING.clone(), 0);
            self.wake();
        }
    }

    fn wake(&self) {
        if let Some(waker) = &self.waker {
            waker.wake_by_ref();
        }
    }
}
