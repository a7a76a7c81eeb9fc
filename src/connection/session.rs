//! `Session`: one connection's protocol state (its route and channels)
//! and the handling of each decoded event and /ws request.

use std::sync::Arc;

use super::channels::ChannelList;
use crate::error::CloseReason;
use crate::http::Route;
use crate::message::{self, Command, ErrorCode, RequestError};
use crate::shard::{ConnKey, Shard, Subscription};
use crate::ws::{self, Event, Kind};

/// What the protocol layer needs to know about one connection.
pub(super) struct Session {
    pub(super) route: Route,
    pub(super) key: ConnKey,
    pub(super) seq: u64,
    /// Channels this connection subscribed to (at most the per-connection limit).
    pub(super) channels: ChannelList,
}

impl Session {
    /// Handles one decoded event; false stops decoding (a close arrived, or a
    /// subscribe waits for other shards).
    pub(super) fn on_event(
        &mut self,
        shard: &Shard,
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
            Event::Text(text) => self.on_request(shard, text),
            Event::Binary(_) => {
                let message =
                    "binary frames are not part of the /ws protocol; send JSON text".to_string();
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
        }
    }

    fn on_request(&mut self, shard: &Shard, text: &str) -> bool {
        let request = match message::parse(text) {
            Ok(request) => request,
            Err(err) => {
                self.reply_error(shard, err);
                return true;
            }
        };
        let id = request.id;
        match request.command {
            Command::Subscribe { channel } => {
                let reply = message::channel_reply("subscribed", &channel, id);
                if self.channels.contains(&channel) {
                    shard.send_to(self.key, reply);
                    return true;
                }
                let limit = shard.config.config.max_channels_per_connection;
                if self.channels.len() >= limit {
                    let message =
                        format!("this connection is subscribed to {limit} channels, the limit");
                    self.reply_error(
                        shard,
                        RequestError {
                            code: ErrorCode::TooManyChannels,
                            message,
                            id,
                        },
                    );
                    return true;
                }
                match shard.subscribe(self.key, self.seq, &channel, reply) {
                    Subscription::Active(name) => self.channels.push(name),
                    Subscription::Waiting => {
                        self.channels.push(Arc::from(channel.as_str()));
                        return false;
                    }
                    Subscription::Already => {}
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
                shard.publish(&channel, message::message_frame(&channel, data));
                if id.is_some() {
                    shard.send_to(self.key, message::channel_reply("published", &channel, id));
                }
            }
            Command::Heartbeat => shard.send_to(self.key, message::heartbeat(id)),
        }
        true
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
