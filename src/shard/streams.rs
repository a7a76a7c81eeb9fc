//! History channels through the shards: each has a home shard (by a fixed
//! hash of its name) that owns its [`HistoryStore`] entry, assigns offsets
//! and fans every publication out; subscribes with recovery and history
//! reads are answered there. Channels without history never come here.
//!
//! Why one order per channel holds without merging: a publication leaves
//! the home shard once, already numbered, and the bus keeps each pair of
//! shards in order. A recovering subscriber's shard registers its interest
//! with the home and then asks for the missed publications on the same
//! link, so the home answers with everything up to some top offset, and
//! every later publication reaches that shard after the answer. The
//! subscriber joins the local fan-out when the answer is handled: what
//! arrived before it (offsets up to the top) is in the answer, what comes
//! after it is live. No publication is missed or delivered twice.

use std::future::Future;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::value::RawValue;

use super::{ConnKey, Query, Shard, ShardId, ShardReport, Subscription};
use crate::bus::BusMessage;
use crate::centrifugo;
use crate::history::{
    Epoch, HistoryError, HistoryOptions, HistoryPage, HistoryStore, Publication, Recovery,
};
use crate::message::{self, Position};
use crate::outbox::Frame;

/// History channels a shard expires per ticker pass (see
/// [`HistoryStore::expire`]): bounded like the ticker's own slice.
pub const EXPIRE_BUDGET: usize = 256;

/// An answer that comes later (from the home shard, or from Redis).
pub type Answer<T> = std::pin::Pin<Box<dyn Future<Output = T>>>;

/// What a home shard answers about a history channel.
#[derive(Debug)]
pub enum HistoryAnswer {
    /// A publication was numbered and fanned out.
    Published {
        /// Its offset.
        offset: u64,
        /// The channel's epoch.
        epoch: Epoch,
    },
    /// The channel's position, and the recovery if one was asked for.
    Position {
        /// The latest offset.
        top: u64,
        /// The channel's epoch.
        epoch: Epoch,
        /// None when no recovery was asked.
        recovery: Option<Recovery>,
    },
    /// A history read.
    Page(Result<HistoryPage, HistoryError>),
    /// The history was dropped (a new epoch).
    Removed,
    /// The channel has no history (its namespace keeps none).
    Disabled,
}

/// A connection's history subscribe waiting for the channel's home.
#[derive(Debug)]
pub(super) struct HistoryWaiter {
    key: ConnKey,
    seq: u64,
    channel: String,
    recovering: bool,
    id: Option<Box<RawValue>>,
    /// When the ticker gives up on the home (shard ms).
    deadline_ms: u64,
}

/// How a shard's store is built: its share of `--history-max-bytes` and
/// `--history-max-channels`, and an epoch seed from the OS (std's hasher
/// keys are random per process).
pub fn new_store(cfg: &crate::config::Config, n_shards: usize, shard: ShardId) -> HistoryStore {
    let n = n_shards.max(1);
    let seed = std::collections::hash_map::RandomState::new().hash_one(shard.0);
    HistoryStore::new(cfg.history_max_bytes / n, seed)
        .with_max_channels((cfg.history_max_channels / n).max(1))
}

impl Shard {
    /// The history options of `channel`'s namespace, when it keeps history.
    pub fn history_options(&self, channel: &str) -> Option<HistoryOptions> {
        if super::personal_channel_owner(channel).is_some() {
            return None; // Personal channels are mailboxes, served by the user index.
        }
        let cfg = &self.config.config;
        let ns = cfg.namespaces.lookup(channel)?;
        ns.history().then(|| HistoryOptions {
            size: ns.history_size,
            ttl_ms: Self::ms(ns.history_ttl),
            meta_ttl_ms: Self::ms(cfg.history_meta_ttl),
        })
    }

    /// The shard that owns `channel`'s history: a hash every shard computes
    /// the same way (std's `DefaultHasher` with its fixed default keys).
    pub fn home_of(&self, channel: &str) -> ShardId {
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(channel);
        ShardId((hash % self.shared.n_shards.max(1) as u64) as u16)
    }

    /// Publishes `data` (JSON bytes) to history channel `channel`: at its
    /// home shard, which numbers and fans it out. The question leaves now,
    /// so one connection's publishes keep their order; the answer (offset
    /// and epoch) comes when the home has handled it.
    pub fn publish_history(
        self: &Rc<Self>,
        channel: &str,
        data: Bytes,
    ) -> Answer<Option<(u64, Epoch)>> {
        if self.clustered() {
            let (shard, channel) = (self.clone(), channel.to_string());
            return Box::pin(
                async move { shard.publish_history_to_cluster(&channel, data).await.ok() },
            );
        }
        let query = Query::HistoryPublish {
            channel: Arc::from(channel),
            data,
        };
        let answer = self.ask_home(channel, query);
        Box::pin(async move {
            match answer.await {
                Some(HistoryAnswer::Published { offset, epoch }) => Some((offset, epoch)),
                _ => None,
            }
        })
    }

    /// Publishes `data` to history channel `channel` without waiting for
    /// (or keeping anything for) the home's answer: a client publish with
    /// no `id`.
    pub fn publish_history_unacked(self: &Rc<Self>, channel: &str, data: Bytes) {
        if self.clustered() {
            // Spawned now, so it reaches Redis after this connection's
            // earlier publishes (tasks run in the order they were made).
            let published = self.publish_history(channel, data);
            glommio::spawn_local(published).detach();
            return;
        }
        let query = Query::HistoryPublish {
            channel: Arc::from(channel),
            data,
        };
        self.tell(self.home_of(channel), query);
    }

    /// Reads history channel `channel` at its home (the question leaves
    /// now; the page comes when the home has answered).
    pub fn read_history(
        self: &Rc<Self>,
        channel: &str,
        since: Option<Position>,
        limit: usize,
        reverse: bool,
    ) -> Answer<Option<Result<HistoryPage, HistoryError>>> {
        if self.clustered() {
            let (shard, channel) = (self.clone(), channel.to_string());
            return Box::pin(async move {
                shard
                    .read_history_from_cluster(&channel, since, limit, reverse)
                    .await
            });
        }
        let query = Query::HistoryRead {
            channel: Arc::from(channel),
            since,
            limit,
            reverse,
        };
        let answer = self.ask_home(channel, query);
        Box::pin(async move {
            match answer.await {
                Some(HistoryAnswer::Page(page)) => Some(page),
                _ => None,
            }
        })
    }

    /// Drops `channel`'s history at its home; the next use gets a new epoch.
    pub async fn remove_history(self: &Rc<Self>, channel: &str) -> bool {
        if self.clustered() {
            return self.remove_history_from_cluster(channel).await;
        }
        let query = Query::HistoryRemove {
            channel: Arc::from(channel),
        };
        matches!(
            self.ask_home(channel, query).await,
            Some(HistoryAnswer::Removed)
        )
    }

    /// Asks `channel`'s home `query` now (so questions leave in the
    /// caller's order); the answer comes when the home has handled it.
    fn ask_home(
        self: &Rc<Self>,
        channel: &str,
        query: Query,
    ) -> impl Future<Output = Option<HistoryAnswer>> + 'static {
        let asked = self.ask(&[self.home_of(channel)], query);
        let shard = self.clone();
        async move {
            shard
                .answers(asked)
                .await
                .into_iter()
                .find_map(|r| r.history.map(|h| *h))
        }
    }

    /// Subscribes `key` to history channel `channel`, recovering from
    /// `recover` if given: missed publications, then the `subscribed` reply
    /// with the position, then live ones. On the home shard this happens
    /// now; elsewhere the connection pauses until the home answers.
    pub fn subscribe_history(
        self: &Rc<Self>,
        key: ConnKey,
        seq: u64,
        channel: &str,
        recover: Option<Position>,
        id: Option<&RawValue>,
    ) -> Subscription {
        let home = self.home_of(channel);
        let query = Query::HistorySubscribe {
            channel: Arc::from(channel),
            recover: recover.clone(),
        };
        let clustered = self.clustered();
        if home == self.id && !clustered {
            let answer = self.answer_history(&query);
            return self.activate_history(key, channel, recover.is_some(), Some(answer), id);
        }
        let local = self
            .topics
            .borrow()
            .get(channel)
            .is_some_and(|c| !c.local.is_empty());
        let pending = {
            let mut map = self.history_pending.borrow_mut();
            let n = map.entry(Rc::from(channel)).or_insert(0);
            *n += 1;
            *n
        };
        if !local && pending == 1 {
            // Only the home fans this channel out: only it needs to know.
            self.want_channel(channel);
        }
        self.set_awaiting(key, true);
        // The answer is handled where it arrives, in the bus task, before
        // the home's next message on the same link: a task woken to handle
        // it would run after later publications were already fanned out
        // here without this subscriber.
        let req = self.new_req();
        self.history_waiters.borrow_mut().insert(
            req,
            HistoryWaiter {
                key,
                seq,
                channel: channel.to_string(),
                recovering: recover.is_some(),
                id: id.map(|i| i.to_owned()),
                // A home that never answers (it is shutting down) must not
                // leave the connection paused for good: the ticker ends it.
                deadline_ms: self.now_ms() + Self::ms(super::query::QUERY_TIMEOUT),
            },
        );
        if clustered {
            // The home answers once Redis has the subscription and the
            // position (shard/cluster/position.rs); for itself, without the bus.
            if home == self.id {
                self.answer_history_from_cluster(self.id, req, query);
                return Subscription::Waiting;
            }
        }
        self.bus.send(
            home,
            BusMessage::Query {
                from: self.id,
                req,
                query,
            },
        );
        Subscription::Waiting
    }

    /// Handles the home's answer to a waiting history subscribe; gives the
    /// report back when `req` is not one.
    pub(super) fn on_history_reply(&self, req: u64, report: ShardReport) -> Option<ShardReport> {
        let Some(waiter) = self.history_waiters.borrow_mut().remove(&req) else {
            return Some(report);
        };
        self.finish_history_subscribe(waiter, report.history.map(|h| *h));
        None
    }

    fn finish_history_subscribe(&self, waiter: HistoryWaiter, answer: Option<HistoryAnswer>) {
        let HistoryWaiter {
            key,
            seq,
            channel,
            recovering,
            id,
            ..
        } = waiter;
        self.end_pending(&channel);
        let alive = self
            .conns
            .borrow()
            .get(key.0 as usize)
            .is_some_and(|c| c.seq == seq);
        if !alive {
            self.withdraw_if_unused(&channel);
            return;
        }
        self.set_awaiting(key, false);
        if let Some(conn) = self.conns.borrow_mut().get_mut(key.0 as usize) {
            conn.wake();
        }
        self.activate_history(key, &channel, recovering, answer, id.as_deref());
    }

    /// One fewer history subscribe of this shard waits on `channel`'s home.
    fn end_pending(&self, channel: &str) {
        let mut map = self.history_pending.borrow_mut();
        if let Some(n) = map.get_mut(channel) {
            *n -= 1;
            if *n == 0 {
                map.remove(channel);
            }
        }
    }

    /// True while a history subscribe of this shard waits on `channel`'s
    /// home: its interest there must stay.
    pub(super) fn history_pending(&self, channel: &str) -> bool {
        self.history_pending.borrow().contains_key(channel)
    }

    /// Tells the home this shard no longer wants `channel`, if nobody here
    /// subscribes or waits to.
    fn withdraw_if_unused(&self, channel: &str) {
        let local = self
            .topics
            .borrow()
            .get(channel)
            .is_some_and(|c| !c.local.is_empty());
        if !local && !self.history_pending(channel) {
            if self.clustered() {
                return self.release_channel(channel);
            }
            self.bus.send(
                self.home_of(channel),
                BusMessage::InterestRemoved {
                    channel: Arc::from(channel),
                    from: self.id,
                },
            );
        }
    }

    /// Makes `key` a live subscriber of `channel` once its position is
    /// known: recovered publications first, then the reply, then its join.
    /// A Centrifugo client gets the recovered publications inside its
    /// subscribe reply, as that protocol has them.
    fn activate_history(
        &self,
        key: ConnKey,
        channel: &str,
        recovering: bool,
        answer: Option<HistoryAnswer>,
        id: Option<&RawValue>,
    ) -> Subscription {
        let centrifugo = self
            .conns
            .borrow()
            .get(key.0 as usize)
            .and_then(|c| c.centrifugo());
        let Some(HistoryAnswer::Position {
            top,
            epoch,
            recovery,
        }) = answer
        else {
            let (code, message) = (
                message::ErrorCode::HistoryUnavailable,
                format!("the history of {channel} did not answer; retry"),
            );
            self.send_to(key, self.error_frame(centrifugo, code, message, id));
            self.withdraw_if_unused(channel);
            return Subscription::Failed;
        };
        debug_assert!(recovery.is_some() == recovering);
        let reply = match centrifugo {
            Some(encoding) => {
                let recovered = match &recovery {
                    Some(Recovery::Recovered(publications)) => Some(&publications[..]),
                    _ => None,
                };
                let id = centrifugo::command_id(id);
                centrifugo::history_subscribed(
                    encoding,
                    id,
                    top,
                    epoch.as_str(),
                    recovering,
                    recovered,
                )
            }
            None => {
                let recovered = match recovery {
                    Some(Recovery::Recovered(publications)) => {
                        self.deliver_publications(key, channel, &publications);
                        Some(true)
                    }
                    Some(Recovery::NotRecovered) => Some(false),
                    None => None,
                };
                message::position_reply("subscribed", channel, top, epoch.as_str(), recovered, id)
            }
        };
        let outcome = self.topics.borrow_mut().subscribe(channel, key);
        self.send_to(key, reply);
        match outcome {
            crate::topics::Subscribed::FirstOnShard(name)
            | crate::topics::Subscribed::Added(name) => {
                self.announce_join(key, channel);
                Subscription::Active(name)
            }
            crate::topics::Subscribed::Already => Subscription::Already,
        }
    }

    /// Queues recovered publications for `key`, each as the `message` it
    /// was when live.
    fn deliver_publications(&self, key: ConnKey, channel: &str, publications: &[Publication]) {
        let mut conns = self.conns.borrow_mut();
        let Some(conn) = conns.get_mut(key.0 as usize) else {
            return;
        };
        for p in publications {
            let frame = message::message_frame_at(channel, &p.payload, p.offset);
            self.deliver(key, conn, Frame::Own(frame));
        }
    }

    /// The home shard's side of every history question.
    pub(super) fn answer_history(&self, query: &Query) -> HistoryAnswer {
        let now = self.now_ms();
        let channel = match query {
            Query::HistoryPublish { channel, .. }
            | Query::HistorySubscribe { channel, .. }
            | Query::HistoryRead { channel, .. }
            | Query::HistoryRemove { channel } => channel,
            _ => return HistoryAnswer::Disabled,
        };
        let Some(opts) = self.history_options(channel) else {
            return HistoryAnswer::Disabled;
        };
        let mut store = self.history.borrow_mut();
        match query {
            Query::HistoryPublish { data, .. } => {
                // A copy of its own, exact-size and unshared: a clone of the
                // query's `Bytes` would turn it into a shared buffer with a
                // 32-byte refcount header, kept as long as the publication.
                let payload = Bytes::copy_from_slice(data);
                let (offset, epoch) = store.append(channel, &opts, payload, now);
                drop(store);
                let frame = message::message_frame_at(channel, data, offset);
                // From the home, as any publish: local subscribers and every
                // shard with subscribers, each link in offset order.
                self.publish(channel, frame);
                HistoryAnswer::Published { offset, epoch }
            }
            Query::HistorySubscribe { recover, .. } => {
                let limit = self.config.config.recovery_max_publications;
                let recovery = recover
                    .as_ref()
                    .map(|p| store.recover(channel, p.offset, &p.epoch, limit, now));
                let (top, epoch) = store.position(channel, &opts, now);
                HistoryAnswer::Position {
                    top,
                    epoch,
                    recovery,
                }
            }
            Query::HistoryRead {
                since,
                limit,
                reverse,
                ..
            } => {
                let limit = (*limit).min(self.config.config.history_max_limit);
                let since = since.as_ref().map(|p| (p.offset, p.epoch.as_str()));
                HistoryAnswer::Page(store.read(channel, &opts, since, limit, *reverse, now))
            }
            Query::HistoryRemove { .. } => {
                store.remove(channel, now);
                HistoryAnswer::Removed
            }
            _ => HistoryAnswer::Disabled,
        }
    }

    /// One pass of history expiry (from the ticker), and the end of history
    /// subscribes whose home has not answered in time.
    pub(super) fn expire_history(&self) {
        let now = self.now_ms();
        let late: Vec<u64> = self
            .history_waiters
            .borrow()
            .iter()
            .filter(|(_, w)| w.deadline_ms <= now)
            .map(|(req, _)| *req)
            .collect();
        for req in late {
            let waiter = self.history_waiters.borrow_mut().remove(&req);
            if let Some(waiter) = waiter {
                log::warn!("history subscribe timed out channel={}", waiter.channel);
                self.finish_history_subscribe(waiter, None);
            }
        }
        let dropped = self.history.borrow_mut().expire(now, EXPIRE_BUDGET);
        if dropped > 0 {
            log::debug!("history expired publications={dropped}");
        }
    }
}
