//! Positions: a history subscribe answered at the point where live
//! delivery takes over, and the periodic check of each channel's stream top.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::Live;
use crate::broker::scripts::ReadMode;
use crate::bus::BusMessage;
use crate::history::{Epoch, Recovery};
use crate::message::Position;
use crate::shard::streams::HistoryAnswer;
use crate::shard::{Query, Shard, ShardId, ShardReport};

/// Tries of a subscribe's position read that live delivery overtook.
const POSITION_TRIES: u32 = 6;

impl Shard {
    /// At the home, in Redis mode: answers a history subscribe once the
    /// pub/sub link has the channel, at the position live delivery has
    /// reached (see [`Shard::position_for_subscribe`]).
    pub(in crate::shard) fn answer_history_from_cluster(
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

    /// Compares every history channel homed here with its stream's top,
    /// and repairs what live delivery missed.
    pub(super) fn check_positions(self: &Rc<Self>) {
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
    pub(super) async fn check_positions_forever(self: Rc<Self>) {
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
