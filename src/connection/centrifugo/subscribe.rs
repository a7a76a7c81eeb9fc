//! Centrifugo's `subscribe` and `history`: joining a channel (with
//! recovery from a position) and reading its stream.

use std::rc::Rc;

use super::raw_id;
use crate::centrifugo::proto::{self, HistoryRequest, Reply, SubscribeRequest};
use crate::centrifugo::{self, error_code, Encoding};
use crate::connection::session::Session;
use crate::message::{self, Position};
use crate::shard::{Access, Shard};

impl Session {
    pub(super) fn cf_subscribe(
        &mut self,
        shard: &Rc<Shard>,
        enc: Encoding,
        id: u32,
        req: SubscribeRequest,
    ) -> bool {
        let channel = req.channel;
        if let Err(e) = message::validate_channel(&channel) {
            self.cf_error(shard, enc, id, error_code::BAD_REQUEST, e, false);
            return true;
        }
        if !req.token.is_empty() {
            let message = "subscription tokens are not supported; grant channels in the \
                           connection token's \"channels\" claim"
                .to_string();
            self.cf_error(shard, enc, id, error_code::NOT_AVAILABLE, message, false);
            return true;
        }
        if self.channels.contains(&channel) {
            if shard.is_subscribed(self.key, &channel) {
                let message = format!("already subscribed to {channel}");
                self.cf_error(
                    shard,
                    enc,
                    id,
                    error_code::ALREADY_SUBSCRIBED,
                    message,
                    false,
                );
                return true;
            }
            self.channels.remove(&channel); // An earlier subscribe of it failed while it waited.
        }
        if let Err((code, message)) = shard.check_access(self.key, &channel, Access::Subscribe) {
            self.cf_fail(shard, enc, id, code, message);
            return true;
        }
        let empty = || {
            let reply = Reply {
                id,
                subscribe: Some(proto::SubscribeResult::default()),
                ..Default::default()
            };
            centrifugo::reply_frame(enc, &reply)
        };
        if channel.starts_with('#') {
            // The owner's own personal channel: always subscribed.
            shard.send_to(self.key, empty());
            return true;
        }
        let limit = shard.config.config.max_channels_per_connection;
        if self.channels.len() >= limit {
            let message = format!("this connection is subscribed to {limit} channels, the limit");
            self.cf_error(shard, enc, id, error_code::LIMIT_EXCEEDED, message, false);
            return true;
        }
        let raw = raw_id(id);
        let outcome = if shard.history_options(&channel).is_some() {
            // An SDK that never saw a position recovers from offset 0 with
            // no epoch; an empty epoch never matches (recovered: false).
            let recover = req.recover.then_some(Position {
                offset: req.offset,
                epoch: req.epoch,
            });
            shard.subscribe_history(self.key, self.seq, &channel, recover, Some(&*raw))
        } else {
            shard.subscribe(self.key, self.seq, &channel, empty(), Some(&*raw))
        };
        if !self.channels.record(outcome, &channel) {
            return false;
        }
        true
    }

    pub(super) fn cf_history(
        &self,
        shard: &Rc<Shard>,
        enc: Encoding,
        id: u32,
        req: HistoryRequest,
    ) {
        let HistoryRequest {
            channel,
            limit,
            since,
            reverse,
        } = req;
        if let Err((code, message)) = shard.check_access(self.key, &channel, Access::Subscribe) {
            return self.cf_fail(shard, enc, id, code, message);
        }
        if shard.history_options(&channel).is_none() {
            let message = format!("{channel} keeps no history");
            return self.cf_error(shard, enc, id, error_code::NOT_AVAILABLE, message, false);
        }
        // A negative limit asks for everything (capped by --history-max-limit).
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let since = since.map(|p| Position {
            offset: p.offset,
            epoch: p.epoch,
        });
        let page = shard.read_history(&channel, since, limit, reverse);
        let (shard, key, seq) = (shard.clone(), self.key, self.seq);
        glommio::spawn_local(async move {
            let reply = match page.await {
                Some(Ok(page)) => centrifugo::reply_frame(
                    enc,
                    &Reply {
                        id,
                        history: Some(proto::HistoryResult {
                            publications: page
                                .publications
                                .iter()
                                .map(|p| proto::Publication {
                                    data: p.payload.clone(),
                                    offset: p.offset,
                                })
                                .collect(),
                            epoch: page.epoch.as_str().to_string(),
                            offset: page.top,
                        }),
                        ..Default::default()
                    },
                ),
                Some(Err(e)) => {
                    let message = format!("{e}: since names another epoch of {channel}");
                    let code = error_code::UNRECOVERABLE_POSITION;
                    centrifugo::error_reply(enc, id, code, message, false)
                }
                None => {
                    let message = format!("the history of {channel} did not answer; retry");
                    centrifugo::error_reply(enc, id, error_code::INTERNAL, message, true)
                }
            };
            shard.send_to_conn(key, seq, reply);
        })
        .detach();
    }
}
