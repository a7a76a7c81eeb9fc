//! The flush pass: fan-out queues frames and marks subscribers dirty; once
//! per executor turn one pass writes every dirty outbox, so all publishes
//! queued since the last pass leave in one `sendmsg` per subscriber and no
//! subscriber's task is woken to deliver.

use std::io::{self, IoSlice};

use super::{ConnKey, Shard};
use crate::config::SendPath;
use crate::connection::ConnState;
use crate::latency::{self, Latency};
use crate::outbox::MAX_IOVECS;
use crate::reactor::{after_io, can, SendRing, WRITABLE};
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
        self.start_send_ring();
        let mut batch: Vec<ConnKey> = Vec::new();
        loop {
            self.flush_wake.wait().await;
            std::mem::swap(&mut batch, &mut *self.flush_list.borrow_mut());
            self.metrics.bump(|c| c.flush_passes += 1);
            for slice in batch.chunks(CONNS_PER_SLICE) {
                self.flush_slice(slice);
                glommio::yield_if_needed().await;
            }
            batch.clear();
            // Keep a busy shard's list allocated, but give back a burst's.
            if batch.capacity() > 4 * CONNS_PER_SLICE {
                batch = Vec::new();
            }
        }
    }

    /// With `--send-path io-uring`, makes the shard's send ring; without a
    /// ring (or when the kernel refuses one) sends stay plain syscalls.
    fn start_send_ring(&self) {
        if self.config.config.send_path != SendPath::IoUring {
            return;
        }
        match SendRing::new() {
            Ok(ring) => *self.send_ring.borrow_mut() = Some(ring),
            Err(e) => log::warn!("send path io-uring unavailable, using syscalls: {e}"),
        }
    }

    /// Writes one slice of the flush list: on the send ring when there is
    /// one (one submit for the slice), else one `sendmsg` per connection.
    fn flush_slice(&self, keys: &[ConnKey]) {
        let mut ring = self.send_ring.borrow_mut();
        match ring.as_mut() {
            Some(ring) => self.flush_slice_on_ring(keys, ring),
            None => keys.iter().for_each(|&key| self.flush_one(key)),
        }
    }

    /// The io_uring form of [`Shard::flush_one`] for a whole slice: every
    /// writable dirty connection's first `sendmsg` goes in one submit; the
    /// rare outbox longer than one `sendmsg` finishes with plain syscalls.
    fn flush_slice_on_ring(&self, keys: &[ConnKey], ring: &mut SendRing) {
        let mut conns = self.conns.borrow_mut();
        let mut fds = [0; CONNS_PER_SLICE];
        let mut sent = [(0u32, 0usize); CONNS_PER_SLICE];
        for &key in keys {
            let Some(conn) = conns.get_mut(key.0 as usize).filter(|c| c.dirty) else {
                continue;
            };
            conn.dirty = false;
            if conn.outbox.is_empty() || !can(conn.ready, WRITABLE) {
                // Nothing to write now; a closing one is woken to see that.
                self.finish_flush(conn, Ok(false));
                continue;
            }
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let n = conn.outbox.slices(&mut slices);
            fds[ring.len()] = conn.fd();
            sent[ring.len()] = (key.0, slices[..n].iter().map(|s| s.len()).sum());
            ring.queue(&slices[..n]);
        }
        let n = ring.len();
        // The outboxes queued above are not touched until each completion
        // is handled below, while `conns` stays borrowed.
        ring.submit(&fds[..n], |i, result| {
            let (key, len) = sent[i];
            let Some(conn) = conns.get_mut(key as usize) else {
                return;
            };
            let outcome = self
                .after_send(conn, result, len)
                .and_then(|_| self.write_outbox(conn));
            self.finish_flush(conn, outcome);
        });
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
        let outcome = self.write_outbox(conn);
        self.finish_flush(conn, outcome);
    }

    /// After a flush wrote what it could of `conn`'s outbox: a failed write
    /// ends the connection; a closing connection is woken to see its flush.
    fn finish_flush(&self, conn: &mut ConnState, outcome: io::Result<bool>) {
        match outcome {
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
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let n = conn.outbox.slices(&mut slices);
            let result = sys::send_vectored(conn.fd(), &slices[..n]);
            let len = slices[..n].iter().map(|s| s.len()).sum();
            self.after_send(conn, result, len)?;
        }
    }

    /// Accounts one `sendmsg` of `len` bytes from `conn`'s outbox that
    /// returned `result`: readiness, the written frames (recording each
    /// publish's fan-out latency), the byte counter. A full socket or an
    /// interrupted call writes 0 bytes; any other error is returned.
    fn after_send(
        &self,
        conn: &mut ConnState,
        result: io::Result<usize>,
        len: usize,
    ) -> io::Result<()> {
        after_io(&mut conn.ready, WRITABLE, &result, len);
        let written = match result {
            Ok(written) => written,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
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
        Ok(())
    }
}
