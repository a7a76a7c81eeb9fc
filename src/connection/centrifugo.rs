//! A `/connection/websocket` client's commands (Centrifugo's protocol v2,
//! decoded by `crate::centrifugo`) mapped onto the same shard methods the
//! /ws session uses: same channels, permissions, history and presence. The
//! connection keeps no state of its own beyond the /ws session's: its
//! encoding is in its route, its client id is derived from shard and seq.

use std::rc::Rc;

use bytes::Bytes;
use serde_json::value::RawValue;

use super::session::Session;
use crate::auth::AuthError;
use crate::centrifugo::proto::{
    self, ChannelRequest, ConnectRequest, HistoryRequest, PublishRequest, Reply, SubscribeRequest,
};
use crate::centrifugo::{self, error_code, Encoding};
use crate::error::CloseReason;
use crate::message::{self, ErrorCode, Position};
use crate::shard::{Access, Shard};
use crate::ws::Kind;

/// A request the shard answers later carries the command id this way (the
/// shard's reply paths take a /ws request id, a JSON number).
fn raw_id(id: u32) -> Box<RawValue> {
    // A decimal integer is valid JSON.
    RawValue::from_string(id.to_string()).expect("integer is json")
}

impl Session {
    /// Handles one frame from a Centrifugo client: its batch of commands,
    /// in order. False when a subscribe waits for other shards (reading
    /// pauses after this frame; the batch itself is handled whole, and its
    /// replies are matched by id).
    pub(super) fn on_centrifugo(
        &mut self,
        shard: &Rc<Shard>,
        encoding: Encoding,
        kind: Kind,
        payload: &[u8],
    ) -> bool {
        if kind != centrifugo::kind(encoding) {
            return self.cf_bad_request(shard, &centrifugo::DecodeError::WrongFrame.to_string());
        }
        let mut go_on = true;
        for command in centrifugo::decode_commands(encoding, payload) {
            let command = match command {
                Ok(command) => command,
                Err(e) => return self.cf_bad_request(shard, &e.to_string()),
            };
            if shard
                .conns
                .borrow()
                .get(self.key.0 as usize)
                .is_none_or(|c| c.is_closing())
            {
                break;
            }
            go_on &= self.cf_on_command(shard, encoding, command);
            if !self.started {
                // A refused connect (error 109): the rest of the batch was
                // sent for the connection that did not happen. The SDK
                // closes this one and connects again with a new token.
                break;
            }
        }
        go_on
    }

    /// One command; false when it left the connection waiting.
    fn cf_on_command(&mut self, shard: &Rc<Shard>, enc: Encoding, cmd: proto::Command) -> bool {
        if cmd == proto::Command::default() {
            return true; // A pong: its arrival already counted as traffic.
        }
        let id = cmd.id;
        if let Some(req) = cmd.connect {
            if self.started {
                self.cf_bad_request(shard, "connect after connect");
            } else {
                self.started = true;
                self.cf_connect(shard, enc, id, req);
            }
            return true;
        }
        if !self.started {
            return self.cf_bad_request(shard, "the first command must be connect");
        }
        if cmd.send.is_some() {
            return true; // Asynchronous messages have no handler here: dropped, as Centrifugo does.
        }
        if id == 0 {
            return self.cf_bad_request(shard, "a command needs an id");
        }
        if let Some(req) = cmd.subscribe {
            return self.cf_subscribe(shard, enc, id, req);
        }
        if let Some(ChannelRequest { channel }) = cmd.unsubscribe {
            if self.channels.remove(&channel) {
                shard.unsubscribe(self.key, &channel);
            }
            let reply = Reply {
                id,
                unsubscribe: Some(proto::Empty {}),
                ..Default::default()
            };
            shard.send_to(self.key, centrifugo::reply_frame(enc, &reply));
        } else if let Some(req) = cmd.publish {
            self.cf_publish(shard, enc, id, req);
        } else if let Some(ChannelRequest { channel }) = cmd.presence {
            self.cf_presence(shard, enc, id, &channel, false);
        } else if let Some(ChannelRequest { channel }) = cmd.presence_stats {
            self.cf_presence(shard, enc, id, &channel, true);
        } else if let Some(req) = cmd.history {
            self.cf_history(shard, enc, id, req);
        } else if let Some(req) = cmd.refresh {
            self.cf_refresh(shard, enc, id, &req.token);
        } else if cmd.rpc.is_some() || cmd.sub_refresh.is_some() || cmd.ping.is_some() {
            // No handler, as Centrifugo answers when none is configured.
            let message = "not available on corecast (see docs/centrifugo.md)".to_string();
            self.cf_error(shard, enc, id, error_code::NOT_AVAILABLE, message, false);
        } else {
            return self.cf_bad_request(shard, "a command without a request");
        }
        true
    }

    fn cf_connect(&mut self, shard: &Shard, enc: Encoding, id: u32, req: ConnectRequest) {
        let mut expires_at = None;
        if req.token.is_empty() {
            if shard.config.config.require_auth {
                return shard.close(self.key, CloseReason::InvalidToken);
            }
            shard.stays_anonymous(self.key);
        } else {
            match shard.verify_token(&req.token) {
                Err(AuthError::Expired) => {
                    // The SDK fetches a new token and connects again.
                    self.started = false;
                    let message = "token expired".to_string();
                    return self.cf_error(
                        shard,
                        enc,
                        id,
                        error_code::TOKEN_EXPIRED,
                        message,
                        false,
                    );
                }
                Err(e) => {
                    log::debug!("connect refused conn={}-{}: {e}", shard.id.0, self.seq);
                    return shard.close(self.key, CloseReason::InvalidToken);
                }
                Ok(claims) if claims.user.is_empty() => shard.stays_anonymous(self.key),
                Ok(claims) => expires_at = shard.attach_identity(self.key, claims),
            }
        }
        log::debug!(
            "centrifugo connected conn={}-{} client_name={:?}",
            shard.id.0,
            self.seq,
            req.name
        );
        let (expires, ttl) = ttl(expires_at);
        let ping = shard.config.config.ping_interval.as_secs() as u32;
        // The user's personal channel reaches every connection of theirs
        // unasked: for the SDK, a server-side subscription.
        let user = shard.with_user(self.key, str::to_string);
        let subs = if user.is_empty() {
            Vec::new()
        } else {
            vec![proto::SubscriptionEntry {
                key: format!("#{user}"),
                value: Some(proto::SubscribeResult::default()),
            }]
        };
        let reply = Reply {
            id,
            connect: Some(proto::ConnectResult {
                client: self.cf_client_id(shard),
                version: centrifugo::VERSION.to_string(),
                expires,
                ttl,
                ping,
                pong: ping > 0,
                subs,
            }),
            ..Default::default()
        };
        shard.send_to(self.key, centrifugo::reply_frame(enc, &reply));
    }

    fn cf_refresh(&mut self, shard: &Shard, enc: Encoding, id: u32, token: &str) {
        let user = shard.with_user(self.key, str::to_string);
        if user.is_empty() {
            let message = "refresh needs a connection with a user".to_string();
            return self.cf_error(shard, enc, id, error_code::BAD_REQUEST, message, false);
        }
        match shard.verify_token(token) {
            Err(AuthError::Expired) => {
                let message = "token expired".to_string();
                self.cf_error(shard, enc, id, error_code::TOKEN_EXPIRED, message, false)
            }
            Ok(claims) if *claims.user == *user => {
                let (expires, ttl) = ttl(shard.refresh_identity(self.key, claims));
                let reply = Reply {
                    id,
                    refresh: Some(proto::RefreshResult {
                        client: self.cf_client_id(shard),
                        version: centrifugo::VERSION.to_string(),
                        expires,
                        ttl,
                    }),
                    ..Default::default()
                };
                shard.send_to(self.key, centrifugo::reply_frame(enc, &reply));
            }
            // Invalid, or another user's: Centrifugo disconnects (3500).
            _ => shard.close(self.key, CloseReason::InvalidToken),
        }
    }

    fn cf_subscribe(
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

    fn cf_publish(&self, shard: &Rc<Shard>, enc: Encoding, id: u32, req: PublishRequest) {
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

    fn cf_presence(&self, shard: &Rc<Shard>, enc: Encoding, id: u32, channel: &str, stats: bool) {
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

    fn cf_history(&self, shard: &Rc<Shard>, enc: Encoding, id: u32, req: HistoryRequest) {
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

    /// The client id Centrifugo clients see: the /ws connection id.
    fn cf_client_id(&self, shard: &Shard) -> String {
        shard.connection_id(self.seq)
    }

    /// Ends the connection with 3501 "bad request"; stops the batch.
    fn cf_bad_request(&self, shard: &Shard, why: &str) -> bool {
        log::debug!(
            "centrifugo bad request conn={}-{}: {why}",
            shard.id.0,
            self.seq
        );
        shard.close(self.key, CloseReason::BadRequest);
        true
    }

    /// A request error in corecast's terms, answered in Centrifugo's.
    fn cf_fail(&self, shard: &Shard, enc: Encoding, id: u32, code: ErrorCode, message: String) {
        shard.metrics.on_request_error(code);
        let (code, temporary) = centrifugo::error_code(code);
        self.cf_error(shard, enc, id, code, message, temporary);
    }

    fn cf_error(
        &self,
        shard: &Shard,
        enc: Encoding,
        id: u32,
        code: u32,
        message: String,
        temporary: bool,
    ) {
        log::debug!(
            "centrifugo error conn={}-{} code={code}",
            shard.id.0,
            self.seq
        );
        shard.send_to(
            self.key,
            centrifugo::error_reply(enc, id, code, message, temporary),
        );
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

/// `expires` and `ttl` for a token expiry in unix seconds: the seconds
/// left minus a margin (a quarter of them, 1 to 5 s), at least 1. The SDK
/// refreshes when `ttl` runs out, and corecast closes an expired
/// connection at once (Centrifugo waits 25 s), so the refresh must come
/// first.
fn ttl(expires_at: Option<u64>) -> (bool, u32) {
    match expires_at {
        Some(at) => (true, ttl_for(at.saturating_sub(crate::shard::unix_now()))),
        None => (false, 0),
    }
}

/// The `ttl` reported for a token with `left` seconds to live.
fn ttl_for(left: u64) -> u32 {
    let ttl = left.saturating_sub((left / 4).clamp(1, 5)).max(1);
    ttl.min(u64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::ttl_for;

    #[test]
    fn ttl_leaves_a_margin_before_expiry() {
        assert_eq!(ttl_for(0), 1);
        assert_eq!(ttl_for(2), 1);
        assert_eq!(ttl_for(8), 6);
        assert_eq!(ttl_for(3600), 3595);
        assert_eq!(ttl_for(u64::MAX), u32::MAX);
    }
}
