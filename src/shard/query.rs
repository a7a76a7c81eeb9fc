//! Questions one shard asks the others for the admin side: metrics,
//! channel lists, a disconnect by id. A [`Query`] goes out over the bus, each
//! shard answers with its own [`ShardReport`], and the asker merges them;
//! no state is shared. Broadcasts to every /ws client live here too.

use std::collections::HashMap;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::Bytes;

use super::presence::LocalPresence;
use super::streams::HistoryAnswer;
use super::{ConnKey, Outgoing, Shard, ShardId};
use crate::bus::BusMessage;
use crate::error::CloseReason;
use crate::history::HistoryStats;
use crate::latency::{self, LatencySnapshot};
use crate::message::Position;
use crate::metrics::Counters;
use crate::reactor::with_timeout;

/// How long a query waits for other shards before answering with what it
/// has (a shard that has exited during shutdown never replies).
pub(super) const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// What a shard is asked for.
#[derive(Debug, Clone)]
pub enum Query {
    /// Counters, gauges and latency; `reset_latency` starts a new interval.
    Metrics {
        /// Reset the latency histograms after reading them.
        reset_latency: bool,
    },
    /// Counters and gauges only: what /api/stats shows, without copying
    /// the latency histograms (~140 KB each).
    Stats,
    /// Local subscriber count of every channel.
    Channels,
    /// Close the connection with this sequence number (4000).
    Disconnect {
        /// The `<seq>` part of a connection id.
        seq: u64,
    },
    /// This shard's subscribers of a channel, for presence.
    Presence {
        /// Channel name.
        channel: Arc<str>,
        /// Most client objects to return.
        limit: usize,
        /// Counts and users only (presence_stats).
        stats: bool,
    },
    /// Deliver a `#<user>` message frame to the user's local connections.
    UserSend {
        /// User id.
        user: Arc<str>,
        /// The encoded frame.
        frame: Bytes,
    },
    /// Close the user's local connections (4000).
    UserDisconnect {
        /// User id.
        user: Arc<str>,
    },
    /// At a history channel's home: number, keep and fan out a publication.
    HistoryPublish {
        /// Channel name.
        channel: Arc<str>,
        /// The publication's JSON data.
        data: Bytes,
    },
    /// At a history channel's home: its position, and a recovery.
    HistorySubscribe {
        /// Channel name.
        channel: Arc<str>,
        /// Where the client's copy ends, when it recovers.
        recover: Option<Position>,
    },
    /// At a history channel's home: a page of its history.
    HistoryRead {
        /// Channel name.
        channel: Arc<str>,
        /// Only after this position.
        since: Option<Position>,
        /// Most publications.
        limit: usize,
        /// Newest first.
        reverse: bool,
    },
    /// At a history channel's home: drop it (new epoch).
    HistoryRemove {
        /// Channel name.
        channel: Arc<str>,
    },
    /// Redis mode: evict this shard's subscribers of `channel` (their
    /// history has a gap Redis no longer holds): 4010 on /ws, the
    /// unsubscribe push 2500 for Centrifugo clients.
    EvictSubscribers {
        /// Channel name.
        channel: Arc<str>,
    },
}

/// One shard's answer.
#[derive(Debug)]
pub struct ShardReport {
    /// Who answered.
    pub shard: ShardId,
    /// Counters since start.
    pub counters: Counters,
    /// Open WebSocket connections.
    pub connections: u64,
    /// Subscriptions held by local connections.
    pub subscriptions: u64,
    /// Channels with at least one local subscriber.
    pub channels: u64,
    /// Bytes waiting in local outboxes.
    pub outbox_bytes: u64,
    /// Bus messages waiting in overflow queues.
    pub bus_queued: u64,
    /// Seconds since the shard started.
    pub uptime_secs: f64,
    /// Latency since the last reset (only for `Query::Metrics`).
    pub latency: Option<Box<LatencySnapshot>>,
    /// Local subscriber count by channel (only for `Query::Channels`).
    pub channel_counts: Vec<(String, u64)>,
    /// Whether a `Query::Disconnect` found its connection.
    pub found: bool,
    /// Connections a `Query::UserSend` reached or a `Query::UserDisconnect` closed.
    pub n_user_conns: u64,
    /// The answer to a `Query::Presence` (boxed: rare and possibly large).
    pub presence: Option<Box<LocalPresence>>,
    /// The answer to a history query.
    pub history: Option<Box<HistoryAnswer>>,
    /// What this shard's history store holds.
    pub history_stats: HistoryStats,
    /// Redis mode: this shard's links, one per instance (totals only).
    pub redis_links: Vec<RedisLinkReport>,
}

/// One shard's two links to one Redis instance, for /metrics.
#[derive(Debug, Clone)]
pub struct RedisLinkReport {
    /// The instance (`host:port`, password never shown).
    pub addr: String,
    /// Both links are up.
    pub up: bool,
    /// Reconnects of both links since start.
    pub reconnects: u64,
    /// Commands answered on the command link, and their total time (µs).
    pub commands: u64,
    /// Sum of those commands' round trips, in microseconds.
    pub latency_sum_us: u64,
    /// Messages received on the pub/sub link.
    pub messages: u64,
}

/// A query sent by [`Shard::ask`]: this shard's own report, and the
/// request id of the replies still to come (None when only this shard was
/// asked).
#[derive(Debug)]
pub struct Asked {
    req: Option<u64>,
    reports: Vec<ShardReport>,
}

impl ShardReport {
    /// A report with no totals, for the answers that need none.
    pub(super) fn empty(shard: ShardId) -> ShardReport {
        ShardReport {
            shard,
            counters: Counters::default(),
            connections: 0,
            subscriptions: 0,
            channels: 0,
            outbox_bytes: 0,
            bus_queued: 0,
            uptime_secs: 0.0,
            latency: None,
            channel_counts: Vec::new(),
            found: false,
            n_user_conns: 0,
            presence: None,
            history: None,
            history_stats: HistoryStats::default(),
            redis_links: Vec::new(),
        }
    }
}

/// A query waiting for replies.
#[derive(Debug, Default)]
pub(super) struct PendingQuery {
    left: usize,
    reports: Vec<ShardReport>,
    waker: Option<Waker>,
}

impl Shard {
    /// Asks `targets` (this shard included, if listed) and returns their
    /// reports; after `QUERY_TIMEOUT`, whatever has arrived.
    pub async fn query(self: &Rc<Self>, targets: &[ShardId], query: Query) -> Vec<ShardReport> {
        let asked = self.ask(targets, query);
        self.answers(asked).await
    }

    /// The sending half of [`Shard::query`]: this shard's own answer is
    /// made and the others are asked now, synchronously, so the questions
    /// leave in the caller's order (a later bus message to the same shard
    /// is handled after them). [`Shard::answers`] waits for the replies.
    pub fn ask(&self, targets: &[ShardId], query: Query) -> Asked {
        let mut asked = Asked {
            req: None,
            reports: Vec::with_capacity(targets.len()),
        };
        if targets.contains(&self.id) {
            asked.reports.push(self.answer(&query));
        }
        let remote: Vec<ShardId> = targets.iter().copied().filter(|t| *t != self.id).collect();
        if remote.is_empty() {
            return asked;
        }
        let req = self.new_req();
        let pending = PendingQuery {
            left: remote.len(),
            ..PendingQuery::default()
        };
        self.queries.borrow_mut().insert(req, pending);
        for to in remote {
            let query = query.clone();
            self.bus.send(
                to,
                BusMessage::Query {
                    from: self.id,
                    req,
                    query,
                },
            );
        }
        asked.req = Some(req);
        asked
    }

    /// Asks shard `to` without waiting for the answer (it is dropped when
    /// it comes: no query is registered under its id).
    pub fn tell(&self, to: ShardId, query: Query) {
        if to == self.id {
            self.answer(&query);
            return;
        }
        let req = self.new_req();
        self.bus.send(
            to,
            BusMessage::Query {
                from: self.id,
                req,
                query,
            },
        );
    }

    /// A fresh request id for a query.
    pub(super) fn new_req(&self) -> u64 {
        let req = self.next_req.get();
        self.next_req.set(req + 1);
        req
    }

    /// The reports of an [`Shard::ask`], sorted by shard; after
    /// `QUERY_TIMEOUT`, whatever has arrived.
    pub async fn answers(self: &Rc<Self>, asked: Asked) -> Vec<ShardReport> {
        let Asked { req, mut reports } = asked;
        let Some(req) = req else {
            return reports;
        };
        let replies = poll_fn(|cx| {
            let mut queries = self.queries.borrow_mut();
            let Some(p) = queries.get_mut(&req) else {
                return Poll::Ready(());
            };
            if p.left == 0 {
                return Poll::Ready(());
            }
            p.waker = Some(cx.waker().clone());
            Poll::Pending
        });
        let timed_out = with_timeout(QUERY_TIMEOUT, replies).await.is_none();
        let done = self.queries.borrow_mut().remove(&req).unwrap_or_default();
        if timed_out {
            log::warn!("query timed out waiting for shards missing={}", done.left);
        }
        reports.extend(done.reports);
        reports.sort_by_key(|r| r.shard);
        reports
    }

    /// Every shard's id.
    pub fn all_shards(&self) -> Vec<ShardId> {
        (0..self.shared.n_shards)
            .map(|i| ShardId(i as u16))
            .collect()
    }

    pub(super) fn on_reply(&self, req: u64, report: ShardReport) {
        let Some(report) = self.on_history_reply(req, report) else {
            return;
        };
        let mut queries = self.queries.borrow_mut();
        let Some(p) = queries.get_mut(&req) else {
            return;
        }; // Timed out already.
        p.reports.push(report);
        p.left = p.left.saturating_sub(1);
        if p.left == 0 {
            if let Some(waker) = p.waker.take() {
                waker.wake();
            }
        }
    }

    /// This shard's answer to `query`.
    pub(super) fn answer(&self, query: &Query) -> ShardReport {
        // The totals walk every connection and channel: only the admin
        // side's reports want them, never a publish or a subscribe.
        let mut report = match query {
            Query::Metrics { .. } | Query::Stats | Query::Channels => self.report_base(),
            _ => ShardReport::empty(self.id),
        };
        match query {
            Query::Metrics { reset_latency } => {
                let mut latency = self.latency.borrow_mut();
                report.latency = Some(Box::new(latency.snapshot()));
                if *reset_latency {
                    latency.mark();
                }
            }
            Query::Stats => {}
            Query::Channels => {
                let topics = self.topics.borrow();
                report.channel_counts = topics
                    .iter()
                    .filter(|(_, c)| !c.local.is_empty())
                    .map(|(name, c)| (name.to_string(), c.local.len() as u64))
                    .collect();
            }
            Query::Disconnect { seq } => report.found = self.disconnect_local(*seq),
            Query::Presence {
                channel,
                limit,
                stats,
            } => {
                report.presence = Some(Box::new(self.presence_local(channel, *limit, *stats)));
            }
            Query::UserSend { user, frame } => {
                report.n_user_conns = self.deliver_to_user(user, frame, latency::now_ns());
            }
            Query::UserDisconnect { user } => {
                report.n_user_conns = self.disconnect_user_local(user);
            }
            Query::HistoryPublish { .. }
            | Query::HistorySubscribe { .. }
            | Query::HistoryRead { .. }
            | Query::HistoryRemove { .. } => {
                report.history = Some(Box::new(self.answer_history(query)));
            }
            Query::EvictSubscribers { channel } => {
                report.n_user_conns = self.evict_subscribers_local(channel);
            }
        }
        report
    }

    /// This shard's totals: counters, gauges (a walk of every connection
    /// and channel) and its history store's totals.
    fn report_base(&self) -> ShardReport {
        let conns = self.conns.borrow();
        let topics = self.topics.borrow();
        let (mut subscriptions, mut channels) = (0u64, 0u64);
        for (_, c) in topics.iter().filter(|(_, c)| !c.local.is_empty()) {
            subscriptions += c.local.len() as u64;
            channels += 1;
        }
        let mut counters = self.metrics.snapshot();
        counters.bus_sent = self.bus.n_sent();
        counters.redis_publish_failures = self.redis_publish_failures();
        let redis_links = self.redis_link_reports();
        let history_stats = self.history.borrow().stats();
        counters.history_evictions = history_stats.evictions;
        counters.history_channel_evictions = history_stats.channel_evictions;
        ShardReport {
            counters,
            connections: conns.len() as u64,
            subscriptions,
            channels,
            outbox_bytes: conns.iter().map(|(_, c)| c.queued_bytes() as u64).sum(),
            bus_queued: self.bus.queued() as u64,
            uptime_secs: self.now_ms() as f64 / 1000.0,
            history_stats,
            redis_links,
            ..ShardReport::empty(self.id)
        }
    }

    fn disconnect_local(&self, seq: u64) -> bool {
        let deadline = self.now_ms() + Self::ms(self.config.config.close_timeout);
        let mut conns = self.conns.borrow_mut();
        match conns.iter_mut().find(|(_, c)| c.seq == seq) {
            Some((_, conn)) => {
                conn.begin_close(CloseReason::Disconnected, deadline);
                true
            }
            None => false,
        }
    }

    /// Sends `frame` to every /ws client on every shard.
    pub fn broadcast(&self, frame: Bytes) {
        for peer in self.bus.peers() {
            self.bus.send(
                peer,
                BusMessage::Broadcast {
                    frame: frame.clone(),
                },
            );
        }
        self.broadcast_local(&frame);
    }

    /// Sends `frame` to every /ws client of this shard.
    pub(super) fn broadcast_local(&self, frame: &Bytes) {
        let mut conns = self.conns.borrow_mut();
        let mut n = 0;
        let mut out = Outgoing::shared(frame, 0);
        for (key, conn) in conns.iter_mut().filter(|(_, c)| c.is_pubsub()) {
            let Some(frame) = self.frame_for(&mut out, conn) else {
                continue;
            };
            self.deliver(ConnKey(key as u32), conn, frame);
            n += 1;
        }
        drop(conns);
        self.metrics.bump(|c| c.delivered += n);
    }
}

/// Merges reports' channel counts into (channel, subscribers), by name.
pub fn merge_channels(reports: &[ShardReport]) -> Vec<(String, u64)> {
    let mut merged: HashMap<&str, u64> = HashMap::new();
    for r in reports {
        for (name, n) in &r.channel_counts {
            *merged.entry(name).or_default() += n;
        }
    }
    let mut out: Vec<(String, u64)> = merged
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    out.sort();
    out
}
