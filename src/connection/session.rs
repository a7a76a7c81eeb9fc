//! `Session`: one connection's protocol state (its route and channels)
//! and the handling of each decoded event and /ws request: pub/sub,
//! `connect`/`refresh` (tokens), presence, and the permission checks.

use std::rc::Rc;

use bytes::Bytes;

use super::channels::ChannelList;
use crate::auth::AuthError;
use crate::error::CloseReason;
use crate::http::Route;
use crate::message::{self, Command, ErrorCode, RequestError};
use crate::shard::{Access, ConnKey, Shard};
use crate::wire::msgpack;
use crate::wire::Encoding;
use crate::ws::{self, Event, Kind};
use serde_json::value::RawValue;

/// What the protocol layer needs to know about one connection.
pub(super) struct Session {
    pub(super) route: Route,
    /// What the client's requests are written in (replies are converted
    /// by the shard on their way out).
    pub(super) encoding: Encoding,
    pub(super) key: ConnKey,
    pub(super) seq: u64,
    /// Channels this connection subscribed to (at most the per-connection limit).
    pub(super) channels: ChannelList,
    /// A request has been handled: `connect` is only valid before.
    pub(super) started: bool,
}

impl Session {
    /// Handles one decoded event; false stops decoding (a close arrived, or a
    /// subscribe waits for other shards).
    pub(super) fn on_event(
        &mut self,
        shard: &Rc<Shard>,
        event: Event<'_>,
        close_received: &mut bool,
    ) -> bool {
        let closing = shard
            .conns
            .borrow()
            .get(self.key.0 as usize)
            .is_none_or(|s| s.closing.is_some());
        if matches!(event, Event::Text(_) | Event::Binary(_)) {
            shard.metrics.bump(|c| c.messages_received += 1);
        }
        match event {
            Event::Close(code) => {
                *close_received = true;
                if !closing {
                    let deadline = shard.now_ms() + Shard::ms(shard.config.config.close_timeout);
                    if let Some(state) = shard.conns.borrow_mut().get_mut(self.key.0 as usize) {
                        state.begin_close(CloseReason::ClientClosed(code), deadline);
                    }
                }
                false
            }
            _ if closing => true, // After our close frame, data is read and dropped.
            Event::Ping(payload) => {
                shard.send_to(self.key, ws::pong(payload));
                true
            }
            Event::Pong => true,
            Event::Text(text) if self.route == Route::Echo => {
                shard.send_to(self.key, ws::encode(Kind::Text, text.as_bytes()));
                true
            }
            Event::Binary(data) if self.route == Route::Echo => {
                shard.send_to(self.key, ws::encode(Kind::Binary, data));
                true
            }
            Event::Text(_) if self.encoding == Encoding::MsgPack => {
                let message = "this connection chose corecast.msgpack: send MessagePack \
                               in binary frames"
                    .to_string();
                self.fail(shard, ErrorCode::TextNotSupported, message, None);
                true
            }
            Event::Binary(data) if self.encoding == Encoding::MsgPack => {
                self.on_msgpack(shard, data)
            }
            Event::Text(text) => match self.route {
                Route::Centrifugo(enc) => {
                    self.on_centrifugo(shard, enc, Kind::Text, text.as_bytes())
                }
                _ => self.on_request(shard, text),
            },
            Event::Binary(data) => match self.route {
                Route::Centrifugo(enc) => self.on_centrifugo(shard, enc, Kind::Binary, data),
                _ => {
                    let message = "binary frames are not part of the /ws protocol; send JSON text"
                        .to_string();
                    self.reply_error(
                        shard,
                        RequestError {
                            code: ErrorCode::BinaryNotSupported,
                            message,
                            id: None,
                        },
                    );
                    true
                }
            },
        }
    }

    /// A MessagePack request: transcoded to JSON text once and handled as
    /// the same JSON request. A value JSON cannot hold exactly is refused
    /// (INVALID_DATA, with the request's id when it can be read) rather
    /// than altered.
    fn on_msgpack(&mut self, shard: &Rc<Shard>, data: &[u8]) -> bool {
        let mut json = Vec::with_capacity(2 * data.len() + 16);
        let err = match msgpack::to_json(data, &mut json) {
            Ok(()) => match std::str::from_utf8(&json) {
                Ok(text) => return self.on_request(shard, text),
                // The transcoder writes UTF-8 only.
                Err(_) => msgpack::Error::Malformed("not UTF-8"),
            },
            Err(err) => err,
        };
        match err {
            msgpack::Error::Malformed(why) => {
                let message = format!("not a MessagePack request: {why}");
                self.fail(shard, ErrorCode::InvalidMsgpack, message, None);
            }
            msgpack::Error::Unrepresentable(what) => {
                // Read again with the loss marked, only to find the id (and
                // whether the bytes are malformed further on).
                json.clear();
                if let Err(msgpack::Error::Malformed(why)) = msgpack::to_json_lossy(data, &mut json)
                {
                    let message = format!("not a MessagePack request: {why}");
                    self.fail(shard, ErrorCode::InvalidMsgpack, message, None);
                    return true;
                }
                let text = std::str::from_utf8(&json).unwrap_or_default();
                let id = match message::parse(text) {
                    Ok(request) => request.id,
                    Err(e) => e.id,
                };
                let message = format!(
                    "the request has {what}, which JSON cannot hold exactly, so it is \
                     refused rather than altered"
                );
                self.fail(shard, ErrorCode::InvalidData, message, id);
            }
        }
        true
    }

    fn on_request(&mut self, shard: &Rc<Shard>, text: &str) -> bool {
        let request = match message::parse(text) {
            Ok(request) => request,
            Err(err) => {
                self.reply_error(shard, err);
                return true;
            }
        };
        let id = request.id;
        let first = !std::mem::replace(&mut self.started, true);
        let anonymous = shard.with_user(self.key, str::is_empty);
        if let Command::Connect { token } = &request.command {
            if first && anonymous {
                self.connect(shard, token, id);
            } else {
                let message = "connect must be the connection's first request, \
                               and only on a connection without a token"
                    .to_string();
                self.fail(shard, ErrorCode::AlreadyConnected, message, id);
            }
            return true;
        }
        if anonymous && shard.config.config.require_auth {
            // Under --require-auth the first request must authenticate.
            shard.close(self.key, CloseReason::AuthRequired);
            return true;
        }
        match request.command {
            Command::Subscribe { channel, recover } => {
                let reply = message::channel_reply("subscribed", &channel, id);
                if self.channels.contains(&channel) {
                    if shard.is_subscribed(self.key, &channel) {
                        shard.send_to(self.key, reply);
                        return true;
                    }
                    // An earlier subscribe of it failed while it waited.
                    self.channels.remove(&channel);
                }
                if let Err((code, message)) =
                    shard.check_access(self.key, &channel, Access::Subscribe)
                {
                    self.fail(shard, code, message, id);
                    return true;
                }
                if channel.starts_with('#') {
                    // The owner's own personal channel: always subscribed.
                    shard.send_to(self.key, reply);
                    return true;
                }
                let limit = shard.config.config.max_channels_per_connection;
                if self.channels.len() >= limit {
                    let message =
                        format!("this connection is subscribed to {limit} channels, the limit");
                    self.fail(shard, ErrorCode::TooManyChannels, message, id);
                    return true;
                }
                let outcome = if shard.history_options(&channel).is_some() {
                    shard.subscribe_history(self.key, self.seq, &channel, recover, id)
                } else {
                    shard.subscribe(self.key, self.seq, &channel, reply, id)
                };
                if !self.channels.record(outcome, &channel) {
                    return false;
                }
            }
            Command::Unsubscribe { channel } => {
                if self.channels.remove(&channel) {
                    shard.unsubscribe(self.key, &channel);
                }
                shard.send_to(
                    self.key,
                    message::channel_reply("unsubscribed", &channel, id),
                );
            }
            Command::Publish { channel, data } => {
                if let Err((code, message)) =
                    shard.check_access(self.key, &channel, Access::Publish)
                {
                    self.fail(shard, code, message, id);
                    return true;
                }
                if shard.history_options(&channel).is_some() {
                    self.publish_history(shard, &channel, data, id);
                    return true;
                }
                let frame = message::message_frame(&channel, data);
                if shard.clustered() {
                    self.publish_to_cluster(shard, &channel, frame, id);
                    return true;
                }
                shard.publish(&channel, frame);
                if id.is_some() {
                    shard.send_to(self.key, message::channel_reply("published", &channel, id));
                }
            }
            Command::Heartbeat => shard.send_to(self.key, message::heartbeat(id)),
            Command::Refresh { token } => self.refresh(shard, &token, id),
            Command::Presence { channel } => self.presence(shard, &channel, false, id),
            Command::PresenceStats { channel } => self.presence(shard, &channel, true, id),
            Command::History {
                channel,
                limit,
                since,
                reverse,
            } => self.history(shard, &channel, limit, since, reverse, id),
            Command::Connect { .. } => {} // Handled above.
        }
        true
    }

    /// `connect`: a bad token closes with 4001/4002; a good one makes the
    /// connection its user's.
    fn connect(&mut self, shard: &Shard, token: &str, id: Option<&RawValue>) {
        let verified = shard.verify_token(token);
        let claims = match verified {
            Ok(claims) => claims,
            Err(e) => {
                log::debug!("connect refused conn={}-{}: {e}", shard.id.0, self.seq);
                let reason = match e {
                    AuthError::Expired => CloseReason::TokenExpired,
                    AuthError::Invalid(_) => CloseReason::InvalidToken,
                };
                shard.close(self.key, reason);
                return;
            }
        };
        if claims.user.is_empty() {
            shard.stays_anonymous(self.key);
            shard.send_to(self.key, message::connected("", None, id));
            return;
        }
        let user = claims.user.clone();
        let expires_at = shard.attach_identity(self.key, claims);
        log::debug!("connected conn={}-{} user={user}", shard.id.0, self.seq);
        shard.send_to(self.key, message::connected(&user, expires_at, id));
    }

    /// `refresh`: a valid token for the same user moves the expiry; any
    /// other answer is an error that changes nothing.
    fn refresh(&mut self, shard: &Shard, token: &str, id: Option<&RawValue>) {
        let user = shard.with_user(self.key, str::to_string);
        if user.is_empty() {
            let message = "refresh needs an authenticated connection".to_string();
            return self.fail(shard, ErrorCode::PermissionDenied, message, id);
        }
        let verified = shard.verify_token(token);
        match verified {
            Err(AuthError::Expired) => {
                self.fail(shard, ErrorCode::TokenExpired, "token expired".into(), id)
            }
            Err(e) => self.fail(shard, ErrorCode::InvalidToken, e.to_string(), id),
            Ok(claims) if *claims.user != *user => {
                let message = "the token is for another user".to_string();
                self.fail(shard, ErrorCode::InvalidToken, message, id)
            }
            Ok(claims) => {
                let expires_at = shard.refresh_identity(self.key, claims);
                shard.send_to(self.key, message::refreshed(expires_at, id));
            }
        }
    }

    /// A publish to a history channel: numbered at the channel's home; the
    /// ack (with its offset) comes once the home has fanned it out, so a
    /// subscribed publisher still gets its own message first.
    fn publish_history(
        &self,
        shard: &Rc<Shard>,
        channel: &str,
        data: &RawValue,
        id: Option<&RawValue>,
    ) {
        let data = Bytes::copy_from_slice(data.get().as_bytes());
        let Some(id) = id.map(|i| i.to_owned()) else {
            return shard.publish_history_unacked(channel, data);
        };
        let published = shard.publish_history(channel, data);
        let (shard, key, seq, channel) = (shard.clone(), self.key, self.seq, channel.to_string());
        glommio::spawn_local(async move {
            let reply = match published.await {
                Some((offset, epoch)) => message::position_reply(
                    "published",
                    &channel,
                    offset,
                    epoch.as_str(),
                    None,
                    Some(&id),
                ),
                None if shard.clustered() => message::error(&RequestError {
                    code: ErrorCode::Unavailable,
                    message: format!("publish to {channel} failed (Redis unreachable); retry"),
                    id: Some(&id),
                }),
                None => message::error(&RequestError {
                    code: ErrorCode::HistoryUnavailable,
                    message: format!("the history of {channel} did not answer; retry"),
                    id: Some(&id),
                }),
            };
            shard.send_to_conn(key, seq, reply);
        })
        .detach();
    }

    /// A publish in Redis mode: queued to Redis now (so one connection's
    /// publishes keep their order); acked once Redis took it, or answered
    /// `UNAVAILABLE`.
    fn publish_to_cluster(
        &self,
        shard: &Rc<Shard>,
        channel: &str,
        frame: Bytes,
        id: Option<&RawValue>,
    ) {
        let Some(id) = id.map(|i| i.to_owned()) else {
            return shard.publish_to_cluster_unacked(channel, frame);
        };
        let sent = shard.publish_to_cluster(channel, frame);
        let (shard, key, seq, channel) = (shard.clone(), self.key, self.seq, channel.to_string());
        glommio::spawn_local(async move {
            let reply = match sent.await {
                Ok(()) => message::channel_reply("published", &channel, Some(&id)),
                Err(e) => message::error(&RequestError {
                    code: ErrorCode::Unavailable,
                    message: format!("publish to {channel} failed ({e}); retry"),
                    id: Some(&id),
                }),
            };
            shard.send_to_conn(key, seq, reply);
        })
        .detach();
    }

    /// `history`: a page read at the channel's home.
    fn history(
        &self,
        shard: &Rc<Shard>,
        channel: &str,
        limit: u64,
        since: Option<message::Position>,
        reverse: bool,
        id: Option<&RawValue>,
    ) {
        if let Err((code, message)) = shard.check_access(self.key, channel, Access::Subscribe) {
            return self.fail(shard, code, message, id);
        }
        if shard.history_options(channel).is_none() {
            let message = format!(
                "{channel} keeps no history (its namespace has no history_size and history_ttl)"
            );
            return self.fail(shard, ErrorCode::HistoryDisabled, message, id);
        }
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let page = shard.read_history(channel, since, limit, reverse);
        let (shard, key, seq, channel) = (shard.clone(), self.key, self.seq, channel.to_string());
        let id = id.map(|i| i.to_owned());
        glommio::spawn_local(async move {
            let id = id.as_deref();
            let reply = match page.await {
                Some(Ok(page)) => message::history(&channel, &page, id),
                Some(Err(e)) => message::error(&RequestError {
                    code: ErrorCode::UnrecoverablePosition,
                    message: format!("{e}: since names another epoch of {channel}"),
                    id,
                }),
                None => message::error(&RequestError {
                    code: ErrorCode::HistoryUnavailable,
                    message: format!("the history of {channel} did not answer; retry"),
                    id,
                }),
            };
            shard.send_to_conn(key, seq, reply);
        })
        .detach();
    }

    /// `presence`/`presence_stats`: answered once every shard has.
    fn presence(&self, shard: &Rc<Shard>, channel: &str, stats: bool, id: Option<&RawValue>) {
        if let Err((code, message)) = shard.check_access(self.key, channel, Access::Presence) {
            return self.fail(shard, code, message, id);
        }
        let (owned_id, name) = (id.map(|i| i.to_owned()), channel.to_string());
        let encode = move |presence: &crate::shard::Presence| {
            let id = owned_id.as_deref();
            if stats {
                message::presence_stats(&name, presence, id)
            } else {
                message::presence(&name, presence, id)
            }
        };
        if !shard.request_presence(self.key, self.seq, channel, stats, Box::new(encode)) {
            let message = "too many presence requests in flight on this shard; retry".to_string();
            self.fail(shard, ErrorCode::TooManyRequests, message, id);
        }
    }

    fn fail(&self, shard: &Shard, code: ErrorCode, message: String, id: Option<&RawValue>) {
        self.reply_error(shard, RequestError { code, message, id });
    }

    fn reply_error(&self, shard: &Shard, err: RequestError<'_>) {
        shard.metrics.on_request_error(err.code);
        log::debug!(
            "request error conn={}-{} code={}",
            shard.id.0,
            self.seq,
            err.code.as_str()
        );
        shard.send_to(self.key, message::error(&err));
    }
}
