//! `Outbox`: one connection's queue of encoded frames waiting for the
//! socket, bounded in bytes.
//!
//! Frames are shared `Bytes` (a fan-out pushes a refcount, not a copy), and
//! the connection writes as many as fit in one `sendmsg` (the "cork").
//! Each frame carries the time its publish entered the server (0 for
//! replies and control frames), reported when its last byte is written.
//! An empty outbox holds no heap memory. The limit is applied to
//! [`Outbox::cost`], which charges each frame its queue slot as well as its
//! bytes, so a flood of tiny frames is bounded like a few large ones.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::Bytes;

/// Most frames handed to one `sendmsg`; well under IOV_MAX (1024).
pub const MAX_IOVECS: usize = 64;

/// What one queued frame costs beyond its bytes, charged against
/// `--max-outbound-bytes` so that the limit bounds memory, not just
/// payload: its slot in the queue (40 B), twice over because a `VecDeque`
/// doubles its capacity (up to half of it may be empty), plus one malloc
/// chunk header (16 B) for a frame allocated for this connection alone (a
/// reply). A flood of 2-byte frames is thus charged 98 B each, not 2.
pub const ENTRY_COST: usize = 2 * std::mem::size_of::<(Bytes, u64)>() + 16;

/// Queued outbound frames of one connection.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Whole frames with their publish stamps, oldest first; the first may
    /// be partly written.
    frames: VecDeque<(Bytes, u64)>,
    /// Bytes of `frames[0]` already written.
    head_written: usize,
    /// Unwritten bytes across all frames.
    queued: usize,
}

impl Outbox {
    /// Queues a frame stamped with its publish time (0: none). Returns the
    /// outbox's [`Outbox::cost`] afterwards.
    pub fn push(&mut self, frame: Bytes, stamp: u64) -> usize {
        self.queued += frame.len();
        self.frames.push_back((frame, stamp));
        self.cost()
    }

    /// Unwritten bytes.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Memory the queue stands for: unwritten bytes plus [`ENTRY_COST`]
    /// per queued frame.
    pub fn cost(&self) -> usize {
        self.queued + self.frames.len() * ENTRY_COST
    }

    /// True when nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Fills `slices` with the unwritten bytes, oldest first; returns the count.
    pub fn slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (i, (frame, _)) in self.frames.iter().take(slices.len()).enumerate() {
            let start = if i == 0 { self.head_written } else { 0 };
            slices[i] = IoSlice::new(&frame[start..]);
            n += 1;
        }
        n
    }

    /// Marks `n` bytes written, calling `on_sent` with the stamp of each
    /// stamped frame whose last byte went out; releases the queue's memory
    /// once it is empty.
    pub fn advance(&mut self, mut n: usize, mut on_sent: impl FnMut(u64)) {
        self.queued -= n;
        while n > 0 {
            let left = self.frames[0].0.len() - self.head_written;
            if n < left {
                self.head_written += n;
                return;
            }
            n -= left;
            if let Some((_, stamp)) = self.frames.pop_front() {
                if stamp != 0 {
                    on_sent(stamp);
                }
            }
            self.head_written = 0;
        }
        if self.frames.is_empty() {
            self.frames = VecDeque::new();
        }
    }

    /// Drops every frame not yet started, keeping a partly written head frame
    /// so the stream stays well-formed. Used before a close frame is queued
    /// to a connection that is being cut off.
    pub fn discard_unstarted(&mut self) {
        let keep = usize::from(self.head_written > 0);
        while self.frames.len() > keep {
            if let Some((frame, _)) = self.frames.pop_back() {
                self.queued -= frame.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_writes_resume_mid_frame() {
        let mut o = Outbox::default();
        o.push(Bytes::from_static(b"abc"), 7);
        o.push(Bytes::from_static(b"de"), 0);
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
        let cost = o.push(Bytes::from_static(b"ab"), 0);
        assert_eq!(cost, 2 + ENTRY_COST);
        assert!(ENTRY_COST >= 2 * std::mem::size_of::<(Bytes, u64)>());
        o.advance(2, |_| {});
        assert_eq!(o.cost(), 0);
    }

    #[test]
    fn discard_keeps_a_started_frame() {
        let mut o = Outbox::default();
        o.push(Bytes::from_static(b"abc"), 0);
        o.push(Bytes::from_static(b"de"), 0);
        o.advance(1, |_| {});
        o.discard_unstarted();
        assert_eq!(o.queued(), 2);
        o.advance(2, |_| {});
        assert!(o.is_empty());
    }
}
