//! Live delivery of history channels at their home: in offset order,
//! gaps repaired from the Redis stream, subscribers evicted when it cannot.

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use super::Live;
use crate::broker::scripts::{ReadMode, ReadReply};
use crate::centrifugo;
use crate::error::CloseReason;
use crate::history::Epoch;
use crate::message;
use crate::redis::RedisError;
use crate::shard::{ConnKey, Query, Shard, ShardId};

/// Publications a home holds for one channel while it repairs a gap; past
/// this the channel's subscribers are sent to recover by themselves.
const HELD_MAX: usize = 10_000;

impl Shard {
    /// A history publication from the pub/sub link, at the channel's home.
    pub(super) fn on_live_publication(
        self: &Rc<Self>,
        channel: &str,
        offset: u64,
        epoch: Epoch,
        data: Bytes,
    ) {
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
    pub(super) fn repair(self: &Rc<Self>, channel: &str, from: (u64, Epoch)) {
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
    pub(super) fn evict_channel(&self, channel: &str) {
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
    pub(in crate::shard) fn evict_subscribers_local(&self, channel: &str) -> u64 {
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
}
