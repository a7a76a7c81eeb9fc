//! Centrifugo's `publish`, `presence` and `presence_stats`.

use std::rc::Rc;

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::centrifugo::proto::{self, PublishRequest, Reply};
use crate::centrifugo::{self, error_code, Encoding};
use crate::connection::session::Session;
use crate::message::{self, ErrorCode};
use crate::shard::{Access, Shard};

impl Session {
    pub(super) fn cf_publish(
        &self,
        shard: &Rc<Shard>,
        enc: Encoding,
        id: u32,
        req: PublishRequest,
    ) {
        let PublishRequest {
            channel,
            data,
            kind,
        } = req;
        if kind != 0 {
            let message = "map publications are not supported".to_string();
            return self.cf_error(shard, enc, id, error_code::NOT_AVAILABLE, message, false);
        }
        if let Err(e) = message::validate_channel(&channel) {
            return self.cf_error(shard, enc, id, error_code::BAD_REQUEST, e, false);
        }
        // Every subscriber's frame is JSON, /ws clients' included: Protobuf
        // data must be JSON text (in JSON it is a JSON value already).
        let raw = std::str::from_utf8(&data)
            .ok()
            .and_then(|text| serde_json::from_str::<&RawValue>(text).ok());
        let Some(raw) = raw else {
            let message = "publication data must be JSON (UTF-8 JSON text in Protobuf), \
                           which every subscriber can read"
                .to_string();
            return self.cf_error(shard, enc, id, error_code::BAD_REQUEST, message, false);
        };
        // Every subscriber gets it exactly, MessagePack clients of /ws too.
        if let Err(e) = crate::wire::check_data(raw.get()) {
            return self.cf_fail(shard, enc, id, ErrorCode::InvalidData, e.to_string());
        }
        if let Err((code, message)) = shard.check_access(self.key, &channel, Access::Publish) {
            return self.cf_fail(shard, enc, id, code, message);
        }
        let done = Reply {
            id,
            publish: Some(proto::Empty {}),
            ..Default::default()
        };
        if shard.history_options(&channel).is_some() {
            let published =
                shard.publish_history(&channel, Bytes::copy_from_slice(raw.get().as_bytes()));
            let (shard, key, seq) = (shard.clone(), self.key, self.seq);
            glommio::spawn_local(async move {
                let reply = match published.await {
                    Some(_) => centrifugo::reply_frame(enc, &done),
                    None => {
                        let message = format!("publish to {channel} failed; retry");
                        centrifugo::error_reply(enc, id, error_code::INTERNAL, message, true)
                    }
                };
                shard.send_to_conn(key, seq, reply);
            })
            .detach();
            return;
        }
        let frame = message::message_frame(&channel, raw);
        if shard.clustered() {
            let sent = shard.publish_to_cluster(&channel, frame);
            let (shard, key, seq) = (shard.clone(), self.key, self.seq);
            glommio::spawn_local(async move {
                let reply = match sent.await {
                    Ok(()) => centrifugo::reply_frame(enc, &done),
                    Err(e) => {
                        let message = format!("publish to {channel} failed ({e}); retry");
                        centrifugo::error_reply(enc, id, error_code::INTERNAL, message, true)
                    }
                };
                shard.send_to_conn(key, seq, reply);
            })
            .detach();
            return;
        }
        shard.publish(&channel, frame);
        shard.send_to(self.key, centrifugo::reply_frame(enc, &done));
    }

    pub(super) fn cf_presence(
        &self,
        shard: &Rc<Shard>,
        enc: Encoding,
        id: u32,
        channel: &str,
        stats: bool,
    ) {
        if let Err((code, message)) = shard.check_access(self.key, channel, Access::Presence) {
            return self.cf_fail(shard, enc, id, code, message);
        }
        let encode = move |presence: &crate::shard::Presence| {
            let reply = if stats {
                Reply {
                    id,
                    presence_stats: Some(proto::PresenceStatsResult {
                        num_clients: presence.n_clients.min(u64::from(u32::MAX)) as u32,
                        num_users: presence.n_users.min(u64::from(u32::MAX)) as u32,
                    }),
                    ..Default::default()
                }
            } else {
                let presence = presence
                    .clients
                    .iter()
                    .filter_map(|c| client_info(c))
                    .map(|info| (info.client.clone(), info))
                    .collect();
                Reply {
                    id,
                    presence: Some(proto::PresenceResult { presence }),
                    ..Default::default()
                }
            };
            centrifugo::reply_frame(enc, &reply)
        };
        if !shard.request_presence(self.key, self.seq, channel, stats, Box::new(encode)) {
            let message = "too many presence requests in flight on this shard; retry".to_string();
            self.cf_error(shard, enc, id, error_code::TOO_MANY_REQUESTS, message, true);
        }
    }
}

/// A presence entry (`{"connection_id","user","info"}`, as the shards
/// gather it) as Centrifugo's `ClientInfo`.
fn client_info(json: &str) -> Option<proto::ClientInfo> {
    #[derive(serde::Deserialize)]
    struct Entry<'a> {
        connection_id: String,
        user: String,
        #[serde(borrow, default)]
        info: Option<&'a RawValue>,
    }
    let entry: Entry<'_> = serde_json::from_str(json).ok()?;
    Some(proto::ClientInfo {
        user: entry.user,
        client: entry.connection_id,
        conn_info: entry
            .info
            .map(|i| Bytes::copy_from_slice(i.get().as_bytes()))
            .unwrap_or_default(),
    })
}
