//! The flush pass: fan-out queues frames and marks subscribers dirty; once
//! per executor turn one pass writes every dirty outbox, so all publishes
//! queued since the last pass leave in one `sendmsg` per subscriber and no
//! subscriber's task is woken to deliver.

use std::io::{self, IoSlice};

use super::{ConnKey, Shard};
use crate::connection::ConnState;
use crate::latency::{self, Latency};
use crate::outbox::MAX_IOVECS;
use crate::reactor::{after_io, can, WRITABLE};
use crate::sys;

/// Connections one pass writes before it offers the executor to other
/// tasks (a pass over a huge channel must not hold the core for long).
const CONNS_PER_SLICE: usize = 256;

impl Shard {
    /// Puts `key` in the flush list unless it is there already; the first
    /// entry wakes the flush task.
    pub(crate) fn mark_dirty(&self, key: ConnKey, conn: &mut ConnState) {
        if conn.dirty {
            return;
        }
        conn.dirty = true;
        let mut list = self.flush_list.borrow_mut();
        if list.is_empty() {
            self.flush_wake.fire();
        }
        list.push(key);
    }

    /// The flush task: runs for the shard's life.
    pub async fn flush_forever(self: std::rc::Rc<Self>) {
        let mut batch: Vec<ConnKey> = Vec::new();
        loop {
            self.flush_wake.wait().await;
            std::mem::swap(&mut batch, &mut *self.flush_list.borrow_mut());
            self.metrics.bump(|c| c.flush_passes += 1);
            for (i, key) in batch.drain(..).enumerate() {
                self.flush_one(key);
                if i % CONNS_PER_SLICE == CONNS_PER_SLICE - 1 {
                    glommio::yield_if_needed().await;
                }
            }
            // Keep a busy shard's list allocated, but give back a burst's.
            if batch.capacity() > 4 * CONNS_PER_SLICE {
                batch = Vec::new();
            }
        }
    }

    /// Writes one dirty connection's outbox. A socket that fills up is left
    /// to the connection's poll (woken by the writable edge); a failed write
    /// ends the connection; a closing connection is woken to see its flush.
    fn flush_one(&self, key: ConnKey) {
        let mut conns = self.conns.borrow_mut();
        // Not dirty: a stale entry (its connection closed and the key went
        // to a new one) or one already written by an earlier entry.
        let Some(conn) = conns.get_mut(key.0 as usize).filter(|c| c.dirty) else {
            return;
        };
        conn.dirty = false;
        match self.write_outbox(conn) {
            Ok(_) if !conn.is_closing() => {}
            Ok(_) => conn.wake(),
            Err(e) => {
                log::debug!("write failed conn={}-{}: {e}", self.id.0, conn.seq);
                conn.fail();
            }
        }
    }

    /// Writes as much of `conn`'s outbox as its socket takes, one `sendmsg`
    /// per batch of frames, recording each publish's fan-out latency.
    /// Ok(true) when the outbox is empty; Ok(false) when the socket is full
    /// (its next epoll event wakes the connection).
    pub(crate) fn write_outbox(&self, conn: &mut ConnState) -> io::Result<bool> {
        loop {
            if conn.outbox.is_empty() {
                return Ok(true);
            }
            if !can(conn.ready, WRITABLE) {
                return Ok(false);
            }
            let written = {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let n = conn.outbox.slices(&mut slices);
                let result = sys::send_vectored(conn.fd(), &slices[..n]);
                let len = slices[..n].iter().map(|s| s.len()).sum();
                after_io(&mut conn.ready, WRITABLE, &result, len);
                match result {
                    Ok(written) => written,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                    Err(e) => return Err(e),
                }
            };
            let mut latency = self.latency.borrow_mut();
            let mut now_ns = 0;
            conn.outbox.advance(written, |stamp| {
                if now_ns == 0 {
                    now_ns = latency::now_ns();
                }
                Latency::record(&mut latency.fanout, stamp, now_ns);
            });
            self.metrics.bump(|c| c.bytes_out += written as u64);
        }
    }
}
