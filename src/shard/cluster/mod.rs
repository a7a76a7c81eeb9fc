//! Redis mode (`--redis`) through a shard: publishes leave for Redis and
//! come back through the channel's home shard, whose pub/sub link is the
//! process's only subscription to the channel; the home keeps each history
//! channel's last delivered offset, so it delivers in offset order, repairs
//! a gap from the Redis stream, and answers subscribes at the exact point
//! where live delivery takes over. Without `--redis` nothing here runs.
//!
//! `mod.rs` holds the state and the links' lifecycle (start, pub/sub and
//! control events, health); `commands.rs` what the shard asks of Redis
//! (publishes and their throttle, presence, history); `interest.rs` which
//! channels the pub/sub link holds; `live.rs` live delivery and gap repair
//! at a channel's home; `position.rs` the position checks (subscribes and
//! the periodic check).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use super::{Query, Shard, ShardId};
use crate::broker::envelope::{self, ChannelMessage, ControlMessage};
use crate::broker::{Broker, OnMessage};
use crate::history::Epoch;
use crate::redis::{LinkState, PubSubEvent, RedisError, RedisOptions};

mod commands;
mod interest;
mod live;
mod position;

pub(crate) use commands::Throttle;

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
}
