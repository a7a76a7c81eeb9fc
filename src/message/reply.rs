//! The server's /ws replies and pushes, each encoded straight into one
//! WebSocket frame (JSON text); parsing lives in the parent module.

use std::fmt::Write as _;

use bytes::Bytes;
use serde_json::value::RawValue;

use super::RequestError;
use crate::ws::{self, Kind};

/// `{"type":"connection_established","connection_id":ID,"shard":N}`
pub fn connection_established(connection_id: &str, shard: usize) -> Bytes {
    reply(|s| {
        let _ = write!(
            s,
            r#"{{"type":"connection_established","connection_id":"{connection_id}","shard":{shard}}}"#
        );
    })
}

/// `{"type":T,"channel":C[,"id":ID]}` for subscribed/unsubscribed/published.
pub fn channel_reply(kind: &str, channel: &str, id: Option<&RawValue>) -> Bytes {
    reply(|s| {
        let _ = write!(s, r#"{{"type":"{kind}","channel":"#);
        push_json_str(s, channel);
        push_id(s, id);
        s.push('}');
    })
}

/// `{"type":"broadcast","data":ANY}`, sent by `POST /api/broadcast` to
/// every /ws client, encoded once.
pub fn broadcast_frame(data: &RawValue) -> Bytes {
    let data = data.get();
    ws::encode_with(Kind::Text, 28 + data.len(), |buf| {
        buf.extend_from_slice(br#"{"type":"broadcast","data":"#);
        buf.extend_from_slice(data.as_bytes());
        buf.push(b'}');
    })
}

/// `{"type":"heartbeat"[,"id":ID]}`
pub fn heartbeat(id: Option<&RawValue>) -> Bytes {
    reply(|s| {
        s.push_str(r#"{"type":"heartbeat""#);
        push_id(s, id);
        s.push('}');
    })
}

/// `{"type":"error","code":CODE,"message":M[,"id":ID]}`
pub fn error(err: &RequestError<'_>) -> Bytes {
    reply(|s| {
        let _ = write!(
            s,
            r#"{{"type":"error","code":"{}","message":"#,
            err.code.as_str()
        );
        push_json_str(s, &err.message);
        push_id(s, err.id);
        s.push('}');
    })
}

/// The frame every subscriber of `channel` receives for a publish:
/// `{"type":"message","channel":C,"data":ANY}`, encoded once.
pub fn message_frame(channel: &str, data: &RawValue) -> Bytes {
    let data = data.get();
    ws::encode_with(Kind::Text, 40 + channel.len() + data.len(), |buf| {
        buf.extend_from_slice(br#"{"type":"message","channel":"#);
        // Writing into a Vec cannot fail.
        serde_json::to_writer(&mut *buf, channel).expect("vec write");
        buf.extend_from_slice(br#","data":"#);
        buf.extend_from_slice(data.as_bytes());
        buf.push(b'}');
    })
}

fn reply(write: impl FnOnce(&mut String)) -> Bytes {
    let mut s = String::with_capacity(96);
    write(&mut s);
    ws::encode(Kind::Text, s.as_bytes())
}

fn push_id(s: &mut String, id: Option<&RawValue>) {
    if let Some(id) = id {
        s.push_str(r#","id":"#);
        s.push_str(id.get());
    }
}

fn push_json_str(s: &mut String, value: &str) {
    // Serializing a &str to JSON cannot fail.
    s.push_str(&serde_json::to_string(value).expect("string to json"));
}

