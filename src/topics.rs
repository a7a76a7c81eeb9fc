//! `TopicRouter`: per shard, channel -> local subscribers and the set of
//! other shards that have subscribers for it.
//!
//! It is shard-local state (no locks) and does no I/O: the shard uses it to
//! find whom to fan a frame out to and which shards to forward it to.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::shard::{ConnKey, ShardId};

/// Highest shard count the router's shard sets can name.
pub const MAX_SHARDS: usize = 256;

/// A set of shard ids for up to [`MAX_SHARDS`] shards: shards 0-63 inline
/// (16 bytes in all, one per channel, so most channels pay nothing more),
/// shards 64 and up in a boxed bitmap allocated only when one is added.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ShardSet {
    /// Shards 0-63.
    low: u64,
    /// Shards 64 to `MAX_SHARDS - 1`.
    high: Option<Box<[u64; MAX_SHARDS / 64 - 1]>>,
}

impl ShardSet {
    /// Adds or removes `shard`.
    pub fn set(&mut self, shard: ShardId, present: bool) {
        let (word, bit) = (shard.0 as usize / 64, shard.0 as usize % 64);
        let slot = if word == 0 {
            &mut self.low
        } else if present {
            &mut self.high.get_or_insert_with(Default::default)[word - 1]
        } else if let Some(high) = self.high.as_mut() {
            &mut high[word - 1]
        } else {
            return;
        };
        if present {
            *slot |= 1 << bit;
        } else {
            *slot &= !(1 << bit);
        }
        if self
            .high
            .as_ref()
            .is_some_and(|h| h.iter().all(|w| *w == 0))
        {
            self.high = None;
        }
    }

    /// True when no shard is in the set.
    pub fn is_empty(&self) -> bool {
        self.low == 0 && self.high.is_none()
    }

    /// The shards in the set, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = ShardId> + '_ {
        let high = self.high.as_deref().map_or(&[][..], |h| &h[..]);
        std::iter::once(&self.low)
            .chain(high)
            .enumerate()
            .flat_map(|(i, word)| {
                (0..64)
                    .filter(move |b| word & (1 << b) != 0)
                    .map(move |b| ShardId((i * 64 + b) as u16))
            })
    }
}

/// Hashes a [`ConnKey`] with one multiply: keys are dense slab indexes, so
/// nothing stronger is needed (clients cannot choose them), and a Fibonacci
/// multiply spreads them over both the bucket bits and hashbrown's tag bits.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n);
    }

    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

/// The local subscribers of one channel. One subscriber (a personal
/// channel, a private room) is held inline; more go in a [`KeySet`].
#[derive(Debug, Default)]
pub enum Subscribers {
    /// Nobody on this shard.
    #[default]
    Empty,
    /// Exactly one connection.
    One(ConnKey),
    /// Two or more connections (boxed, so a channel with one subscriber
    /// stays small).
    Many(Box<KeySet>),
}

impl Subscribers {
    /// Adds `key`; false if it was there already.
    pub fn insert(&mut self, key: ConnKey) -> bool {
        match self {
            Subscribers::Empty => {
                *self = Subscribers::One(key);
                true
            }
            Subscribers::One(one) if *one == key => false,
            Subscribers::One(one) => {
                let mut set = KeySet::default();
                set.insert(*one);
                set.insert(key);
                *self = Subscribers::Many(Box::new(set));
                true
            }
            Subscribers::Many(set) => set.insert(key),
        }
    }

    /// Removes `key`; false if it was not there. A set that shrinks to one
    /// goes back inline, so a channel's memory follows its size.
    pub fn remove(&mut self, key: ConnKey) -> bool {
        match self {
            Subscribers::One(one) if *one == key => {
                *self = Subscribers::Empty;
                true
            }
            Subscribers::Many(set) => {
                if !set.remove(key) {
                    return false;
                }
                if set.keys.len() == 1 {
                    *self = Subscribers::One(set.keys[0]);
                }
                true
            }
            _ => false,
        }
    }

    /// True when `key` is one of them (O(1)).
    pub fn contains(&self, key: ConnKey) -> bool {
        match self {
            Subscribers::Empty => false,
            Subscribers::One(one) => *one == key,
            Subscribers::Many(set) => set.position.contains_key(&key),
        }
    }

    /// How many.
    pub fn len(&self) -> usize {
        match self {
            Subscribers::Empty => 0,
            Subscribers::One(_) => 1,
            Subscribers::Many(set) => set.keys.len(),
        }
    }

    /// True when nobody on this shard subscribes.
    pub fn is_empty(&self) -> bool {
        matches!(self, Subscribers::Empty)
    }

    /// Every subscriber, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = ConnKey> + '_ {
        let one = match self {
            Subscribers::One(key) => Some(*key),
            _ => None,
        };
        let many = match self {
            Subscribers::Many(set) => Some(set.keys.iter().copied()),
            _ => None,
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

/// A set of connection keys kept dense for fan-out: the keys in one `Vec`
/// (4 bytes each, walked in order, so a publish touches the connection
/// table in subscription order rather than hash order, which measured ~20%
/// slower on a 5,000-subscriber channel), and each key's position in a hash
/// map (8 bytes and a control byte) for O(1) removal however large the
/// channel: about 15-25 bytes per subscriber with both tables' slack.
#[derive(Debug, Default)]
pub struct KeySet {
    /// The members, in no particular order; fan-out walks this.
    keys: Vec<ConnKey>,
    /// Where each member sits in `keys`.
    position: HashMap<ConnKey, u32, BuildHasherDefault<KeyHasher>>,
}

impl KeySet {
    /// Adds `key`; false if it was there already.
    fn insert(&mut self, key: ConnKey) -> bool {
        match self.position.entry(key) {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                slot.insert(self.keys.len() as u32);
                self.keys.push(key);
                true
            }
        }
    }

    /// Removes `key` (the last key moves into its place); false if absent.
    fn remove(&mut self, key: ConnKey) -> bool {
        let Some(at) = self.position.remove(&key) else {
            return false;
        };
        self.keys.swap_remove(at as usize);
        if let Some(moved) = self.keys.get(at as usize) {
            self.position.insert(*moved, at);
        }
        true
    }
}

/// Who wants one channel's messages.
#[derive(Debug, Default)]
pub struct Channel {
    /// Connections on this shard subscribed to it.
    pub local: Subscribers,
    /// Other shards with at least one subscriber.
    pub remote: ShardSet,
}

/// What a subscribe changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Subscribed {
    /// The first local subscriber: other shards must learn of it.
    FirstOnShard(Arc<str>),
    /// Another local subscriber of a channel the shard already had.
    Added(Arc<str>),
    /// The connection was already subscribed.
    Already,
}

/// Channel table of one shard.
#[derive(Debug, Default)]
pub struct TopicRouter {
    channels: HashMap<Arc<str>, Channel>,
}

impl TopicRouter {
    /// Subscribes `conn` to `channel`.
    pub fn subscribe(&mut self, channel: &str, conn: ConnKey) -> Subscribed {
        let (name, entry) = match self.channels.get_key_value(channel) {
            Some((name, _)) => {
                let name = name.clone();
                // get_key_value just found this key and nothing ran in between.
                let entry = self.channels.get_mut(channel).expect("just found");
                (name, entry)
            }
            None => {
                let name: Arc<str> = Arc::from(channel);
                (name.clone(), self.channels.entry(name).or_default())
            }
        };
        let first = entry.local.is_empty();
        if !entry.local.insert(conn) {
            return Subscribed::Already;
        }
        if first {
            Subscribed::FirstOnShard(name)
        } else {
            Subscribed::Added(name)
        }
    }

    /// Unsubscribes `conn`; returns true when it was the last local subscriber.
    pub fn unsubscribe(&mut self, channel: &str, conn: ConnKey) -> Option<bool> {
        let entry = self.channels.get_mut(channel)?;
        if !entry.local.remove(conn) {
            return None;
        }
        let last = entry.local.is_empty();
        if last && entry.remote.is_empty() {
            self.channels.remove(channel);
        }
        Some(last)
    }

    /// Records whether shard `from` has subscribers for `channel`.
    pub fn set_remote(&mut self, channel: &str, from: ShardId, present: bool) {
        if present {
            let entry = match self.channels.get_mut(channel) {
                Some(entry) => entry,
                None => self.channels.entry(Arc::from(channel)).or_default(),
            };
            entry.remote.set(from, true);
        } else if let Some(entry) = self.channels.get_mut(channel) {
            entry.remote.set(from, false);
            if entry.remote.is_empty() && entry.local.is_empty() {
                self.channels.remove(channel);
            }
        }
    }

    /// Looks a channel up.
    pub fn get(&self, channel: &str) -> Option<&Channel> {
        self.channels.get(channel)
    }

    /// Looks a channel up for a publish, with the table's shared copy of its
    /// name (what a publish sends to other shards, without allocating).
    pub fn get_named(&self, channel: &str) -> Option<(&Arc<str>, &Channel)> {
        self.channels.get_key_value(channel)
    }

    /// Every channel this shard knows, with its subscribers.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &Channel)> {
        self.channels.iter()
    }

    /// Gives back the table's spare capacity (when the shard has emptied).
    pub fn shrink_to_fit(&mut self) {
        self.channels.shrink_to_fit();
    }

    /// Channels known to this shard (local or remote interest).
    pub fn n_channels(&self) -> usize {
        self.channels.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_and_last_local_subscriber_are_reported() {
        let mut r = TopicRouter::default();
        assert!(matches!(
            r.subscribe("a", ConnKey(1)),
            Subscribed::FirstOnShard(_)
        ));
        assert!(matches!(r.subscribe("a", ConnKey(2)), Subscribed::Added(_)));
        assert_eq!(r.subscribe("a", ConnKey(2)), Subscribed::Already);
        assert_eq!(r.unsubscribe("a", ConnKey(1)), Some(false));
        assert_eq!(r.unsubscribe("a", ConnKey(1)), None);
        assert_eq!(r.unsubscribe("a", ConnKey(2)), Some(true));
        assert_eq!(r.n_channels(), 0);
    }

    #[test]
    fn subscribers_go_inline_and_back() {
        let mut s = Subscribers::default();
        assert!(s.insert(ConnKey(1)));
        assert!(!s.insert(ConnKey(1)));
        assert!(matches!(s, Subscribers::One(ConnKey(1))));
        for k in 2..100 {
            assert!(s.insert(ConnKey(k)));
        }
        assert_eq!(s.len(), 99);
        let mut all: Vec<u32> = s.iter().map(|k| k.0).collect();
        all.sort_unstable();
        assert_eq!(all, (1..100).collect::<Vec<_>>());
        for k in 1..99 {
            assert!(s.remove(ConnKey(k)));
        }
        assert!(!s.remove(ConnKey(1)));
        assert!(matches!(s, Subscribers::One(ConnKey(99))), "{s:?}");
        assert!(s.remove(ConnKey(99)));
        assert!(s.is_empty());
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn remote_interest_keeps_the_channel() {
        let mut r = TopicRouter::default();
        r.set_remote("a", ShardId(3), true);
        r.subscribe("a", ConnKey(1));
        r.unsubscribe("a", ConnKey(1));
        let remote: Vec<_> = r.get("a").unwrap().remote.iter().collect();
        assert_eq!(remote, vec![ShardId(3)]);
        r.set_remote("a", ShardId(3), false);
        assert!(r.get("a").is_none());
    }

    #[test]
    fn a_channel_entry_stays_small() {
        assert!(std::mem::size_of::<Subscribers>() <= 16);
        assert!(std::mem::size_of::<Channel>() <= 32);
    }

    #[test]
    fn shard_set_spans_words() {
        let mut s = ShardSet::default();
        s.set(ShardId(0), true);
        s.set(ShardId(200), true);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![ShardId(0), ShardId(200)]);
        s.set(ShardId(0), false);
        s.set(ShardId(200), false);
        assert!(s.is_empty());
    }
}
