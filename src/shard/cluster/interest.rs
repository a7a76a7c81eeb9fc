//! Which channels the process's pub/sub link holds: a shard tells the
//! channel's home when it gains or loses its first subscriber, and the
//! home subscribes or releases the channel.

use std::rc::Rc;
use std::sync::Arc;

use crate::bus::BusMessage;
use crate::shard::{Shard, ShardId};

impl Shard {
    /// This shard gained its first subscriber (or waiter) of `channel`:
    /// tells the channel's home, which (in Redis mode) makes sure the
    /// process's pub/sub link has it, then acks.
    pub(in crate::shard) fn want_channel(self: &Rc<Self>, channel: &str) {
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
    pub(in crate::shard) fn release_channel(&self, channel: &str) {
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
    pub(in crate::shard) fn ensure_pubsub(
        self: &Rc<Self>,
        channel: Arc<str>,
        ack_to: Option<ShardId>,
    ) {
        let Some(broker) = self.broker() else {
            return;
        };
        let subscribed = broker.subscribe(&channel);
        let shard = self.clone();
        glommio::spawn_local(async move {
            let ok = match subscribed.await {
                Ok(()) => true,
                Err(e) => {
                    crate::shard::log_limited!(
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
}
