//! `Outbox`: one connection's queue of encoded frames waiting for the
//! socket, bounded in bytes.
//!
//! Frames are shared `Bytes` (a fan-out pushes a refcount, not a copy), and
//! the connection writes as many as fit in one `sendmsg` (the "cork").
//! Each frame carries the time its publish entered the server (0 for
//! replies and control frames), reported when its last byte is written.
//! An empty outbox holds no heap memory.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::Bytes;

/// Most frames handed to one `sendmsg`; well under IOV_MAX (1024).
pub const MAX_IOVECS: usize = 64;

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
    /// unwritten byte count afterwards.
    pub fn push(&mut self, frame: Bytes, stamp: u64) -> usize {
        self.queued += frame.len();
        self.frames.push_back((frame, stamp));
        self.queued
    }

    /// Unwritten bytes.
    pub fn queued(&self) -> usize {
        self.queued
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
