//! What a shard asks of Redis: publishes (and the throttle on publishing
//! clients), control messages, cluster-wide presence, history reads and
//! removal.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use super::not_clustered;
use crate::broker::envelope;
use crate::broker::scripts::{ReadMode, ReadReply};
use crate::history::Epoch;
use crate::message::Position;
use crate::redis::RedisError;
use crate::shard::{personal_channel_owner, ConnKey, Shard};

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

impl Shard {
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
    pub(in crate::shard) fn publish_in_flight(&self) -> Option<InFlight> {
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
        // Redis mode: `NODE.SHARD-SEQ`, unique across processes.
        Some(self.connection_id(seq))
    }

    /// Redis mode: adds (`present`) or removes `key` in `channel`'s
    /// cluster-wide presence (a presence namespace). Adds and removes run
    /// as tasks in the order they were made, so they reach Redis in order;
    /// one lost while Redis is down expires by itself.
    pub(in crate::shard) fn presence_to_cluster(&self, key: ConnKey, channel: &str, present: bool) {
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
    pub(in crate::shard) async fn presence_from_cluster(
        &self,
        channel: &str,
        limit: usize,
        stats: bool,
    ) -> Option<crate::shard::Presence> {
        let broker = self.broker()?;
        let ns = self.config.config.namespaces.lookup(channel)?;
        if !ns.presence {
            return None;
        }
        let reply = broker.presence_get(channel, limit, stats).await.ok()?;
        Some(crate::shard::Presence {
            truncated: !stats && reply.n_clients > reply.clients.len() as u64,
            clients: reply.clients,
            n_clients: reply.n_clients,
            n_users: reply.n_users,
        })
    }

    /// Redis mode: refreshes this shard's entries in every presence
    /// namespace channel it has subscribers of, so they outlive the ttl;
    /// every third of `--redis-presence-ttl`.
    pub(super) async fn refresh_presence_forever(self: Rc<Self>) {
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
}
