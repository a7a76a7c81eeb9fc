//! Unit tests of the history store: offsets, trims, lifetimes, recovery,
//! reads, the byte bound, expiry's budget, and a deterministic
//! random-operations test that checks the invariants after every step.

use std::collections::HashMap;

use super::*;

const OPTS: HistoryOptions = HistoryOptions {
    size: 10,
    ttl_ms: 1_000,
    meta_ttl_ms: 10_000,
};

fn data(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn offsets(publications: &[Publication]) -> Vec<u64> {
    publications.iter().map(|p| p.offset).collect()
}

/// A store with `n` publications in `channel`, payloads "1", "2", ...
fn store_with(channel: &str, n: u64, opts: &HistoryOptions) -> (HistoryStore, Epoch) {
    let mut store = HistoryStore::new(usize::MAX, 1);
    let mut epoch = None;
    for i in 1..=n {
        let (offset, e) = store.append(channel, opts, data(&i.to_string()), 0);
        assert_eq!(offset, i);
        epoch = Some(e);
    }
    let epoch = epoch.unwrap_or_else(|| store.position(channel, opts, 0).1);
    (store, epoch)
}

fn recovered(recovery: Recovery) -> Vec<u64> {
    match recovery {
        Recovery::Recovered(publications) => offsets(&publications),
        Recovery::NotRecovered => panic!("expected Recovered"),
    }
}

#[test]
fn entry_sizes_match_the_accounted_overhead() {
    assert_eq!(std::mem::size_of::<Entry>(), 48);
    assert_eq!(std::mem::size_of::<OrderEntry>(), 16);
    assert_eq!(std::mem::size_of::<channel::ChannelHistory>(), 96);
    assert_eq!(
        std::mem::size_of::<Entry>() + std::mem::size_of::<OrderEntry>(),
        ENTRY_OVERHEAD
    );
}

#[test]
fn offsets_start_at_one_and_are_contiguous_with_one_epoch() {
    let mut store = HistoryStore::new(usize::MAX, 1);
    let (top, epoch) = store.position("a", &OPTS, 0);
    assert_eq!(top, 0);
    for i in 1..=5 {
        assert_eq!(store.append("a", &OPTS, data("x"), 0), (i, epoch));
    }
    assert_eq!(store.append("b", &OPTS, data("x"), 0).0, 1);
    assert_ne!(store.position("b", &OPTS, 0).1, epoch);
}

#[test]
fn size_trims_the_oldest() {
    let opts = HistoryOptions { size: 3, ..OPTS };
    let (mut store, epoch) = store_with("a", 5, &opts);
    let page = store.read("a", &opts, None, 10, false, 0).unwrap();
    assert_eq!(offsets(&page.publications), [3, 4, 5]);
    assert_eq!(page.publications[0].payload, data("3"));
    assert_eq!((page.top, page.epoch), (5, epoch));
    assert_eq!(store.stats().publications, 3);
    assert_eq!(store.stats().bytes, 3 * (1 + ENTRY_OVERHEAD));
}

#[test]
fn ttl_trims_by_the_time_passed_in() {
    let mut store = HistoryStore::new(usize::MAX, 1);
    store.append("a", &OPTS, data("old"), 0);
    store.append("a", &OPTS, data("new"), 600);
    let page = store.read("a", &OPTS, None, 10, false, 999).unwrap();
    assert_eq!(offsets(&page.publications), [1, 2]);
    let page = store.read("a", &OPTS, None, 10, false, 1_000).unwrap();
    assert_eq!(offsets(&page.publications), [2]);
    store.expire(1_600, 10);
    assert_eq!(store.stats().publications, 0);
    assert_eq!(store.stats().bytes, 0);
}

#[test]
fn meta_outlives_the_data_then_the_channel_gets_a_new_epoch() {
    let mut store = HistoryStore::new(usize::MAX, 1);
    let (_, epoch) = store.append("a", &OPTS, data("x"), 0);
    store.append("a", &OPTS, data("x"), 0);
    store.expire(5_000, 10);
    assert_eq!(store.stats().publications, 0);
    assert_eq!(store.stats().channels, 1);
    // Meta kept: a client at the top recovers, one behind does not.
    assert_eq!(
        recovered(store.recover("a", 2, epoch.as_str(), 10, 5_000)),
        [0u64; 0]
    );
    assert_eq!(
        store.recover("a", 1, epoch.as_str(), 10, 5_000),
        Recovery::NotRecovered
    );
    store.expire(9_999, 10);
    assert_eq!(store.stats().channels, 1);
    store.expire(10_000, 10);
    assert_eq!(store.stats().channels, 0);
    assert_eq!(
        store.recover("a", 2, epoch.as_str(), 10, 10_000),
        Recovery::NotRecovered
    );
    let (top, new_epoch) = store.position("a", &OPTS, 10_000);
    assert_eq!(top, 0);
    assert_ne!(new_epoch, epoch);
    assert_eq!(store.append("a", &OPTS, data("x"), 10_000), (1, new_epoch));
}

#[test]
fn a_position_keeps_an_unpublished_channel_and_its_epoch() {
    let mut store = HistoryStore::new(usize::MAX, 1);
    let (_, epoch) = store.position("a", &OPTS, 0);
    store.expire(9_000, 10);
    assert_eq!(store.position("a", &OPTS, 9_000).1, epoch);
    store.expire(18_999, 10);
    assert_eq!(store.append("a", &OPTS, data("x"), 18_999), (1, epoch));
}

#[test]
fn meta_lives_at_least_as_long_as_the_data() {
    let opts = HistoryOptions {
        size: 10,
        ttl_ms: 1_000,
        meta_ttl_ms: 10,
    };
    let mut store = HistoryStore::new(usize::MAX, 1);
    store.append("a", &opts, data("x"), 0);
    store.expire(500, 10);
    assert_eq!(store.stats().publications, 1);
    store.expire(1_000, 10);
    assert_eq!(store.stats().channels, 0);
}

#[test]
fn recover_returns_exactly_what_was_missed() {
    let (mut store, epoch) = store_with("a", 5, &OPTS);
    let e = epoch.as_str();
    assert_eq!(recovered(store.recover("a", 2, e, 10, 0)), [3, 4, 5]);
    assert_eq!(recovered(store.recover("a", 0, e, 10, 0)), [1, 2, 3, 4, 5]);
    assert_eq!(recovered(store.recover("a", 2, e, 3, 0)), [3, 4, 5]);
    match store.recover("a", 3, e, 10, 0) {
        Recovery::Recovered(p) => assert_eq!(p[1].payload, data("5")),
        Recovery::NotRecovered => panic!("expected Recovered"),
    }
}

#[test]
fn recover_at_the_top_is_recovered_and_empty() {
    let (mut store, epoch) = store_with("a", 5, &OPTS);
    assert_eq!(
        recovered(store.recover("a", 5, epoch.as_str(), 10, 0)),
        [0u64; 0]
    );
    let (mut store, epoch) = store_with("b", 0, &OPTS);
    assert_eq!(
        recovered(store.recover("b", 0, epoch.as_str(), 0, 0)),
        [0u64; 0]
    );
}

#[test]
fn recover_refuses_without_delivering_anything() {
    let opts = HistoryOptions { size: 3, ..OPTS };
    let (mut store, epoch) = store_with("a", 5, &opts);
    let e = epoch.as_str();
    let not = Recovery::NotRecovered;
    assert_eq!(store.recover("a", 6, e, 10, 0), not, "offset ahead of top");
    assert_eq!(store.recover("a", 4, "nope", 10, 0), not, "wrong epoch");
    assert_eq!(store.recover("a", 4, "", 10, 0), not, "empty epoch");
    assert_eq!(
        store.recover("a", 1, e, 10, 0),
        not,
        "trimmed gap (2 is gone)"
    );
    assert_eq!(recovered(store.recover("a", 2, e, 10, 0)), [3, 4, 5]);
    assert_eq!(store.recover("a", 2, e, 2, 0), not, "over the limit");
    assert_eq!(store.recover("never", 0, e, 10, 0), not, "unknown channel");
    assert_eq!(store.stats().channels, 1, "recover creates nothing");
}

#[test]
fn read_forwards_backwards_and_limit_zero() {
    let (mut store, epoch) = store_with("a", 5, &OPTS);
    let e = epoch.as_str();
    let read = |store: &mut HistoryStore, since, limit, reverse| {
        let page = store.read("a", &OPTS, since, limit, reverse, 0).unwrap();
        assert_eq!((page.top, page.epoch), (5, epoch));
        offsets(&page.publications)
    };
    assert_eq!(read(&mut store, None, 2, false), [1, 2]);
    assert_eq!(read(&mut store, None, 2, true), [5, 4]);
    assert_eq!(read(&mut store, None, 0, false), [0u64; 0]);
    assert_eq!(read(&mut store, Some((2, e)), 10, false), [3, 4, 5]);
    assert_eq!(read(&mut store, Some((2, e)), 1, false), [3]);
    assert_eq!(read(&mut store, Some((4, e)), 10, true), [3, 2, 1]);
    assert_eq!(read(&mut store, Some((0, e)), 10, true), [0u64; 0]);
    assert_eq!(read(&mut store, Some((9, e)), 10, false), [0u64; 0]);
    assert_eq!(read(&mut store, Some((9, e)), 2, true), [5, 4]);
    assert_eq!(read(&mut store, Some((u64::MAX, e)), 2, false), [0u64; 0]);
}

#[test]
fn read_with_a_wrong_epoch_is_an_error() {
    let (mut store, _) = store_with("a", 5, &OPTS);
    for epoch in ["", "nope"] {
        let read = store.read("a", &OPTS, Some((1, epoch)), 10, false, 0);
        assert_eq!(read, Err(HistoryError::UnrecoverablePosition));
    }
}

#[test]
fn remove_empties_the_channel_and_changes_its_epoch() {
    let (mut store, epoch) = store_with("a", 5, &OPTS);
    store.remove("a", 0);
    store.remove("never", 0);
    assert_eq!(store.stats(), HistoryStats::default());
    let (top, new_epoch) = store.position("a", &OPTS, 0);
    assert_eq!(top, 0);
    assert_ne!(new_epoch, epoch);
    assert_eq!(
        store.recover("a", 5, epoch.as_str(), 10, 0),
        Recovery::NotRecovered
    );
    assert_eq!(store.append("a", &OPTS, data("x"), 0), (1, new_epoch));
}

#[test]
fn the_byte_bound_evicts_the_oldest_across_channels() {
    let cost = 10 + ENTRY_OVERHEAD;
    let mut store = HistoryStore::new(3 * cost, 1);
    let ten = data("0123456789");
    store.append("a", &OPTS, ten.clone(), 0); // a1
    store.append("b", &OPTS, ten.clone(), 0); // b1
    store.append("a", &OPTS, ten.clone(), 0); // a2
    assert_eq!(store.stats().evictions, 0);
    store.append("b", &OPTS, ten.clone(), 0); // b2 evicts a1
    store.append("b", &OPTS, ten.clone(), 0); // b3 evicts b1
    let stats = store.stats();
    assert_eq!(
        (stats.evictions, stats.publications, stats.bytes),
        (2, 3, 3 * cost)
    );
    let a = store.read("a", &OPTS, None, 10, false, 0).unwrap();
    let b = store.read("b", &OPTS, None, 10, false, 0).unwrap();
    assert_eq!(
        (offsets(&a.publications), offsets(&b.publications)),
        (vec![2], vec![2, 3])
    );
    // A publication larger than the bound is not kept, and neither are the
    // older ones of its channel (a gap); other channels keep theirs.
    assert_eq!(
        store
            .append("a", &OPTS, Bytes::from(vec![0; 4 * cost]), 0)
            .0,
        3
    );
    assert_eq!(store.stats().evictions, 4);
    let a = store.read("a", &OPTS, None, 10, false, 0).unwrap();
    assert_eq!((a.top, a.publications.len()), (3, 0));
    assert_eq!(store.stats().publications, 2);
    assert_eq!(store.append("a", &OPTS, ten, 0).0, 4);
}

#[test]
fn eviction_skips_publications_already_trimmed() {
    let cost = 1 + ENTRY_OVERHEAD;
    let opts = HistoryOptions { size: 1, ..OPTS };
    let mut store = HistoryStore::new(2 * cost, 1);
    for _ in 0..1_000 {
        store.append("a", &opts, data("x"), 0);
    }
    store.append("b", &OPTS, data("x"), 0);
    assert_eq!(store.stats().evictions, 0);
    assert!(store.order.len() <= 2 * store.stats().publications + ORDER_SLACK);
    store.append("b", &OPTS, data("x"), 0);
    assert_eq!(store.stats().evictions, 1);
    assert_eq!(
        store
            .read("a", &opts, None, 9, false, 0)
            .unwrap()
            .publications,
        []
    );
}

#[test]
fn expire_is_bounded_by_its_budget_and_visits_every_channel() {
    let mut store = HistoryStore::new(usize::MAX, 1);
    for i in 0..20 {
        store.append(&format!("c{i}"), &OPTS, data("x"), 0);
    }
    let mut calls = 0;
    while store.stats().publications > 0 {
        let before = store.stats().publications;
        store.expire(1_000, 3);
        assert!(before - store.stats().publications <= 3);
        calls += 1;
        assert!(calls <= 20, "the cursor must reach every channel");
    }
    store.expire(20_000, 0);
    assert_eq!(store.stats().channels, 20, "budget 0 does nothing");
    for _ in 0..store.channels.capacity().div_ceil(3) {
        store.expire(20_000, 3);
    }
    assert_eq!(store.stats().channels, 0);
}

#[test]
fn a_channel_never_seen_is_harmless() {
    let mut store = HistoryStore::new(0, 1);
    assert_eq!(store.recover("x", 0, "", 0, 0), Recovery::NotRecovered);
    assert_eq!(
        store.recover("x", u64::MAX, "e", usize::MAX, u64::MAX),
        Recovery::NotRecovered
    );
    store.remove("x", 0);
    store.expire(u64::MAX, usize::MAX);
    let page = store.read("x", &OPTS, None, usize::MAX, true, 0).unwrap();
    assert_eq!((page.top, page.publications.len()), (0, 0));
    let page = store.read("y", &OPTS, None, usize::MAX, false, 0).unwrap();
    assert_eq!((page.top, page.publications.len()), (0, 0));
    // With max_bytes 0 offsets still advance, nothing is held.
    assert_eq!(store.append("x", &OPTS, data("x"), 0).0, 1);
    assert_eq!(store.stats().publications, 0);
    store.expire(u64::MAX, usize::MAX);
}

/// A small deterministic xorshift generator: the property test needs no crate.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What the test expects of one channel: its epoch and every payload of that
/// epoch, by offset (index 0 is offset 1).
#[derive(Default)]
struct Model {
    epoch: Option<Epoch>,
    payloads: Vec<Bytes>,
}

impl HistoryStore {
    /// Checks the store's invariants.
    fn check(&self) {
        let (mut bytes, mut n) = (0, 0);
        for (slot, ch) in &self.channels {
            assert!(ch.entries.len() as u64 <= ch.top);
            assert_eq!(self.find(&ch.name), Some(slot));
            for pair in ch.entries.iter().zip(ch.entries.iter().skip(1)) {
                assert!(pair.0.seq < pair.1.seq);
            }
            for entry in &ch.entries {
                let live = |o: &&OrderEntry| o.slot as usize == slot && o.seq == entry.seq;
                assert_eq!(self.order.iter().filter(live).count(), 1);
            }
            bytes += ch
                .entries
                .iter()
                .map(|e| e.payload.len() + ENTRY_OVERHEAD)
                .sum::<usize>();
            n += ch.entries.len();
        }
        assert_eq!((self.bytes, self.n_publications), (bytes, n));
        assert!(self.bytes <= self.max_bytes);
        assert!(self.order.len() <= 2 * n + ORDER_SLACK);
    }
}

#[test]
fn random_operations_keep_the_invariants() {
    let names = ["a", "b", "c", "d"];
    let all_opts = [
        HistoryOptions {
            size: 5,
            ttl_ms: 300,
            meta_ttl_ms: 2_000,
        },
        HistoryOptions {
            size: 50,
            ttl_ms: 5_000,
            meta_ttl_ms: 100,
        },
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut store = HistoryStore::new(4_000, 3);
    let mut models: HashMap<&str, Model> = HashMap::new();
    let mut now = 0;
    for _ in 0..6_000 {
        now += rng.below(40);
        let i = rng.below(names.len() as u64) as usize;
        let (name, opts) = (names[i], &all_opts[i % 2]);
        let model = models.entry(name).or_default();
        match rng.below(10) {
            0..=4 => {
                let payload = Bytes::from(vec![i as u8; rng.below(200) as usize]);
                let (offset, epoch) = store.append(name, opts, payload.clone(), now);
                if model.epoch != Some(epoch) {
                    *model = Model {
                        epoch: Some(epoch),
                        payloads: Vec::new(),
                    };
                }
                model.payloads.push(payload);
                assert_eq!(offset, model.payloads.len() as u64, "contiguous offsets");
            }
            5 => {
                let (top, epoch) = store.position(name, opts, now);
                if model.epoch != Some(epoch) {
                    *model = Model {
                        epoch: Some(epoch),
                        payloads: Vec::new(),
                    };
                }
                assert_eq!(top, model.payloads.len() as u64);
            }
            6 | 7 => {
                let top = model.payloads.len() as u64;
                let offset = top.saturating_sub(rng.below(12)) + rng.below(2);
                let epoch = match (model.epoch, rng.below(4)) {
                    (Some(epoch), 0..=2) => epoch.as_str().to_owned(),
                    _ => String::new(),
                };
                let limit = rng.below(10) as usize;
                if let Recovery::Recovered(got) = store.recover(name, offset, &epoch, limit, now) {
                    assert_eq!(
                        Some(epoch.as_str()),
                        model.epoch.as_ref().map(Epoch::as_str)
                    );
                    assert_eq!(got.len() as u64, top - offset, "never partial");
                    assert!(got.len() <= limit);
                    for p in &got {
                        assert_eq!(p.payload, model.payloads[p.offset as usize - 1]);
                    }
                    assert_eq!(offsets(&got), (offset + 1..=top).collect::<Vec<_>>());
                }
            }
            8 => {
                let before = store.stats().publications;
                let dropped = store.expire(now, rng.below(4) as usize);
                assert_eq!(store.stats().publications, before - dropped);
            }
            _ => {
                if rng.below(10) == 0 {
                    store.remove(name, now);
                } else {
                    let page = store.read(name, opts, None, 100, false, now).unwrap();
                    if model.epoch != Some(page.epoch) {
                        *model = Model {
                            epoch: Some(page.epoch),
                            payloads: Vec::new(),
                        };
                    }
                    assert_eq!(page.top, model.payloads.len() as u64);
                    let held = offsets(&page.publications);
                    let first = held.first().copied().unwrap_or(page.top + 1);
                    assert_eq!(held, (first..=page.top).take(100).collect::<Vec<_>>());
                    for p in &page.publications {
                        assert_eq!(p.payload, model.payloads[p.offset as usize - 1]);
                    }
                }
            }
        }
        store.check();
    }
    assert!(store.stats().evictions > 0, "the byte bound was exercised");
}

#[test]
fn the_record_cap_evicts_records_without_publications_only() {
    let opts = HistoryOptions {
        size: 10,
        ttl_ms: 60_000,
        meta_ttl_ms: 60_000,
    };
    let mut store = HistoryStore::new(1 << 20, 7).with_max_channels(2);
    store.position("a", &opts, 1);
    store.position("b", &opts, 1);
    store.position("c", &opts, 1);
    let stats = store.stats();
    assert_eq!((stats.channels, stats.channel_evictions), (2, 1));
    // Records holding publications are never evicted by the cap.
    let mut store = HistoryStore::new(1 << 20, 7).with_max_channels(2);
    store.append("a", &opts, Bytes::from_static(b"1"), 1);
    store.append("b", &opts, Bytes::from_static(b"2"), 1);
    store.position("c", &opts, 1);
    let stats = store.stats();
    assert_eq!((stats.channels, stats.channel_evictions), (3, 0));
    // An evicted record comes back with a new epoch: stale clients fail safe.
    let mut store = HistoryStore::new(1 << 20, 7).with_max_channels(1);
    let (_, first) = store.position("a", &opts, 1);
    store.position("b", &opts, 1);
    let (_, again) = store.position("a", &opts, 1);
    assert_ne!(first, again);
}
