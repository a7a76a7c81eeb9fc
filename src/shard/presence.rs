//! Presence and join/leave: who is subscribed to a channel (each shard
//! answers for its own subscribers over the bus, the asker merges), and the
//! `join`/`leave` pushes of namespaces with `join_leave`.
//!
//! Presence keeps no state of its own: a channel's local subscriber set is
//! already in the topic router, and a subscriber's user and `info` are in
//! the user index, so presence costs nothing per subscription beyond what
//! a subscription costs anyway.

use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use super::{ConnKey, Query, Shard};
use crate::bus::BusMessage;
use crate::message;

/// Presence requests from this shard's clients that may wait on other
/// shards at once; more get TOO_MANY_REQUESTS, so a client cannot pile up
/// tasks and replies.
pub const MAX_PRESENCE_IN_FLIGHT: usize = 64;

/// One shard's part of a presence answer.
#[derive(Debug, Default)]
pub struct LocalPresence {
    /// Up to the asked limit of `{"connection_id","user","info"}` objects.
    pub clients: Vec<String>,
    /// Local subscribers in all.
    pub n_clients: u64,
    /// Distinct non-empty users among them (only for stats).
    pub users: Vec<Box<str>>,
}

/// A channel's presence across every shard.
#[derive(Debug, Default)]
pub struct Presence {
    /// Client objects (JSON), at most the limit asked for.
    pub clients: Vec<String>,
    /// True when there were more subscribers than `clients` holds.
    pub truncated: bool,
    /// Subscribers in all.
    pub n_clients: u64,
    /// Distinct users among them (anonymous connections are not users).
    pub n_users: u64,
}

impl Shard {
    /// Pushes `{"type":"join",...}` for connection `key` to `channel`'s
    /// subscribers on every shard, when its namespace has `join_leave`.
    pub(super) fn announce_join(&self, key: ConnKey, channel: &str) {
        self.announce("join", key, channel);
    }

    /// Pushes `{"type":"leave",...}`, as [`Shard::announce_join`].
    pub(super) fn announce_leave(&self, key: ConnKey, channel: &str) {
        self.announce("leave", key, channel);
    }

    fn announce(&self, kind: &str, key: ConnKey, channel: &str) {
        let ns = self.config.config.namespaces.lookup(channel);
        if self.clustered() && ns.is_some_and(|ns| ns.presence) {
            // Redis mode: presence namespaces are listed cluster-wide.
            self.presence_to_cluster(key, channel, kind == "join");
        }
        if !ns.is_some_and(|ns| ns.join_leave) {
            return;
        }
        let Some(client) = self.client_info(key) else {
            return;
        };
        let frame = message::join_leave(kind, channel, &client);
        if self.clustered() {
            // Through Redis like any publish: every process's subscribers,
            // in the channel's one order.
            return self.publish_to_cluster_unacked(channel, frame);
        }
        let home = self.home_of(channel);
        if home == self.id || self.history_options(channel).is_none() {
            self.publish(channel, frame);
            return;
        }
        // A history channel's interest is known only at its home: deliver
        // here now (so a subscriber's own join still comes first) and have
        // the home relay it to every other shard with subscribers.
        self.publish_local(channel, &frame);
        self.bus.send(
            home,
            BusMessage::Relay {
                channel: Arc::from(channel),
                frame,
                from: self.id,
            },
        );
    }

    /// `{"connection_id":ID,"user":U[,"info":INFO]}` for connection `key`.
    pub(super) fn client_info(&self, key: ConnKey) -> Option<String> {
        let (seq, slot) = {
            let conns = self.conns.borrow();
            let conn = conns.get(key.0 as usize)?;
            (conn.seq, conn.user)
        };
        let users = self.users.borrow();
        let info = users.claims(key).and_then(|c| c.info.as_deref());
        Some(message::client_info(
            &self.connection_id(seq),
            users.name(slot),
            info,
        ))
    }

    /// This shard's subscribers of `channel`: up to `limit` client objects,
    /// the count, and (for `stats`) their distinct users.
    pub(super) fn presence_local(&self, channel: &str, limit: usize, stats: bool) -> LocalPresence {
        let keys: Vec<ConnKey> = match self.topics.borrow().get(channel) {
            Some(entry) => entry.local.iter().collect(),
            None => return LocalPresence::default(),
        };
        let mut out = LocalPresence {
            n_clients: keys.len() as u64,
            ..LocalPresence::default()
        };
        if stats {
            let conns = self.conns.borrow();
            let users = self.users.borrow();
            let mut seen = HashSet::new();
            for key in &keys {
                let Some(conn) = conns.get(key.0 as usize) else {
                    continue;
                };
                let name = users.name(conn.user);
                if !name.is_empty() && seen.insert(name) {
                    out.users.push(name.into());
                }
            }
        } else {
            out.clients = keys
                .iter()
                .take(limit)
                .filter_map(|key| self.client_info(*key))
                .collect();
        }
        out
    }

    /// Gathers `channel`'s presence from every shard (each bounded by the
    /// query timeout) and merges it: client objects up to
    /// `--max-presence-clients`, or, for `stats`, the counts.
    pub async fn gather_presence(self: &Rc<Self>, channel: &str, stats: bool) -> Presence {
        let limit = self.config.config.max_presence_clients;
        if let Some(presence) = self.presence_from_cluster(channel, limit, stats).await {
            return presence;
        }
        let query = Query::Presence {
            channel: Arc::from(channel),
            limit,
            stats,
        };
        let reports = self.query(&self.all_shards(), query).await;
        let mut merged = Presence::default();
        let mut users: HashSet<Box<str>> = HashSet::new();
        for report in reports {
            let Some(part) = report.presence else {
                continue;
            };
            merged.n_clients += part.n_clients;
            users.extend(part.users);
            for client in part.clients {
                if merged.clients.len() < limit {
                    merged.clients.push(client);
                }
            }
        }
        merged.n_users = users.len() as u64;
        merged.truncated = !stats && merged.n_clients > merged.clients.len() as u64;
        merged
    }

    /// Answers a client's `presence`/`presence_stats` request from a task of
    /// its own (other shards must answer first): `encode` makes the reply,
    /// in the connection's protocol, which goes to connection `key` if it is
    /// still the one with `seq`. False when too many such requests are in
    /// flight on this shard.
    pub fn request_presence(
        self: &Rc<Self>,
        key: ConnKey,
        seq: u64,
        channel: &str,
        stats: bool,
        encode: Box<dyn FnOnce(&Presence) -> Bytes>,
    ) -> bool {
        if self.presence_in_flight.get() >= MAX_PRESENCE_IN_FLIGHT {
            return false;
        }
        self.presence_in_flight
            .set(self.presence_in_flight.get() + 1);
        let shard = self.clone();
        let channel = channel.to_string();
        glommio::spawn_local(async move {
            let presence = shard.gather_presence(&channel, stats).await;
            shard
                .presence_in_flight
                .set(shard.presence_in_flight.get() - 1);
            shard.send_to_conn(key, seq, encode(&presence));
        })
        .detach();
        true
    }
}
