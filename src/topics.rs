//! `TopicRouter`: per shard, channel -> local subscribers and the set of
//! other shards that have subscribers for it.
//!
//! It is shard-local state (no locks) and does no I/O: the shard uses it to
//! find whom to fan a frame out to and which shards to forward it to.

use std::collections::HashMap;
use std::sync::Arc;

use indexmap::IndexSet;

use crate::shard::{ConnKey, ShardId};

/// Highest shard count the router's shard sets can name.
pub const MAX_SHARDS: usize = 256;

/// A set of shard ids, inline (32 bytes), for up to [`MAX_SHARDS`] shards.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ShardSet([u64; MAX_SHARDS / 64]);

impl ShardSet {
    /// Adds or removes `shard`.
    pub fn set(&mut self, shard: ShardId, present: bool) {
        let (word, bit) = (shard.0 as usize / 64, shard.0 as usize % 64);
        if present {
            self.0[word] |= 1 << bit;
        } else {
            self.0[word] &= !(1 << bit);
        }
    }

    /// True when no shard is in the set.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// The shards in the set, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = ShardId> + '_ {
        self.0.iter().enumerate().flat_map(|(i, word)| {
            (0..64)
                .filter(move |b| word & (1 << b) != 0)
                .map(move |b| ShardId((i * 64 + b) as u16))
        })
    }
}

/// Who wants one channel's messages.
#[derive(Debug, Default)]
pub struct Channel {
    /// Connections on this shard subscribed to it.
    pub local: IndexSet<ConnKey>,
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
        if !entry.local.swap_remove(&conn) {
            return None;
        }
        let last = entry.local.is_empty();
        if last && entry.remote.is_empty() {
            self.channels.remove(channel);
        } else if last {
            entry.local = IndexSet::new();
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
