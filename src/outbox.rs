//! `Outbox`: one connection's queue of encoded frames waiting for the
//! socket, bounded in bytes.
//!
//! A publish is queued as a [`Frame::Shared`]: one shard-local `Rc` per
//! shard per publish, so queuing it for a subscriber is a non-atomic
//! increment on a line this core owns, never a copy and never an atomic on
//! the `Bytes` every shard shares. Replies and control frames are
//! [`Frame::Own`]. The connection writes as many frames as fit in one
//! `sendmsg` (the "cork"); a publish's stamp (when it entered the server)
//! is reported when its last byte is written. The queue keeps its storage
//! when it drains, so a subscriber that keeps up queues without
//! allocating; [`Outbox::reclaim`] (from the shard's ticker) frees it once
//! the connection is idle, so an idle connection holds no heap memory and
//! its outbox is one null pointer. The
//! limit is applied to [`Outbox::cost`], which charges each frame its
//! queue slot as well as its bytes, so a flood of tiny frames is bounded
//! like a few large ones.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::rc::Rc;

use bytes::Bytes;

/// Most frames handed to one `sendmsg`; well under IOV_MAX (1024).
pub const MAX_IOVECS: usize = 64;

/// What one queued frame costs beyond its bytes, charged against
/// `--max-outbound-bytes` so that the limit bounds memory, not just
/// payload: its slot in the queue, twice over because a `VecDeque`
/// doubles its capacity (up to half of it may be empty), plus one malloc
/// chunk header (16 B) for a frame allocated for this connection alone (a
/// reply). A flood of 2-byte frames is thus charged about 50x its bytes.
pub const ENTRY_COST: usize = 2 * std::mem::size_of::<Frame>() + 16;

/// A publish's frame as one shard holds it: the bytes every shard shares
/// and the time the publish entered the server.
#[derive(Debug)]
pub struct Published {
    /// The encoded frame (shared with other shards).
    pub frame: Bytes,
    /// `latency::now_ns` at the publish; 0 when not measured.
    pub stamp: u64,
}

/// One queued frame.
#[derive(Debug, Clone)]
pub enum Frame {
    /// A frame for this connection alone (a reply, a control frame).
    Own(Bytes),
    /// A publish, shared by every local subscriber through one shard-local
    /// reference count.
    Shared(Rc<Published>),
}

impl Frame {
    /// The encoded frame.
    pub fn bytes(&self) -> &Bytes {
        match self {
            Frame::Own(bytes) => bytes,
            Frame::Shared(published) => &published.frame,
        }
    }

    fn stamp(&self) -> u64 {
        match self {
            Frame::Own(_) => 0,
            Frame::Shared(published) => published.stamp,
        }
    }

    /// Another form of this frame (`bytes`, converted or compressed from
    /// it), queued the same way: shared with the same stamp, or owned.
    pub fn derived(&self, bytes: Bytes) -> Frame {
        match self {
            Frame::Own(_) => Frame::Own(bytes),
            Frame::Shared(published) => Frame::Shared(Rc::new(Published {
                frame: bytes,
                stamp: published.stamp,
            })),
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    /// True for an empty frame (never queued in practice).
    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }
}

impl From<Bytes> for Frame {
    fn from(bytes: Bytes) -> Frame {
        Frame::Own(bytes)
    }
}

impl Outbox {
    /// Queues a frame. Returns the outbox's [`Outbox::cost`] afterwards.
    pub fn push(&mut self, frame: Frame) -> usize {
        self.queue.get_or_insert_with(Box::default).push(frame)
    }

    /// Unwritten bytes.
    pub fn queued(&self) -> usize {
        self.queue.as_ref().map_or(0, |q| q.queued)
    }

    /// Memory the queue stands for: unwritten bytes plus [`ENTRY_COST`]
    /// per queued frame.
    pub fn cost(&self) -> usize {
        self.queue.as_ref().map_or(0, |q| q.cost())
    }

    /// True when nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.queue.as_ref().is_none_or(|q| q.frames.is_empty())
    }

    /// Fills `slices` with the unwritten bytes, oldest first; returns the count.
    pub fn slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        self.queue.as_ref().map_or(0, |q| q.slices(slices))
    }

    /// Marks `n` bytes written, calling `on_sent` with the stamp of each
    /// stamped frame whose last byte went out. The queue keeps its storage
    /// (see [`Outbox::reclaim`]).
    pub fn advance(&mut self, n: usize, on_sent: impl FnMut(u64)) {
        if let Some(q) = &mut self.queue {
            q.advance(n, on_sent);
        }
    }

    /// Frees the queue and its storage if it is empty: called from the
    /// shard's ticker, so a busy subscriber does not allocate per delivery
    /// and an idle one holds no heap memory for longer than one ticker
    /// cycle.
    pub fn reclaim(&mut self) {
        if self.is_empty() {
            self.queue = None;
        }
    }

    /// Drops every frame not yet started, keeping a partly written head frame
    /// so the stream stays well-formed. Used before a close frame is queued
    /// to a connection that is being cut off.
    pub fn discard_unstarted(&mut self) {
        if let Some(q) = &mut self.queue {
            q.discard_unstarted();
        }
    }
}

/// Queued outbound frames of one connection. Only a pointer while the
/// connection is idle: the queue (its counters and its deque) is allocated
/// when a frame is queued and freed with the deque's storage by
/// [`Outbox::reclaim`], so an idle connection's table slot carries 8 bytes
/// of outbox instead of 48.
#[derive(Debug, Default)]
pub struct Outbox {
    /// The queue; `None` when it was reclaimed (or never used).
    queue: Option<Box<Queue>>,
}

/// The frames themselves and their counts.
#[derive(Debug, Default)]
struct Queue {
    /// Whole frames, oldest first; the first may be partly written.
    frames: VecDeque<Frame>,
    /// Bytes of `frames[0]` already written.
    head_written: usize,
    /// Unwritten bytes across all frames.
    queued: usize,
}

impl Queue {
    /// Queues a frame. Returns the outbox's [`Outbox::cost`] afterwards.
    fn push(&mut self, frame: Frame) -> usize {
        self.queued += frame.len();
        self.frames.push_back(frame);
        self.cost()
    }

    /// Memory the queue stands for: unwritten bytes plus [`ENTRY_COST`]
    /// per queued frame.
    fn cost(&self) -> usize {
        self.queued + self.frames.len() * ENTRY_COST
    }

    /// Fills `slices` with the unwritten bytes, oldest first; returns the count.
    fn slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (i, frame) in self.frames.iter().take(slices.len()).enumerate() {
            let start = if i == 0 { self.head_written } else { 0 };
            slices[i] = IoSlice::new(&frame.bytes()[start..]);
            n += 1;
        }
        n
    }

    /// Marks `n` bytes written, calling `on_sent` with the stamp of each
    /// stamped frame whose last byte went out. The queue keeps its storage
    /// (see [`Outbox::reclaim`]).
    fn advance(&mut self, mut n: usize, mut on_sent: impl FnMut(u64)) {
        self.queued -= n;
        while n > 0 {
            let left = self.frames[0].len() - self.head_written;
            if n < left {
                self.head_written += n;
                return;
            }
            n -= left;
            if let Some(frame) = self.frames.pop_front() {
                let stamp = frame.stamp();
                if stamp != 0 {
                    on_sent(stamp);
                }
            }
            self.head_written = 0;
        }
    }

    /// Drops every frame not yet started, keeping a partly written head frame
    /// so the stream stays well-formed. Used before a close frame is queued
    /// to a connection that is being cut off.
    fn discard_unstarted(&mut self) {
        let keep = usize::from(self.head_written > 0);
        while self.frames.len() > keep {
            if let Some(frame) = self.frames.pop_back() {
                self.queued -= frame.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(bytes: &'static [u8], stamp: u64) -> Frame {
        Frame::Shared(Rc::new(Published {
            frame: Bytes::from_static(bytes),
            stamp,
        }))
    }

    #[test]
    fn partial_writes_resume_mid_frame() {
        let mut o = Outbox::default();
        o.push(shared(b"abc", 7));
        o.push(Bytes::from_static(b"de").into());
        let mut sent = Vec::new();
        o.advance(2, |s| sent.push(s));
        let mut s = [IoSlice::new(&[]); 4];
        let n = o.slices(&mut s);
        assert_eq!((n, &*s[0], &*s[1]), (2, &b"c"[..], &b"de"[..]));
        assert!(sent.is_empty(), "frame not finished yet");
        o.advance(3, |s| sent.push(s));
        assert_eq!(sent, vec![7], "only stamped frames are reported");
        assert!(o.is_empty());
        assert_eq!(o.queued(), 0);
    }

    #[test]
    fn every_frame_is_charged_its_queue_slot() {
        let mut o = Outbox::default();
        assert_eq!(o.cost(), 0);
        let cost = o.push(Bytes::from_static(b"ab").into());
        assert_eq!(cost, 2 + ENTRY_COST);
        assert!(ENTRY_COST >= 2 * std::mem::size_of::<Frame>());
        o.advance(2, |_| {});
        assert_eq!(o.cost(), 0);
    }

    #[test]
    fn storage_is_kept_until_reclaimed() {
        let mut o = Outbox::default();
        o.push(shared(b"abc", 1));
        o.advance(3, |_| {});
        let capacity = |o: &Outbox| o.queue.as_ref().map_or(0, |q| q.frames.capacity());
        assert!(capacity(&o) > 0, "a drained queue keeps its storage");
        o.push(shared(b"d", 1));
        o.reclaim();
        assert!(capacity(&o) > 0, "a non-empty queue is not reclaimed");
        o.advance(1, |_| {});
        o.reclaim();
        assert!(o.queue.is_none(), "an empty queue is freed");
    }

    #[test]
    fn discard_keeps_a_started_frame() {
        let mut o = Outbox::default();
        o.push(Bytes::from_static(b"abc").into());
        o.push(Bytes::from_static(b"de").into());
        o.advance(1, |_| {});
        o.discard_unstarted();
        assert_eq!(o.queued(), 2);
        o.advance(2, |_| {});
        assert!(o.is_empty());
    }
}
