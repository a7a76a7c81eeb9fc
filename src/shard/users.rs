//! `Users`: per shard, each authenticated user's local connections (what
//! serves the personal channel `#<user>`), and the claims a connection
//! presented beyond its user id (presence `info`, private-channel grants).
//!
//! Pure shard-local state, no I/O. A user costs one slab slot (40 bytes,
//! the name inline up to [`INLINE_NAME`] bytes) and one 4-byte slot in the
//! name index; a connection costs its 4-byte [`UserSlot`] in `ConnState`,
//! plus a boxed claims entry only when its token carried `info` or
//! `channels`. There is no channel object per user.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, RandomState};
use std::rc::Rc;

use hashbrown::HashTable;
use slab::Slab;

use super::ConnKey;
use crate::auth::Claims;
use crate::topics::{KeyHasher, Subscribers};

/// Longest user id stored without a heap allocation: ids like `u12345` or a
/// UUID's 22-byte base64 fit, so most users cost no allocation at all.
pub const INLINE_NAME: usize = 22;

/// A user's index in its shard's [`Users`]; valid while the user has a
/// connection on the shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserSlot(pub u32);

impl UserSlot {
    /// An anonymous connection's slot.
    pub const NONE: UserSlot = UserSlot(u32::MAX);

    /// True for a connection with a user.
    pub fn is_some(self) -> bool {
        self != Self::NONE
    }
}

/// A user id, inline when short.
#[derive(Debug)]
enum UserName {
    /// Up to [`INLINE_NAME`] bytes.
    Inline { len: u8, bytes: [u8; INLINE_NAME] },
    /// Longer ids.
    Heap(Box<str>),
}

impl UserName {
    fn new(name: &str) -> UserName {
        if name.len() <= INLINE_NAME {
            let mut bytes = [0; INLINE_NAME];
            bytes[..name.len()].copy_from_slice(name.as_bytes());
            UserName::Inline {
                len: name.len() as u8,
                bytes,
            }
        } else {
            UserName::Heap(name.into())
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // The bytes were copied from a &str, whole.
            UserName::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..*len as usize]).unwrap_or_default()
            }
            UserName::Heap(name) => name,
        }
    }
}

/// One user present on the shard.
#[derive(Debug)]
struct User {
    name: UserName,
    /// The user's connections on this shard.
    conns: Subscribers,
}

/// Every user with a connection on this shard.
#[derive(Debug, Default)]
pub struct Users {
    slots: Slab<User>,
    /// Slab slots, hashed by the user's name. Holds exactly the occupied
    /// slots (`attach` inserts a slot with its user, `detach` removes it
    /// before freeing the slot), so indexing `slots` with one cannot fail.
    index: HashTable<u32>,
    /// Names come from tokens a backend signed, but hash them with a keyed
    /// hash anyway: nothing a client controls should pick buckets.
    hasher: RandomState,
    /// Claims beyond the user id, for the connections whose token had them.
    extras: HashMap<ConnKey, Rc<Claims>, BuildHasherDefault<KeyHasher>>,
}

impl Users {
    /// Adds connection `key` to `name` (created on its first connection).
    pub fn attach(&mut self, name: &str, key: ConnKey) -> UserSlot {
        let hash = self.hasher.hash_one(name);
        let slots = &self.slots;
        let found = self
            .index
            .find(hash, |&i| slots[i as usize].name.as_str() == name)
            .copied();
        let slot = match found {
            Some(i) => i,
            None => {
                let i = self.slots.insert(User {
                    name: UserName::new(name),
                    conns: Subscribers::Empty,
                }) as u32;
                let (slots, hasher) = (&self.slots, &self.hasher);
                self.index.insert_unique(hash, i, |&j| {
                    hasher.hash_one(slots[j as usize].name.as_str())
                });
                i
            }
        };
        self.slots[slot as usize].conns.insert(key);
        UserSlot(slot)
    }

    /// Removes connection `key` from `slot`'s user (and the user with its
    /// last connection), and the connection's claims.
    pub fn detach(&mut self, slot: UserSlot, key: ConnKey) {
        self.extras.remove(&key);
        let Some(user) = self.slots.get_mut(slot.0 as usize) else {
            return;
        };
        user.conns.remove(key);
        if !user.conns.is_empty() {
            return;
        }
        let hash = self.hasher.hash_one(user.name.as_str());
        if let Ok(entry) = self.index.find_entry(hash, |&i| i == slot.0) {
            entry.remove();
        }
        self.slots.remove(slot.0 as usize);
        if self.slots.is_empty() {
            // Give back the high-water capacity once nobody is left.
            self.slots.shrink_to_fit();
            self.index.shrink_to_fit(|_| 0);
            self.extras.shrink_to_fit();
        }
    }

    /// Keeps `claims` for connection `key` (its `info` and grants).
    pub fn set_claims(&mut self, key: ConnKey, claims: Rc<Claims>) {
        self.extras.insert(key, claims);
    }

    /// Forgets connection `key`'s claims (a refreshed token without any).
    pub fn clear_claims(&mut self, key: ConnKey) {
        self.extras.remove(&key);
    }

    /// The claims connection `key` presented, when they had `info` or `channels`.
    pub fn claims(&self, key: ConnKey) -> Option<&Rc<Claims>> {
        self.extras.get(&key)
    }

    /// The user id of `slot` ("" for [`UserSlot::NONE`]).
    pub fn name(&self, slot: UserSlot) -> &str {
        self.slots
            .get(slot.0 as usize)
            .map_or("", |u| u.name.as_str())
    }

    /// `name`'s connections on this shard, if it has any.
    pub fn conns_of(&self, name: &str) -> Option<&Subscribers> {
        let hash = self.hasher.hash_one(name);
        let i = self
            .index
            .find(hash, |&i| self.slots[i as usize].name.as_str() == name)?;
        Some(&self.slots[*i as usize].conns)
    }

    /// Users with a connection on this shard.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when no user is connected to this shard.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_lives_while_it_has_connections() {
        let mut users = Users::default();
        let a1 = users.attach("alice", ConnKey(1));
        let b = users.attach("bob", ConnKey(2));
        let a2 = users.attach("alice", ConnKey(3));
        assert_eq!(a1, a2, "one slot per user");
        assert_ne!(a1, b);
        assert_eq!(users.name(a1), "alice");
        assert_eq!(users.conns_of("alice").map(Subscribers::len), Some(2));
        users.detach(a1, ConnKey(1));
        assert_eq!(users.conns_of("alice").map(Subscribers::len), Some(1));
        users.detach(a2, ConnKey(3));
        assert!(users.conns_of("alice").is_none());
        assert_eq!(users.len(), 1);
        users.detach(b, ConnKey(2));
        assert!(users.is_empty());
        assert_eq!(users.name(UserSlot::NONE), "");
    }

    #[test]
    fn long_names_and_reused_slots_resolve_by_name() {
        let mut users = Users::default();
        let long = "x".repeat(INLINE_NAME + 10);
        let exact = "y".repeat(INLINE_NAME);
        let l = users.attach(&long, ConnKey(1));
        let e = users.attach(&exact, ConnKey(2));
        assert_eq!(users.name(l), long);
        assert_eq!(users.name(e), exact);
        users.detach(l, ConnKey(1));
        // The freed slot goes to a new user; the old name must not find it.
        let c = users.attach("carol", ConnKey(3));
        assert_eq!(c, l, "slab reuses the slot");
        assert!(users.conns_of(&long).is_none());
        assert_eq!(users.conns_of("carol").map(Subscribers::len), Some(1));
        assert_eq!(users.conns_of(&exact).map(Subscribers::len), Some(1));
    }

    #[test]
    fn a_user_slot_stays_small() {
        assert!(std::mem::size_of::<User>() <= 40);
    }
}
