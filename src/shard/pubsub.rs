//! The publish path through a shard: subscribe and unsubscribe (with the
//! cross-shard interest protocol), publish, fan-out, and bus messages.

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use super::identity::personal_channel_owner;
use super::{ConnKey, Outgoing, PendingInterest, Shard, ShardId, Subscription};
use crate::bus::BusMessage;
use crate::latency::{self, Latency};
use crate::message;
use crate::outbox::Frame;
use crate::shard::Query;
use crate::topics::Subscribed;

impl Shard {
    /// Subscribes `key` to `channel` and queues `reply` ("subscribed").
    ///
    /// When this shard has no subscriber for the channel yet, the other
    /// shards must learn of it first: the subscription and its reply wait
    /// for every shard's `InterestAck`, and the connection pauses its reads
    /// meanwhile. So once a client sees "subscribed", every later publish,
    /// from any shard, reaches it; and no reply overtakes another.
    pub fn subscribe(
        self: &Rc<Self>,
        key: ConnKey,
        seq: u64,
        channel: &str,
        reply: Bytes,
        id: Option<&serde_json::value::RawValue>,
    ) -> Subscription {
        if let Some(pending) = self.pending.borrow_mut().get_mut(channel) {
            pending
                .replies
                .push((key, seq, reply, id.map(|i| i.to_owned())));
            self.set_awaiting(key, true);
            return Subscription::Waiting;
        }
        let has_local = self
            .topics
            .borrow()
            .get(channel)
            .is_some_and(|c| !c.local.is_empty());
        let clustered = self.clustered();
        if has_local || (self.bus.n_peers() == 0 && !clustered) {
            let outcome = self.topics.borrow_mut().subscribe(channel, key);
            self.send_to(key, reply);
            return match outcome {
                Subscribed::FirstOnShard(name) | Subscribed::Added(name) => {
                    // After the reply and in the same turn: the subscriber's own
                    // join precedes anything else it gets on the channel.
                    self.announce_join(key, channel);
                    Subscription::Active(name)
                }
                Subscribed::Already => Subscription::Already,
            };
        }
        // In Redis mode only the channel's home, which holds the process's
        // pub/sub subscription, needs to know (shard/cluster/interest.rs).
        let pending = PendingInterest {
            acks_left: if clustered { 1 } else { self.bus.n_peers() },
            replies: vec![(key, seq, reply, id.map(|i| i.to_owned()))],
        };
        self.pending.borrow_mut().insert(Rc::from(channel), pending);
        self.set_awaiting(key, true);
        if clustered {
            self.want_channel(channel);
        } else {
            self.announce_interest(channel, true);
        }
        Subscription::Waiting
    }

    /// True when connection `key` is an active subscriber of `channel`.
    pub fn is_subscribed(&self, key: ConnKey, channel: &str) -> bool {
        self.topics
            .borrow()
            .get(channel)
            .is_some_and(|c| c.local.contains(key))
    }

    pub(super) fn set_awaiting(&self, key: ConnKey, awaiting: bool) {
        if let Some(conn) = self.conns.borrow_mut().get_mut(key.0 as usize) {
            conn.awaiting_ack = awaiting;
        }
    }

    /// Tells every other shard that this shard gained (`present`) or lost its
    /// last subscriber for `channel`.
    fn announce_interest(&self, channel: &str, present: bool) {
        let shared: Arc<str> = Arc::from(channel);
        for peer in self.bus.peers() {
            let (channel, from) = (shared.clone(), self.id);
            let msg = if present {
                BusMessage::InterestAdded { channel, from }
            } else {
                BusMessage::InterestRemoved { channel, from }
            };
            self.bus.send(peer, msg);
        }
    }

    /// Unsubscribes `key` (announcing its leave where join/leave is on);
    /// tells other shards when the last local subscriber leaves.
    pub fn unsubscribe(&self, key: ConnKey, channel: &str) {
        let last = self.topics.borrow_mut().unsubscribe(channel, key);
        if last.is_some() {
            self.announce_leave(key, channel);
        }
        // A history subscribe still waiting on the channel's home keeps this
        // shard's interest there (see shard/streams.rs).
        if last == Some(true) && !self.history_pending(channel) {
            if self.clustered() {
                self.release_channel(channel);
            } else if self.bus.n_peers() > 0 {
                self.announce_interest(channel, false);
            }
        }
    }

    /// Publishes an encoded frame: fans out locally, then sends it once to
    /// each other shard with subscribers. Returns how many shards it reached.
    pub fn publish(&self, channel: &str, frame: Bytes) -> usize {
        self.metrics.bump(|c| c.published += 1);
        if let Some(user) = personal_channel_owner(channel) {
            return self.publish_to_user(channel, user, frame);
        }
        self.fan_out_channel(channel, frame)
    }

    /// Fans an encoded frame of `channel` out in this process: locally,
    /// then once to each other shard with subscribers. Returns how many
    /// shards it reached.
    pub(super) fn fan_out_channel(&self, channel: &str, frame: Bytes) -> usize {
        let topics = self.topics.borrow();
        let Some((name, entry)) = topics.get_named(channel) else {
            return 0;
        };
        // Read only once someone will receive it.
        let stamp = latency::now_ns();
        let mut reached = usize::from(!entry.local.is_empty());
        self.fan_out_local(entry.local.iter(), &frame, stamp);
        for shard in entry.remote.iter() {
            self.bus.send(
                shard,
                BusMessage::Publish {
                    channel: name.clone(),
                    frame: frame.clone(),
                    published_at: stamp,
                },
            );
            reached += 1;
        }
        reached
    }

    /// A personal channel has no subscriber table: the user index serves it
    /// here, and every other shard gets the frame (a shard does not know
    /// where else a user is connected; personal messages are rare next to
    /// channel traffic, and this keeps a user free of per-channel state).
    pub(super) fn publish_to_user(&self, channel: &str, user: &str, frame: Bytes) -> usize {
        let stamp = latency::now_ns();
        let reached = usize::from(self.deliver_to_user(user, &frame, stamp) > 0);
        let name: Arc<str> = Arc::from(channel);
        for peer in self.bus.peers() {
            self.bus.send(
                peer,
                BusMessage::Publish {
                    channel: name.clone(),
                    frame: frame.clone(),
                    published_at: stamp,
                },
            );
        }
        reached + self.bus.n_peers()
    }

    /// Queues `frame` for this shard's subscribers of `channel` only.
    pub(super) fn publish_local(&self, channel: &str, frame: &Bytes) {
        let topics = self.topics.borrow();
        if let Some(entry) = topics.get(channel) {
            self.fan_out_local(entry.local.iter(), frame, 0);
        }
    }

    /// A home shard's relay of another shard's push (see `BusMessage::Relay`).
    fn relay(&self, channel: &Arc<str>, frame: Bytes, from: ShardId) {
        self.publish_local(channel, &frame);
        let topics = self.topics.borrow();
        let Some(entry) = topics.get(channel) else {
            return;
        };
        let stamp = latency::now_ns();
        for shard in entry.remote.iter().filter(|s| *s != from) {
            self.bus.send(
                shard,
                BusMessage::Publish {
                    channel: channel.clone(),
                    frame: frame.clone(),
                    published_at: stamp,
                },
            );
        }
    }

    /// Handles one message from another shard.
    pub fn on_bus_message(self: &Rc<Self>, msg: BusMessage) {
        self.metrics.bump(|c| c.bus_received += 1);
        match msg {
            BusMessage::Publish {
                channel,
                frame,
                published_at,
            } => {
                let mut latency = self.latency.borrow_mut();
                Latency::record(&mut latency.bus_hop, published_at, latency::now_ns());
                drop(latency);
                if let Some(user) = personal_channel_owner(&channel) {
                    self.deliver_to_user(user, &frame, published_at);
                    return;
                }
                let topics = self.topics.borrow();
                if let Some(entry) = topics.get(&channel) {
                    self.fan_out_local(entry.local.iter(), &frame, published_at);
                }
            }
            BusMessage::Broadcast { frame } => self.broadcast_local(&frame),
            BusMessage::Relay {
                channel,
                frame,
                from,
            } => self.relay(&channel, frame, from),
            BusMessage::Query { from, req, query } => {
                if self.clustered() && matches!(query, Query::HistorySubscribe { .. }) {
                    return self.answer_history_from_cluster(from, req, query);
                }
                let report = Box::new(self.answer(&query));
                self.bus.send(from, BusMessage::Reply { req, report });
            }
            BusMessage::Reply { req, report } => self.on_reply(req, *report),
            BusMessage::InterestAdded { channel, from } => {
                self.topics.borrow_mut().set_remote(&channel, from, true);
                if self.clustered() {
                    return self.ensure_pubsub(channel, Some(from));
                }
                self.bus.send(
                    from,
                    BusMessage::InterestAck {
                        channel,
                        from: self.id,
                        ok: true,
                    },
                );
            }
            BusMessage::InterestRemoved { channel, from } => {
                self.topics.borrow_mut().set_remote(&channel, from, false);
                if self.clustered() {
                    self.release_channel(&channel);
                }
            }
            BusMessage::InterestAck { channel, ok, .. } => self.on_interest_ack(&channel, ok),
        }
    }

    /// One shard acknowledged this shard's interest in `channel`; with the
    /// last one the waiting subscribes become active. `ok` false (Redis mode:
    /// the pub/sub subscription failed) fails them with `UNAVAILABLE`.
    pub(super) fn on_interest_ack(self: &Rc<Self>, channel: &str, ok: bool) {
        let waiters = {
            let mut pending = self.pending.borrow_mut();
            let Some(entry) = pending.get_mut(channel) else {
                return;
            };
            entry.acks_left -= 1;
            if entry.acks_left > 0 {
                return;
            }
            pending
                .remove(channel)
                .map(|p| p.replies)
                .unwrap_or_default()
        };
        for (key, seq, reply, id) in waiters {
            let mut conns = self.conns.borrow_mut();
            // A key whose seq differs belongs to a newer connection: skip it.
            let Some(conn) = conns.get_mut(key.0 as usize).filter(|c| c.seq == seq) else {
                continue;
            };
            conn.awaiting_ack = false;
            // The connection paused its reads for this reply: let it resume.
            conn.wake();
            if !ok {
                let err = message::RequestError {
                    code: message::ErrorCode::Unavailable,
                    message: format!(
                        "cannot subscribe to {channel} now (Redis unreachable); retry"
                    ),
                    id: id.as_deref(),
                };
                self.deliver(key, conn, Frame::Own(message::error(&err)));
                continue;
            }
            self.deliver(key, conn, Frame::Own(reply));
            drop(conns);
            self.topics.borrow_mut().subscribe(channel, key);
            self.announce_join(key, channel);
        }
        // Every waiter left before the acks came back: withdraw the interest.
        let has_local = self
            .topics
            .borrow()
            .get(channel)
            .is_some_and(|c| !c.local.is_empty());
        if !has_local {
            if self.clustered() {
                self.release_channel(channel);
            } else {
                self.announce_interest(channel, false);
            }
        }
    }

    /// Queues `frame` for each connection in `keys`: a shard-local refcount
    /// bump each, no copy, no atomic; the flush pass writes them. `stamp` is
    /// when the publish entered the server.
    pub(super) fn fan_out_local(
        &self,
        keys: impl Iterator<Item = ConnKey>,
        frame: &Bytes,
        stamp: u64,
    ) {
        let mut conns = self.conns.borrow_mut();
        let mut n = 0;
        // One shard-local reference for every local subscriber in the
        // native form, and one more per other form a subscriber here wants
        // (each converted or compressed once: `Shard::frame_for`).
        let mut out = Outgoing::shared(frame, stamp);
        for key in keys {
            if let Some(conn) = conns.get_mut(key.0 as usize) {
                let Some(frame) = self.frame_for(&mut out, conn) else {
                    continue;
                };
                self.deliver(key, conn, frame);
                n += 1;
            }
        }
        drop(conns);
        self.metrics.bump(|c| c.delivered += n);
    }
}
