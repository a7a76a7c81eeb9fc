//! Channel history for one shard: offsets, epochs, the bounded store and the
//! recovery decision. Pure: no I/O, no glommio, no clock (`now_ms` is passed
//! in), no logging; `shard/streams.rs` wires it to the protocol and the bus.
//!
//! A history channel has a home shard; only that shard's [`HistoryStore`]
//! ever sees it, so the store is plain data owned by that shard (no locks,
//! no atomics).
//!
//! Decisions, in one place:
//! - **Epochs are made when a channel is first touched** (append, position or
//!   read), not at its first publication: the epoch in a `subscribed` reply is
//!   the one the next publication carries, so a client never holds an empty or
//!   soon-replaced epoch (reference.md's "empty epoch" pitfall). The price is
//!   a meta record per touched channel until it goes unused for its meta TTL.
//! - **Lifetimes**: a publication is dropped `ttl_ms` after it was appended;
//!   a channel is forgotten once unused (no append, position or read) for
//!   `max(meta_ttl_ms, ttl_ms)`, after which it starts again at offset 0 with
//!   a new epoch, so stale clients get `recovered:false`.
//! - **Memory**: each held publication costs its payload plus
//!   [`ENTRY_OVERHEAD`] (64 bytes: a 48-byte entry in its channel's deque and
//!   a 16-byte entry in the store's append order). The append order may also
//!   hold entries of publications already trimmed, at most as many as are held
//!   plus [`ORDER_SLACK`]: it is compacted once it passes that, in O(its
//!   length), paid for by the trims that made at least half of it dead.
//!   Channel records (a 96-byte `ChannelHistory` in a slab slot, a 4-byte
//!   index entry, the name on the heap) are not counted in
//!   `max_bytes`; the meta TTL bounds how long they stay.
//! - **Recovery is all or nothing** ([`HistoryStore::recover`]).

mod channel;
mod epoch;
#[cfg(test)]
mod tests;
mod types;

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};

use bytes::Bytes;
use hashbrown::HashTable;
use slab::Slab;

use channel::{ChannelHistory, Entry, Freed};

pub use epoch::{Epoch, EpochSource, EPOCH_LEN};
pub use types::{HistoryError, HistoryOptions, HistoryPage, HistoryStats, Publication, Recovery};

/// Bytes accounted per held publication beyond its payload: its `Entry`
/// (48: append sequence, time, `Bytes` handle) plus its `OrderEntry` (16).
/// The payload's own buffer is shared with the frame that carried it.
pub const ENTRY_OVERHEAD: usize = 64;

/// Dead entries the append order may carry beyond the held publications
/// before it is compacted: small stores then never compact on every trim.
pub const ORDER_SLACK: usize = 64;

/// Slots a new channel at the record cap looks through for one to evict:
/// bounds the work per subscribe to an unknown channel.
pub const RECORD_SCAN: usize = 64;

/// One shard's history: its home channels' publications, bounded per
/// channel by size and TTL and store-wide by bytes.
#[derive(Debug)]
pub struct HistoryStore {
    /// Channel records; a slot is a channel's id inside the store.
    channels: Slab<ChannelHistory>,
    /// Name -> slot, hashing the name held in the record (held once).
    index: HashTable<u32>,
    /// Hashes names for `index` (random keys: names come from clients).
    hasher: RandomState,
    /// Every append in order, for "evict the oldest first" store-wide.
    order: VecDeque<OrderEntry>,
    /// Sequence number of the next append.
    next_seq: u64,
    /// Makes epochs.
    epochs: EpochSource,
    /// The byte bound (`--history-max-bytes`).
    max_bytes: usize,
    /// Bytes accounted now (see [`HistoryStats::bytes`]).
    bytes: usize,
    /// Publications held now.
    n_publications: usize,
    /// Byte-bound evictions so far.
    evictions: u64,
    /// Next slot [`HistoryStore::expire`] visits.
    expire_cursor: usize,
    /// Most channel records (`--history-max-channels` / shards).
    max_channels: usize,
    /// Next slot the record cap looks at for one to evict.
    evict_cursor: usize,
    /// Records evicted by the cap so far.
    channel_evictions: u64,
}

/// One append in the store-wide order: 16 bytes (guarded by a test). It is
/// live while its channel's oldest entry has a sequence number <= `seq`:
/// channels only lose their oldest entries, and a slot reused by another
/// channel (or a removed one) only holds later sequence numbers.
#[derive(Debug, Clone, Copy)]
struct OrderEntry {
    /// The channel's slot.
    slot: u32,
    /// The append's sequence number (`Entry::seq`).
    seq: u64,
}

impl HistoryStore {
    /// An empty store holding at most `max_bytes` (see [`HistoryStats::bytes`]).
    /// `epoch_seed` must be random bits from the OS, different per shard, so
    /// that epochs differ across restarts and shards.
    pub fn new(max_bytes: usize, epoch_seed: u64) -> HistoryStore {
        HistoryStore {
            channels: Slab::new(),
            index: HashTable::new(),
            hasher: RandomState::new(),
            order: VecDeque::new(),
            next_seq: 1,
            epochs: EpochSource::new(epoch_seed),
            max_bytes,
            bytes: 0,
            n_publications: 0,
            evictions: 0,
            expire_cursor: 0,
            max_channels: usize::MAX,
            evict_cursor: 0,
            channel_evictions: 0,
        }
    }

    /// Caps the channel records at `max_channels` (at least 1). At the cap,
    /// a new channel evicts a record that holds no publication (only its
    /// top offset and epoch: its clients then get `recovered:false`, which
    /// is safe); records with publications are bounded by the byte bound.
    pub fn with_max_channels(mut self, max_channels: usize) -> HistoryStore {
        self.max_channels = max_channels.max(1);
        self
    }

    /// Publishes to `channel`: assigns the next offset (the first is 1),
    /// keeps `payload`, trims the channel by `opts.size` and `opts.ttl_ms`,
    /// then evicts the store's oldest publications while over the byte bound.
    /// A publication over the bound by itself is not kept (nor are its
    /// channel's older ones, which would sit behind a gap) and evicts nothing
    /// else. Returns (offset, epoch).
    pub fn append(
        &mut self,
        channel: &str,
        opts: &HistoryOptions,
        payload: Bytes,
        now_ms: u64,
    ) -> (u64, Epoch) {
        let slot = self.touch(channel, opts, now_ms);
        let cost = payload.len() + ENTRY_OVERHEAD;
        let ch = &mut self.channels[slot];
        // 2^64 publications are out of reach, so `top` cannot overflow.
        ch.top += 1;
        let at = (ch.top, ch.epoch);
        if cost > self.max_bytes {
            // Held alone it would still be over the bound: it is evicted at
            // once, and so are the channel's older entries, which it would
            // have left behind a gap; other channels keep theirs.
            let freed = ch.trim(0, now_ms);
            self.account(freed);
            self.evictions += 1 + freed.n as u64;
            self.compact_order();
            return at;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += cost;
        self.n_publications += 1;
        ch.entries.push_back(Entry {
            seq,
            at_ms: now_ms,
            payload,
        });
        let freed = ch.trim(opts.size, now_ms);
        self.order.push_back(OrderEntry {
            slot: slot as u32,
            seq,
        });
        self.account(freed);
        self.evict_over_bound();
        self.compact_order();
        at
    }

    /// The channel's top offset and epoch, for a `subscribed` reply. A
    /// channel with no state gets one now (top 0, a new epoch), which its
    /// next publication keeps; this also restarts its meta lifetime.
    pub fn position(&mut self, channel: &str, opts: &HistoryOptions, now_ms: u64) -> (u64, Epoch) {
        let slot = self.touch(channel, opts, now_ms);
        self.trim_expired(slot, now_ms);
        let ch = &self.channels[slot];
        (ch.top, ch.epoch)
    }

    /// Decides a recovering subscribe from (`offset`, `epoch`): `Recovered`
    /// with publications `offset + 1 ..= top` in order iff `epoch` is the
    /// channel's (an empty one never is), `offset <= top`, at most `limit`
    /// were missed, and all of them are still held; otherwise `NotRecovered`
    /// and nothing. Never creates a channel: the caller answers with
    /// [`HistoryStore::position`] in the same synchronous step.
    pub fn recover(
        &mut self,
        channel: &str,
        offset: u64,
        epoch: &str,
        limit: usize,
        now_ms: u64,
    ) -> Recovery {
        let Some(slot) = self.find(channel) else {
            return Recovery::NotRecovered;
        };
        self.trim_expired(slot, now_ms);
        let ch = &self.channels[slot];
        if !ch.epoch.matches(epoch) || offset > ch.top {
            return Recovery::NotRecovered;
        }
        let missed = ch.top - offset;
        if missed > limit as u64 || offset + 1 < ch.oldest_offset() {
            return Recovery::NotRecovered;
        }
        Recovery::Recovered(ch.collect(offset + 1, limit, false))
    }

    /// A history read: up to `limit` publications after `since`'s offset
    /// (or from the oldest held), oldest first; with `reverse`, before
    /// `since`'s offset (or from the top), newest first. Publications no
    /// longer held are simply absent. `limit` 0 gives only top and epoch.
    /// A `since` whose epoch is not the channel's is an error. Like
    /// [`HistoryStore::position`], it creates the channel if needed.
    pub fn read(
        &mut self,
        channel: &str,
        opts: &HistoryOptions,
        since: Option<(u64, &str)>,
        limit: usize,
        reverse: bool,
        now_ms: u64,
    ) -> Result<HistoryPage, HistoryError> {
        let slot = self.touch(channel, opts, now_ms);
        self.trim_expired(slot, now_ms);
        let ch = &self.channels[slot];
        if since.is_some_and(|(_, epoch)| !ch.epoch.matches(epoch)) {
            return Err(HistoryError::UnrecoverablePosition);
        }
        let first = match (since, reverse) {
            (Some((offset, _)), false) => offset.saturating_add(1),
            (None, false) => 0,
            (Some((0, _)), true) => return Ok(self.page(slot, Vec::new())),
            (Some((offset, _)), true) => offset - 1,
            (None, true) => u64::MAX,
        };
        let publications = ch.collect(first, limit, reverse);
        Ok(self.page(slot, publications))
    }

    /// Forgets `channel` (POST /api/history/remove): its publications go,
    /// and its next use starts at offset 0 with a new epoch.
    pub fn remove(&mut self, channel: &str, _now_ms: u64) {
        if let Some(slot) = self.find(channel) {
            self.forget(slot);
            self.compact_order();
        }
    }

    /// Periodic expiry, for the shard ticker: visits at most
    /// `min(budget, slots)` channel slots (occupied or not) from a cursor
    /// that wraps, so every channel is visited within `ceil(slots / budget)`
    /// calls. A visit drops expired publications (each publication is
    /// dropped once in its life, so that work is paid by its append),
    /// frees the storage of a channel left with none, and forgets a channel
    /// unused for `max(meta_ttl_ms, ttl_ms)`. Returns how many publications
    /// it dropped.
    pub fn expire(&mut self, now_ms: u64, budget: usize) -> usize {
        let mut dropped = 0;
        let n_slots = self.channels.capacity();
        for _ in 0..budget.min(n_slots) {
            let slot = self.expire_cursor % n_slots;
            self.expire_cursor = (slot + 1) % n_slots;
            if !self.channels.contains(slot) {
                continue;
            }
            dropped += self.trim_expired(slot, now_ms);
            let ch = &mut self.channels[slot];
            if ch.entries.is_empty() {
                let lifetime = ch.meta_ttl_ms.max(ch.ttl_ms);
                if now_ms.saturating_sub(ch.touched_ms) >= lifetime {
                    self.forget(slot);
                } else {
                    ch.entries = VecDeque::new();
                }
            }
        }
        self.compact_order();
        dropped
    }

    /// The store's totals.
    pub fn stats(&self) -> HistoryStats {
        HistoryStats {
            bytes: self.bytes,
            publications: self.n_publications,
            channels: self.channels.len(),
            evictions: self.evictions,
            channel_evictions: self.channel_evictions,
        }
    }

    /// The slot of `name`, if the store knows it.
    fn find(&self, name: &str) -> Option<usize> {
        let hash = self.hasher.hash_one(name);
        let channels = &self.channels;
        let found = self
            .index
            .find(hash, |&i| &*channels[i as usize].name == name);
        found.map(|&i| i as usize)
    }

    /// The slot of `name`, made with a new epoch if needed; records `opts`
    /// and marks the channel used at `now_ms`.
    fn touch(&mut self, name: &str, opts: &HistoryOptions, now_ms: u64) -> usize {
        let slot = match self.find(name) {
            Some(slot) => slot,
            None => self.create(name, now_ms),
        };
        let ch = &mut self.channels[slot];
        ch.ttl_ms = opts.ttl_ms;
        ch.meta_ttl_ms = opts.meta_ttl_ms;
        ch.touched_ms = ch.touched_ms.max(now_ms);
        slot
    }

    /// Adds a channel with a new epoch and nothing published.
    fn create(&mut self, name: &str, now_ms: u64) -> usize {
        if self.channels.len() >= self.max_channels {
            self.evict_a_record();
        }
        let slot = self.channels.insert(ChannelHistory {
            name: name.into(),
            epoch: self.epochs.next_epoch(),
            top: 0,
            entries: VecDeque::new(),
            ttl_ms: 0,
            meta_ttl_ms: 0,
            touched_ms: now_ms,
        });
        let (channels, hasher) = (&self.channels, &self.hasher);
        // Slots stay far below u32::MAX: each channel costs over 100 bytes.
        self.index
            .insert_unique(hasher.hash_one(name), slot as u32, |&i| {
                hasher.hash_one(&*channels[i as usize].name)
            });
        slot
    }

    /// Evicts one record that holds no publication, looking at most
    /// [`RECORD_SCAN`] slots from a cursor that wraps (so the work per new
    /// channel is bounded). When every slot looked at holds publications,
    /// nothing is evicted and the cap is exceeded by this one: such records
    /// are bounded by the byte bound (each holds at least one accounted
    /// publication).
    fn evict_a_record(&mut self) {
        let n_slots = self.channels.capacity();
        for _ in 0..RECORD_SCAN.min(n_slots) {
            let slot = self.evict_cursor % n_slots;
            self.evict_cursor = (slot + 1) % n_slots;
            if self
                .channels
                .get(slot)
                .is_some_and(|ch| ch.entries.is_empty())
            {
                self.forget(slot);
                self.channel_evictions += 1;
                return;
            }
        }
    }

    /// Drops a channel and everything it holds; its order entries go stale.
    fn forget(&mut self, slot: usize) {
        let Some(ch) = self.channels.try_remove(slot) else {
            return;
        };
        let hash = self.hasher.hash_one(&*ch.name);
        if let Ok(entry) = self.index.find_entry(hash, |&i| i as usize == slot) {
            entry.remove();
        }
        let mut freed = Freed::default();
        ch.entries.iter().for_each(|e| freed.add(e));
        self.account(freed);
    }

    /// Drops the channel's publications older than its TTL.
    fn trim_expired(&mut self, slot: usize, now_ms: u64) -> usize {
        let freed = self.channels[slot].trim(usize::MAX, now_ms);
        self.account(freed);
        freed.n
    }

    /// Takes trimmed publications off the totals.
    fn account(&mut self, freed: Freed) {
        self.bytes -= freed.payload_bytes + freed.n * ENTRY_OVERHEAD;
        self.n_publications -= freed.n;
    }

    /// Evicts the oldest publications store-wide while over `max_bytes`;
    /// stale order entries met on the way are discarded.
    fn evict_over_bound(&mut self) {
        while self.bytes > self.max_bytes {
            let Some(oldest) = self.order.pop_front() else {
                return;
            };
            let Some(ch) = self.channels.get_mut(oldest.slot as usize) else {
                continue;
            };
            // Live iff it is its channel's oldest entry (see OrderEntry).
            if ch.entries.front().is_some_and(|e| e.seq == oldest.seq) {
                let mut freed = Freed::default();
                if let Some(entry) = ch.entries.pop_front() {
                    freed.add(&entry);
                }
                self.account(freed);
                self.evictions += 1;
            }
        }
    }

    /// Drops stale order entries once they outnumber the live ones by more
    /// than [`ORDER_SLACK`], keeping the order within `2 * held + slack`.
    fn compact_order(&mut self) {
        if self.order.len() <= 2 * self.n_publications + ORDER_SLACK {
            return;
        }
        let channels = &self.channels;
        self.order.retain(|o| {
            let ch = channels.get(o.slot as usize);
            ch.and_then(|ch| ch.entries.front())
                .is_some_and(|e| e.seq <= o.seq)
        });
        if self.order.capacity() > 4 * self.order.len() + ORDER_SLACK {
            self.order.shrink_to(2 * self.order.len() + ORDER_SLACK);
        }
    }

    /// A page of `publications` with the channel's top and epoch.
    fn page(&self, slot: usize, publications: Vec<Publication>) -> HistoryPage {
        let ch = &self.channels[slot];
        HistoryPage {
            publications,
            top: ch.top,
            epoch: ch.epoch,
        }
    }
}
