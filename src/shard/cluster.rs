//! Redis mode (`--redis`) through a shard: publishes leave for Redis and
//! come back through the channel's home shard, whose pub/sub link is the
//! process's only subscription to the channel; the home keeps each history
//! channel's last delivered offset, so it delivers in offset order, repairs
//! a gap from the Redis stream, and answers subscribes at the exact point
//! where live delivery takes over. Without `--redis` nothing here runs.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::streams::HistoryAnswer;
use super::{personal_channel_owner, ConnKey, Query, Shard, ShardId, ShardReport};
use crate::broker::envelope::{self, ChannelMessage, ControlMessage};
use crate::broker::scripts::{ReadMode, ReadReply};
use crate::broker::{Broker, OnMessage};
use crate::bus::BusMessage;
use crate::centrifugo;
use crate::error::CloseReason;
use crate::history::{Epoch, Recovery};
use crate::message::{self, Position};
use crate::redis::{LinkState, PubSubEvent, RedisError, RedisOptions};

/// Publications a home holds for one channel while it repairs a gap; past
/// this the channel's subscribers are sent to recover by themselves.
const HELD_MAX: usize = 10_000;

/// Tries of a subscribe's position read that live delivery overtook.
const POSITION_TRIES: u32 = 6;

/// The error of a Redis-mode call made without `--redis` (callers check
/// [`Shard::clustered`] first; this answers instead of panicking if one
/// does not).
fn not_clustered() -> RedisError {
    RedisError::Unavailable("not in Redis mode (no --redis)".into())
}

/// What kind of pub/sub event arrived (the event borrows its message).
#[derive(Clone, Copy)]
enum EventKind {
    Message,
    Up,
    Down,
}

/// Publishes this shard has sent to Redis and not yet had answered, past
/// which its /ws connections stop reading until half have been answered:
/// a client publishing faster than Redis takes it is slowed down, like a
/// congested bus slows it (a link refuses past `max_in_flight`, and a
/// publish without an `id` has nobody to tell).
const THROTTLE_HIGH: usize = 4096;

/// Publishes in flight to Redis from one shard, and the connections waiting
/// for them to fall to half of [`THROTTLE_HIGH`].
#[derive(Default)]
pub(crate) struct Throttle {
    in_flight: Cell<usize>,
    waiters: RefCell<Vec<std::task::Waker>>,
}

/// One publish in flight ([`Throttle`]); answered (or abandoned) when dropped.
pub(crate) struct InFlight(Rc<Throttle>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let t = &self.0;
        t.in_flight.set(t.in_flight.get() - 1);
        if t.in_flight.get() <= THROTTLE_HIGH / 2 {
            for waker in t.waiters.borrow_mut().drain(..) {
                waker.wake();
            }
        }
    }
}

/// A shard's Redis-mode state.
pub(crate) struct Cluster {
    broker: Broker,
    /// History channels homed here that have subscribers in this process:
    /// what live delivery has reached.
    live: RefCell<HashMap<Arc<str>, Live>>,
    /// Publishes without a waiting caller that failed (shared with their
    /// tasks, which hold no shard).
    publish_failures: Rc<Cell<u64>>,
    /// Publishes in flight, for backpressure on publishing clients.
    throttle: Rc<Throttle>,
}

/// Where live delivery of one history channel stands at its home.
struct Live {
    offset: u64,
    epoch: Epoch,
    /// While a gap is repaired: what arrived meanwhile, in arrival order.
    held: Option<Vec<(u64, Epoch, Bytes)>>,
}

impl Shard {
    /// Starts this shard's Redis links when `--redis` is given.
    pub(crate) fn start_cluster(self: &Rc<Self>) {
        let cfg = &self.config.config;
        if cfg.redis.is_empty() {
            return;
        }
        let weak = Rc::downgrade(self);
        let on: OnMessage = Rc::new(move |instance, event| {
            if let Some(shard) = weak.upgrade() {
                shard.on_pubsub(instance, event);
            }
        });
        let opts = RedisOptions {
            command_timeout: cfg.redis_timeout,
            connect_timeout: cfg.redis_timeout,
            ..RedisOptions::default()
        };
        let seed = std::collections::hash_map::RandomState::new().hash_one(self.id.0);
        let name = format!("corecast-{}-{}", std::process::id(), self.id.0);
        let broker = Broker::start(&cfg.redis, &cfg.redis_prefix, &opts, &name, seed, on);
        let cluster = Cluster {
            broker,
            live: RefCell::new(HashMap::new()),
            publish_failures: Rc::default(),
            throttle: Rc::default(),
        };
        if self.cluster.set(cluster).is_err() {
            return; // Started already.
        }
        if self.id == ShardId(0) {
            self.listen_control();
        }
        glommio::spawn_local(self.clone().check_positions_forever()).detach();
        glommio::spawn_local(self.clone().refresh_presence_forever()).detach();
    }

    /// True in Redis mode.
    pub fn clustered(&self) -> bool {
        self.cluster.get().is_some()
    }

    fn broker(&self) -> Option<&Broker> {
        self.cluster.get().map(|c| &c.broker)
    }

    /// Shard 0 of every process listens to the control channel.
    fn listen_control(self: &Rc<Self>) {
        let Some(broker) = self.broker() else {
            return;
        };
        let subscribed = broker.subscribe_control();
        glommio::spawn_local(async move {
            if let Err(e) = subscribed.await {
                // Retried when the link comes up (see `on_pubsub`).
                log::debug!("control channel not subscribed yet: {e}");
            }
        })
        .detach();
    }

    /// Publishes an encoded frame through Redis: a channel's frame to its
    /// pub/sub channel, a personal channel's to the control channel. The
    /// command is queued now, so one caller's publishes keep their order.
    pub fn publish_to_cluster(
        &self,
        channel: &str,
        frame: Bytes,
    ) -> impl std::future::Future<Output = Result<(), RedisError>> + 'static {
        self.metrics.bump(|c| c.published += 1);
        let in_flight = self.publish_in_flight();
        let sent: std::pin::Pin<Box<dyn std::future::Future<Output = _>>> =
            match (self.broker(), personal_channel_owner(channel)) {
                (None, _) => Box::pin(std::future::ready(Err(not_clustered()))),
                (Some(broker), Some(user)) => {
                    Box::pin(broker.publish_control(envelope::user_send(user, &frame)))
                }
                (Some(broker), None) => Box::pin(broker.publish_frame(channel, &frame)),
            };
        async move {
            let answer = sent.await;
            drop(in_flight);
            answer
        }
    }

    /// Counts one publish in flight to Redis until the guard is dropped.
    pub(super) fn publish_in_flight(&self) -> Option<InFlight> {
        let throttle = &self.cluster.get()?.throttle;
        throttle.in_flight.set(throttle.in_flight.get() + 1);
        Some(InFlight(throttle.clone()))
    }

    /// Redis mode: true while this shard has so many publishes in flight
    /// to Redis that its /ws connections should stop reading.
    pub(crate) fn redis_congested(&self) -> bool {
        self.cluster
            .get()
            .is_some_and(|c| c.throttle.in_flight.get() >= THROTTLE_HIGH)
    }

    /// Registers a connection to be woken when [`Shard::redis_congested`]
    /// has cleared.
    pub(crate) fn wait_redis_uncongested(&self, waker: &std::task::Waker) {
        if let Some(c) = self.cluster.get() {
            c.throttle.waiters.borrow_mut().push(waker.clone());
        }
    }

    /// [`Shard::publish_to_cluster`] for a caller that does not wait: a
    /// failure is counted and logged (rate-limited).
    pub fn publish_to_cluster_unacked(&self, channel: &str, frame: Bytes) {
        let Some(cluster) = self.cluster.get() else {
            return;
        };
        let sent = self.publish_to_cluster(channel, frame);
        let failures = cluster.publish_failures.clone();
        let channel = channel.to_string();
        glommio::spawn_local(async move {
            if let Err(e) = sent.await {
                failures.set(failures.get() + 1);
                // The link's own warning says Redis is down; this is per message.
                log::debug!("redis publish failed channel={channel} err={e}");
            }
        })
        .detach();
    }

    /// This connection's field in a channel's cluster-wide presence.
    fn presence_field(&self, key: ConnKey) -> Option<String> {
        let seq = self.conns.borrow().get(key.0 as usize)?.seq;
        Some(format!("{}.{}-{seq}", self.shared.node_id, self.id.0))
    }

    /// Redis mode: adds (`present`) or removes `key` in `channel`'s
    /// cluster-wide presence (a presence namespace). Adds and removes run
    /// as tasks in the order they were made, so they reach Redis in order;
    /// one lost while Redis is down expires by itself.
    pub(super) fn presence_to_cluster(&self, key: ConnKey, channel: &str, present: bool) {
        let (Some(broker), Some(field)) = (self.broker(), self.presence_field(key)) else {
            return;
        };
        let done: std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), RedisError>>>> =
            if present {
                let Some(info) = self.client_info(key) else {
                    return;
                };
                let ttl = Self::ms(self.config.config.redis_presence_ttl);
                Box::pin(broker.presence_add(channel, ttl, vec![(field, info)]))
            } else {
                Box::pin(broker.presence_remove(channel, &field))
            };
        glommio::spawn_local(async move {
            if let Err(e) = done.await {
                log::debug!("redis presence update failed: {e}");
            }
        })
        .detach();
    }

    /// Redis mode, presence namespaces: the cluster-wide presence of
    /// `channel` (None: not Redis mode, or not a presence namespace, or
    /// Redis did not answer, and the caller answers from this process).
    pub(super) async fn presence_from_cluster(
        &self,
        channel: &str,
        limit: usize,
        stats: bool,
    ) -> Option<super::Presence> {
        let broker = self.broker()?;
        let ns = self.config.config.namespaces.lookup(channel)?;
        if !ns.presence {
            return None;
        }
        let reply = broker.presence_get(channel, limit, stats).await.ok()?;
        Some(super::Presence {
            truncated: !stats && reply.n_clients > reply.clients.len() as u64,
            clients: reply.clients,
            n_clients: reply.n_clients,
            n_users: reply.n_users,
        })
    }

    /// Redis mode: refreshes this shard's entries in every presence
    /// namespace channel it has subscribers of, so they outlive the ttl;
    /// every third of `--redis-presence-ttl`.
    async fn refresh_presence_forever(self: Rc<Self>) {
        let ttl = self.config.config.redis_presence_ttl;
        let every = ttl / 3;
        loop {
            if crate::reactor::with_timeout(every, self.shutdown.wait())
                .await
                .is_some()
            {
                return;
            }
            let Some(broker) = self.broker() else {
                return;
            };
            let channels: Vec<(Arc<str>, Vec<ConnKey>)> = self
                .topics
                .borrow()
                .iter()
                .filter(|(name, c)| {
                    !c.local.is_empty()
                        && self
                            .config
                            .config
                            .namespaces
                            .lookup(name)
                            .is_some_and(|ns| ns.presence)
                })
                .map(|(name, c)| (name.clone(), c.local.iter().collect()))
                .collect();
            for (channel, keys) in channels {
                for chunk in keys.chunks(500) {
                    let entries: Vec<(String, String)> = chunk
                        .iter()
                        .filter_map(|k| Some((self.presence_field(*k)?, self.client_info(*k)?)))
                        .collect();
                    let added = broker.presence_add(&channel, Self::ms(ttl), entries);
                    glommio::spawn_local(async move {
                        let _ = added.await;
                    })
                    .detach();
                }
            }
        }
    }

    /// Records in [`Shared`](super::Shared) whether all of this shard's
    /// links are up (for /health; called on link events and ticker passes).
    pub(super) fn note_redis_state(&self) {
        let Some(broker) = self.broker() else {
            return;
        };
        let up = broker
            .link_states()
            .iter()
            .all(|(_, c, p)| *c == LinkState::Up && *p == LinkState::Up);
        if let Some(flag) = self.shared.redis_up.get(self.id.0 as usize) {
            flag.store(up, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Redis mode: `{"up":B,"instances":[{"addr","command","pubsub","reconnects"}]}`
    /// for this shard's links; None otherwise.
    pub fn redis_health(&self) -> Option<serde_json::Value> {
        let broker = self.broker()?;
        let name = |state: LinkState| match state {
            LinkState::Up => "up",
            LinkState::Connecting => "connecting",
            LinkState::Down => "down",
        };
        // Up only when every shard's links are (each records its own).
        let mut up = self
            .shared
            .redis_up
            .iter()
            .all(|f| f.load(std::sync::atomic::Ordering::Relaxed));
        let instances: Vec<serde_json::Value> = broker
            .link_states()
            .into_iter()
            .zip(broker.command_links().iter().zip(broker.pubsub_links()))
            .map(|((addr, command, pubsub), (c, p))| {
                up &= command == LinkState::Up && pubsub == LinkState::Up;
                serde_json::json!({
                    "addr": addr,
                    "command": name(command),
                    "pubsub": name(pubsub),
                    "reconnects": c.stats().reconnects + p.stats().reconnects,
                })
            })
            .collect();
        Some(serde_json::json!({ "up": up, "instances": instances }))
    }

    /// This shard's links, per instance, for /metrics (empty without Redis).
    pub(super) fn redis_link_reports(&self) -> Vec<super::RedisLinkReport> {
        let Some(broker) = self.broker() else {
            return Vec::new();
        };
        broker
            .link_states()
            .into_iter()
            .zip(broker.command_links().iter().zip(broker.pubsub_links()))
            .map(|((addr, command, pubsub), (c, p))| {
                let (cs, ps) = (c.stats(), p.stats());
                super::RedisLinkReport {
                    addr,
                    up: command == LinkState::Up && pubsub == LinkState::Up,
                    reconnects: cs.reconnects + ps.reconnects,
                    commands: cs.latency_count,
                    latency_sum_us: cs.latency_sum_us,
                    messages: ps.messages,
                }
            })
            .collect()
    }

    /// Publishes without a waiting caller that Redis did not take.
    pub(super) fn redis_publish_failures(&self) -> u64 {
        self.cluster.get().map_or(0, |c| c.publish_failures.get())
    }

    /// Sends a control message (user send, user disconnect, broadcast) to
    /// every process.
    pub fn publish_control(
        &self,
        payload: Bytes,
    ) -> impl std::future::Future<Output = Result<(), RedisError>> + 'static {
        let sent: std::pin::Pin<Box<dyn std::future::Future<Output = _>>> = match self.broker() {
            Some(broker) => Box::pin(broker.publish_control(payload)),
            None => Box::pin(std::future::ready(Err(not_clustered()))),
        };
        sent
    }

    /// Publishes to a history channel through the Redis script: numbered,
    /// stored and published in one step. No hop to the home.
    pub async fn publish_history_to_cluster(
        self: &Rc<Self>,
        channel: &str,
        data: Bytes,
    ) -> Result<(u64, Epoch), RedisError> {
        self.metrics.bump(|c| c.published += 1);
        let opts = self
            .history_options(channel)
            .ok_or_else(|| RedisError::Protocol(format!("{channel} keeps no history")))?;
        let broker = self.broker().ok_or_else(not_clustered)?;
        broker.publish_history(channel, &data, &opts).await
    }

    /// A history read from the Redis stream (no hop to the home).
    pub async fn read_history_from_cluster(
        self: &Rc<Self>,
        channel: &str,
        since: Option<Position>,
        limit: usize,
        reverse: bool,
    ) -> Option<Result<crate::history::HistoryPage, crate::history::HistoryError>> {
        let opts = self.history_options(channel)?;
        let broker = self.broker()?;
        let limit = limit.min(self.config.config.history_max_limit);
        let since = since.as_ref().map(|p| (p.offset, p.epoch.as_str()));
        let mode = ReadMode::Read {
            since,
            limit,
            reverse,
        };
        broker
            .read(channel, &opts, mode)
            .await
            .ok()
            .map(ReadReply::page)
    }

    /// Drops a history channel's stream and position in Redis.
    pub async fn remove_history_from_cluster(self: &Rc<Self>, channel: &str) -> bool {
        match self.broker() {
            Some(broker) => broker.remove_history(channel).await.is_ok(),
            None => false,
        }
    }

    /// This shard gained its first subscriber (or waiter) of `channel`:
    /// tells the channel's home, which (in Redis mode) makes sure the
    /// process's pub/sub link has it, then acks.
    pub(super) fn want_channel(self: &Rc<Self>, channel: &str) {
        let home = self.home_of(channel);
        if home == self.id {
            if self.clustered() {
                self.ensure_pubsub(Arc::from(channel), None);
            }
        } else {
            self.bus.send(
                home,
                BusMessage::InterestAdded {
                    channel: Arc::from(channel),
                    from: self.id,
                },
            );
        }
    }

    /// This shard lost its last subscriber of `channel`.
    pub(super) fn release_channel(&self, channel: &str) {
        let home = self.home_of(channel);
        if home == self.id {
            self.release_if_unused(channel);
        } else {
            self.bus.send(
                home,
                BusMessage::InterestRemoved {
                    channel: Arc::from(channel),
                    from: self.id,
                },
            );
        }
    }

    /// At the home: ends the pub/sub subscription when no shard of the
    /// process subscribes or waits any more.
    fn release_if_unused(&self, channel: &str) {
        let unused = self.topics.borrow().get(channel).is_none()
            && !self.history_pending(channel)
            && !self.pending.borrow().contains_key(channel);
        if let (true, Some(cluster)) = (unused, self.cluster.get()) {
            cluster.broker.unsubscribe(channel);
            cluster.live.borrow_mut().remove(channel);
        }
    }

    /// At the home: subscribes the pub/sub link to `channel` and, once Redis
    /// confirmed, acks shard `ack_to` (or this shard's own waiters).
    pub(super) fn ensure_pubsub(self: &Rc<Self>, channel: Arc<str>, ack_to: Option<ShardId>) {
        let Some(broker) = self.broker() else {
            return;
        };
        let subscribed = broker.subscribe(&channel);
        let shard = self.clone();
        glommio::spawn_local(async move {
            let ok = match subscribed.await {
                Ok(()) => true,
                Err(e) => {
                    super::log_limited!(
                        shard,
                        log::Level::Warn,
                        "redis subscribe failed channel={channel} err={e}"
                    );
                    false
                }
            };
            match ack_to {
                Some(to) => {
                    if !ok {
                        shard.topics.borrow_mut().set_remote(&channel, to, false);
                        shard.release_if_unused(&channel);
                    }
                    let from = shard.id;
                    shard
                        .bus
                        .send(to, BusMessage::InterestAck { channel, from, ok });
                }
                None => shard.on_interest_ack(&channel, ok),
            }
        })
        .detach();
    }

    /// At the home, in Redis mode: answers a history subscribe once the
    /// pub/sub link has the channel, at the position live delivery has
    /// reached (see [`Shard::position_for_subscribe`]).
    pub(super) fn answer_history_from_cluster(
        self: &Rc<Self>,
        from: ShardId,
        req: u64,
        query: Query,
    ) {
        let shard = self.clone();
        glommio::spawn_local(async move {
            let answer = match query {
                Query::HistorySubscribe { channel, recover } => {
                    shard
                        .position_for_subscribe(&channel, recover.as_ref())
                        .await
                }
                _ => HistoryAnswer::Disabled,
            };
            let mut report = ShardReport::empty(shard.id);
            report.history = Some(Box::new(answer));
            if from == shard.id {
                shard.on_reply(req, report);
            } else {
                shard.bus.send(
                    from,
                    BusMessage::Reply {
                        req,
                        report: Box::new(report),
                    },
                );
            }
        })
        .detach();
    }

    /// The position (and recovery) for a history subscribe. The read runs
    /// after the pub/sub subscription is confirmed, so every publication
    /// after the read's top arrives live; it is then cut to what live
    /// delivery has reached (publications in flight come live), or read
    /// again when live delivery has passed it. The caller answers in the
    /// same step as this returns, before any later publication is handled.
    async fn position_for_subscribe(
        &self,
        channel: &str,
        recover: Option<&Position>,
    ) -> HistoryAnswer {
        let (Some(opts), Some(cluster)) = (self.history_options(channel), self.cluster.get())
        else {
            return HistoryAnswer::Disabled;
        };
        if cluster.broker.subscribe(channel).await.is_err() {
            return HistoryAnswer::Disabled;
        }
        let limit = self.config.config.recovery_max_publications;
        for attempt in 0..POSITION_TRIES {
            if attempt > 0 {
                // Live delivery is a few publications ahead of or behind the
                // read; both settle within a round trip to Redis.
                glommio::timer::sleep(Duration::from_millis(1 << attempt)).await;
            }
            let mode = match recover {
                Some(p) => ReadMode::Recover {
                    offset: p.offset,
                    epoch: &p.epoch,
                    limit,
                },
                None => ReadMode::Position,
            };
            let Ok(reply) = cluster.broker.read(channel, &opts, mode).await else {
                return HistoryAnswer::Disabled;
            };
            let mut live = cluster.live.borrow_mut();
            let top = match live.get(channel) {
                None => {
                    let entry = Live {
                        offset: reply.top,
                        epoch: reply.epoch,
                        held: None,
                    };
                    live.insert(Arc::from(channel), entry);
                    reply.top
                }
                Some(l) if l.held.is_some() => continue,
                Some(l) if l.epoch != reply.epoch => {
                    // Redis lost the history: those who had the old one must
                    // start over; this subscriber starts at the new one.
                    live.remove(channel);
                    drop(live);
                    self.evict_channel(channel);
                    continue;
                }
                Some(l) if l.offset > reply.top => continue,
                // A client ahead of this process's live delivery (it came from
                // a process further along): wait for live to catch up.
                Some(l)
                    if recover
                        .is_some_and(|p| l.epoch.matches(&p.epoch) && p.offset > l.offset) =>
                {
                    continue
                }
                Some(l) => l.offset,
            };
            let epoch = reply.epoch;
            let recovery = match (recover, reply.recovery()) {
                (None, _) => None,
                (Some(_), Recovery::Recovered(mut publications)) => {
                    publications.retain(|p| p.offset <= top);
                    Some(Recovery::Recovered(publications))
                }
                (Some(_), Recovery::NotRecovered) => Some(Recovery::NotRecovered),
            };
            return HistoryAnswer::Position {
                top,
                epoch,
                recovery,
            };
        }
        HistoryAnswer::Disabled
    }

    /// One event of one of this shard's pub/sub links.
    fn on_pubsub(self: &Rc<Self>, instance: usize, event: PubSubEvent<'_>) {
        let Some(cluster) = self.cluster.get() else {
            return;
        };
        let event_kind = match &event {
            PubSubEvent::Message { .. } => EventKind::Message,
            PubSubEvent::Up => EventKind::Up,
            PubSubEvent::Down => EventKind::Down,
        };
        match event {
            PubSubEvent::Message { channel, payload } => {
                self.metrics.bump(|c| c.redis_received += 1);
                let keys = cluster.broker.keys();
                if keys.is_control(channel) {
                    return self.on_control(&payload);
                }
                let Some(name) = keys.channel_of(channel) else {
                    return;
                };
                match envelope::parse_channel(&payload) {
                    Ok(ChannelMessage::Frame(frame)) => {
                        self.fan_out_channel(name, frame);
                    }
                    Ok(ChannelMessage::Publication {
                        offset,
                        epoch,
                        data,
                    }) => self.on_live_publication(name, offset, epoch, data),
                    Err(e) => {
                        self.metrics.bump(|c| c.redis_dropped += 1);
                        super::log_limited!(
                            self,
                            log::Level::Warn,
                            "redis message dropped channel={name} err={e}"
                        );
                    }
                }
            }
            PubSubEvent::Up => {
                if instance == 0 && self.id == ShardId(0) {
                    self.listen_control();
                }
                // Publications sent while the link was down are in the
                // streams only: look for gaps now.
                self.check_positions();
            }
            PubSubEvent::Down => {}
        }
        if matches!(event_kind, EventKind::Up | EventKind::Down) {
            self.note_redis_state();
        }
    }

    fn on_control(self: &Rc<Self>, payload: &Bytes) {
        match envelope::parse_control(payload) {
            Ok(ControlMessage::UserSend { user, frame }) => {
                let channel = format!("#{user}");
                self.publish_to_user(&channel, &user, frame);
            }
            Ok(ControlMessage::UserDisconnect { user }) => {
                let user: Arc<str> = Arc::from(user.as_str());
                self.disconnect_user_local(&user);
                for peer in self.bus.peers() {
                    self.tell(peer, Query::UserDisconnect { user: user.clone() });
                }
            }
            Ok(ControlMessage::Broadcast { frame }) => self.broadcast(frame),
            Err(e) => {
                self.metrics.bump(|c| c.redis_dropped += 1);
                super::log_limited!(
                    self,
                    log::Level::Warn,
                    "redis control message dropped err={e}"
                );
            }
        }
    }

    /// A history publication from the pub/sub link, at the channel's home.
    fn on_live_publication(self: &Rc<Self>, channel: &str, offset: u64, epoch: Epoch, data: Bytes) {
        let Some(cluster) = self.cluster.get() else {
            return;
        };
        let mut live = cluster.live.borrow_mut();
        let Some(l) = live.get_mut(channel) else {
            // Nobody here has a position yet: this one sets it.
            let entry = Live {
                offset,
                epoch,
                held: None,
            };
            live.insert(Arc::from(channel), entry);
            drop(live);
            return self.deliver_publication(channel, offset, &data);
        };
        if let Some(held) = &mut l.held {
            if held.len() < HELD_MAX {
                held.push((offset, epoch, data));
            }
            return;
        }
        if l.epoch == epoch && offset <= l.offset {
            return; // Delivered already (by a repair).
        }
        if l.epoch == epoch && offset == l.offset + 1 {
            l.offset = offset;
            drop(live);
            return self.deliver_publication(channel, offset, &data);
        }
        // A gap (a publication lost while a link was down) or a new epoch.
        let from = (l.offset, l.epoch);
        l.held = Some(vec![(offset, epoch, data)]);
        drop(live);
        self.repair(channel, from);
    }

    /// Encodes a history publication once and fans it out from the home.
    fn deliver_publication(&self, channel: &str, offset: u64, data: &[u8]) {
        let frame = message::message_frame_at(channel, data, offset);
        self.fan_out_channel(channel, frame);
    }

    /// Reads what live delivery missed after `from` and delivers it, then
    /// what arrived meanwhile; when the stream no longer has it, sends the
    /// channel's subscribers to recover by themselves.
    fn repair(self: &Rc<Self>, channel: &str, from: (u64, Epoch)) {
        let Some(opts) = self.history_options(channel) else {
            return;
        };
        self.metrics.bump(|c| c.redis_gap_repairs += 1);
        let shard = self.clone();
        let channel: Arc<str> = Arc::from(channel);
        glommio::spawn_local(async move {
            let Some(broker) = shard.broker() else {
                return;
            };
            let limit = shard.config.config.recovery_max_publications;
            let mode = ReadMode::Recover {
                offset: from.0,
                epoch: from.1.as_str(),
                limit,
            };
            let reply = broker.read(&channel, &opts, mode).await;
            shard.finish_repair(&channel, reply);
        })
        .detach();
    }

    fn finish_repair(self: &Rc<Self>, channel: &str, reply: Result<ReadReply, RedisError>) {
        let Some(cluster) = self.cluster.get() else {
            return;
        };
        let mut live = cluster.live.borrow_mut();
        let Some(l) = live.get_mut(channel) else {
            return; // Nobody subscribes any more.
        };
        let held = l.held.take().unwrap_or_default();
        let mut out = Vec::new();
        let repaired = match reply {
            Ok(r) if r.flag == 1 && r.epoch == l.epoch => {
                for p in r.publications {
                    if p.offset > l.offset {
                        l.offset = p.offset;
                        out.push((p.offset, p.payload));
                    }
                }
                true
            }
            _ => false,
        };
        if !repaired {
            log::warn!(
                "history gap not repairable channel={channel} offset={} epoch={}: subscribers must recover",
                l.offset,
                l.epoch
            );
            // Start over from the newest publication held.
            match held.last() {
                Some(&(offset, epoch, _)) => {
                    l.offset = offset;
                    l.epoch = epoch;
                }
                None => {
                    live.remove(channel);
                }
            }
            drop(live);
            return self.evict_channel(channel);
        }
        let mut rest = held.into_iter();
        let mut gap = None;
        for (offset, epoch, data) in rest.by_ref() {
            if epoch == l.epoch && offset <= l.offset {
                continue;
            }
            if epoch == l.epoch && offset == l.offset + 1 {
                l.offset = offset;
                out.push((offset, data));
                continue;
            }
            gap = Some((offset, epoch, data));
            break;
        }
        let again = gap.map(|first| {
            let mut held = vec![first];
            held.extend(rest);
            l.held = Some(held);
            (l.offset, l.epoch)
        });
        drop(live);
        for (offset, data) in out {
            self.deliver_publication(channel, offset, &data);
        }
        if let Some(from) = again {
            self.repair(channel, from);
        }
    }

    /// Evicts every subscriber of `channel` in this process: they missed
    /// publications that are no longer in the stream, so they must recover
    /// (and be told `recovered:false`) rather than go on with a silent gap
    /// (see [`Shard::evict_subscribers_local`]).
    fn evict_channel(&self, channel: &str) {
        self.metrics.bump(|c| c.redis_evictions += 1);
        let channel: Arc<str> = Arc::from(channel);
        self.evict_subscribers_local(&channel);
        let remote: Vec<ShardId> = self
            .topics
            .borrow()
            .get(&channel)
            .map(|c| c.remote.iter().collect())
            .unwrap_or_default();
        for shard in remote {
            self.tell(
                shard,
                Query::EvictSubscribers {
                    channel: channel.clone(),
                },
            );
        }
    }

    /// Evicts this shard's subscribers of `channel`: a Centrifugo client
    /// loses just that subscription, with the unsubscribe push 2500
    /// "insufficient state" (its SDK subscribes again and recovers, on the
    /// same connection, as with Centrifugo); a /ws client is closed with
    /// 4010 (its protocol has no server-side unsubscribe). Returns how many.
    pub(super) fn evict_subscribers_local(&self, channel: &str) -> u64 {
        let keys: Vec<_> = self
            .topics
            .borrow()
            .get(channel)
            .map(|c| c.local.iter().collect())
            .unwrap_or_default();
        for key in &keys {
            if !self.push_unsubscribe(*key, channel, centrifugo::UNSUBSCRIBE_INSUFFICIENT_STATE) {
                self.close(*key, CloseReason::InsufficientState);
            }
        }
        keys.len() as u64
    }

    /// Ends connection `key`'s subscription to `channel` from the server
    /// side with Centrifugo's unsubscribe push `(code, reason)`. False, with
    /// nothing done, for a /ws client, a closing connection, or one whose
    /// channel list is out of the table (in the middle of its poll).
    fn push_unsubscribe(&self, key: ConnKey, channel: &str, why: (u32, &str)) -> bool {
        let frame = {
            let mut conns = self.conns.borrow_mut();
            let Some(conn) = conns.get_mut(key.0 as usize) else {
                return false;
            };
            let Some(encoding) = conn.centrifugo() else {
                return false;
            };
            if conn.is_closing() || !conn.forget_channel(channel) {
                return false;
            }
            centrifugo::unsubscribe_push(encoding, channel, why)
        };
        self.unsubscribe(key, channel);
        self.send_to(key, frame);
        true
    }

    /// Compares every history channel homed here with its stream's top,
    /// and repairs what live delivery missed.
    fn check_positions(self: &Rc<Self>) {
        let Some(cluster) = self.cluster.get() else {
            return;
        };
        let channels: Vec<Arc<str>> = cluster
            .live
            .borrow()
            .iter()
            .filter(|(_, l)| l.held.is_none())
            .map(|(name, _)| name.clone())
            .collect();
        for channel in channels {
            let Some(opts) = self.history_options(&channel) else {
                continue;
            };
            let shard = self.clone();
            glommio::spawn_local(async move {
                let Some(broker) = shard.broker() else {
                    return;
                };
                if let Ok(reply) = broker.read(&channel, &opts, ReadMode::Position).await {
                    shard.on_position(&channel, reply.top, reply.epoch);
                }
            })
            .detach();
        }
    }

    fn on_position(self: &Rc<Self>, channel: &str, top: u64, epoch: Epoch) {
        let Some(cluster) = self.cluster.get() else {
            return;
        };
        let mut live = cluster.live.borrow_mut();
        let Some(l) = live.get_mut(channel) else {
            return;
        };
        if l.held.is_some() || (l.epoch == epoch && top <= l.offset) {
            return;
        }
        let from = (l.offset, l.epoch);
        l.held = Some(Vec::new());
        drop(live);
        self.repair(channel, from);
    }

    /// Every `--redis-position-check`, [`Shard::check_positions`]: catches
    /// a publication whose pub/sub copy was lost while nothing else came
    /// after it on the channel.
    async fn check_positions_forever(self: Rc<Self>) {
        let every = self.config.config.redis_position_check;
        if every.is_zero() {
            return;
        }
        loop {
            if crate::reactor::with_timeout(every, self.shutdown.wait())
                .await
                .is_some()
            {
                return;
            }
            self.check_positions();
        }
    }
}
