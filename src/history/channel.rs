//! One channel's history: its top offset, its epoch and the publications it
//! still holds, oldest first. Store-wide accounting (bytes, the global
//! append order) is the store's job; this file only reports what it freed.

use std::collections::VecDeque;

use bytes::Bytes;

use super::epoch::Epoch;
use super::Publication;

/// One held publication: 48 bytes (guarded by a test). Its offset is not
/// stored: the deque is contiguous, so it is `oldest_offset() + index`.
#[derive(Debug)]
pub(super) struct Entry {
    /// Store-wide append sequence number: ties this entry to its slot in the
    /// store's global append order (see `OrderEntry`).
    pub(super) seq: u64,
    /// When it was appended (the caller's clock, in ms).
    pub(super) at_ms: u64,
    /// The publication's data, shared (a refcount, not a copy).
    pub(super) payload: Bytes,
}

/// What a trim dropped, so the store can keep its totals.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Freed {
    /// Publications dropped.
    pub(super) n: usize,
    /// Their payload bytes.
    pub(super) payload_bytes: usize,
}

/// A channel known to the store: with publications, or only its "meta"
/// (top offset and epoch) once they have all expired.
#[derive(Debug)]
pub(super) struct ChannelHistory {
    /// The channel's name, held once (the store's index hashes it).
    pub(super) name: Box<str>,
    /// The incarnation every offset below belongs to.
    pub(super) epoch: Epoch,
    /// Offset of the latest publication, 0 before the first.
    pub(super) top: u64,
    /// Held publications, offsets `top - len + 1 ..= top`.
    pub(super) entries: VecDeque<Entry>,
    /// Publications older than this are dropped (from the namespace).
    pub(super) ttl_ms: u64,
    /// The channel is forgotten after this long unused (`--history-meta-ttl`).
    pub(super) meta_ttl_ms: u64,
    /// Last append, position or read: the meta lifetime counts from here.
    pub(super) touched_ms: u64,
}

impl ChannelHistory {
    /// Offset of the oldest held publication (`top + 1` when none is held).
    pub(super) fn oldest_offset(&self) -> u64 {
        // entries.len() <= top always: one entry per offset, at most `top` offsets.
        self.top + 1 - self.entries.len() as u64
    }

    /// Drops the oldest publications while more than `max_len` are held or
    /// the oldest is at least `ttl_ms` old.
    pub(super) fn trim(&mut self, max_len: usize, now_ms: u64) -> Freed {
        let mut freed = Freed::default();
        while let Some(oldest) = self.entries.front() {
            let expired = now_ms.saturating_sub(oldest.at_ms) >= self.ttl_ms;
            if self.entries.len() <= max_len && !expired {
                break;
            }
            if let Some(entry) = self.entries.pop_front() {
                freed.add(&entry);
            }
        }
        freed
    }

    /// Up to `limit` held publications from offset `first` upwards, or, when
    /// `reverse`, from `first` downwards. Offsets outside what is held are
    /// skipped.
    pub(super) fn collect(&self, first: u64, limit: usize, reverse: bool) -> Vec<Publication> {
        let oldest = self.oldest_offset();
        let publication = |(i, e): (usize, &Entry)| Publication {
            offset: oldest + i as u64,
            payload: e.payload.clone(),
        };
        if reverse {
            if self.entries.is_empty() || first < oldest {
                return Vec::new();
            }
            let end = (first.min(self.top) - oldest) as usize + 1;
            let entries = self.entries.range(..end).enumerate().rev();
            entries.take(limit).map(publication).collect()
        } else {
            let start = first.max(oldest) - oldest;
            let start = usize::try_from(start).unwrap_or(usize::MAX);
            let entries = self.entries.iter().enumerate().skip(start);
            entries.take(limit).map(publication).collect()
        }
    }
}

impl Freed {
    /// Counts one dropped entry.
    pub(super) fn add(&mut self, entry: &Entry) {
        self.n += 1;
        self.payload_bytes += entry.payload.len();
    }
}
