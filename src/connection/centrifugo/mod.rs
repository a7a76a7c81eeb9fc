//! A `/connection/websocket` client's commands (Centrifugo's protocol v2,
//! decoded by `crate::centrifugo`) mapped onto the same shard methods the
//! /ws session uses: same channels, permissions, history and presence. The
//! connection keeps no state of its own beyond the /ws session's: its
//! encoding is in its route, its client id is derived from shard and seq.
//! `mod.rs` decodes a frame's batch and dispatches each command;
//! `connect.rs`, `subscribe.rs` and `publish.rs` handle them by group.

use std::rc::Rc;

use serde_json::value::RawValue;

use super::session::Session;
use crate::centrifugo::proto::{self, ChannelRequest, Reply};
use crate::centrifugo::{self, error_code, Encoding};
use crate::error::CloseReason;
use crate::message::ErrorCode;
use crate::shard::Shard;
use crate::ws::Kind;

mod connect;
mod publish;
mod subscribe;

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
