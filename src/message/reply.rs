//! The server's /ws replies and pushes, each encoded straight into one
//! WebSocket frame (JSON text); parsing lives in the parent module.

use std::fmt::Write as _;

use bytes::Bytes;
use serde_json::value::RawValue;

use super::RequestError;
use crate::history::HistoryPage;
use crate::shard::Presence;
use crate::ws::{self, Kind};

/// `{"type":"connection_established","connection_id":ID,"shard":N}`, plus
/// `"user":U` and `"expires_at":S` (unix seconds) for a connection whose
/// upgrade URL carried a token.
pub fn connection_established(
    connection_id: &str,
    shard: usize,
    user: Option<&str>,
    expires_at: Option<u64>,
) -> Bytes {
    reply(|s| {
        let _ = write!(
            s,
            r#"{{"type":"connection_established","connection_id":"{connection_id}","shard":{shard}"#
        );
        if let Some(user) = user {
            s.push_str(r#","user":"#);
            push_json_str(s, user);
        }
        push_expiry(s, expires_at);
        s.push('}');
    })
}

/// `{"type":"connected","user":U[,"expires_at":S][,"id":ID]}`: the answer
/// to a valid `connect` (`user` is "" for a token without `sub`).
pub fn connected(user: &str, expires_at: Option<u64>, id: Option<&RawValue>) -> Bytes {
    reply(|s| {
        s.push_str(r#"{"type":"connected","user":"#);
        push_json_str(s, user);
        push_expiry(s, expires_at);
        push_id(s, id);
        s.push('}');
    })
}

/// `{"type":"refreshed","expires_at":S|null[,"id":ID]}`
pub fn refreshed(expires_at: Option<u64>, id: Option<&RawValue>) -> Bytes {
    reply(|s| {
        match expires_at {
            Some(at) => {
                let _ = write!(s, r#"{{"type":"refreshed","expires_at":{at}"#);
            }
            None => s.push_str(r#"{"type":"refreshed","expires_at":null"#),
        }
        push_id(s, id);
        s.push('}');
    })
}

/// `{"connection_id":ID,"user":U[,"info":INFO]}`: one client in presence
/// and join/leave pushes (`info` verbatim from the token).
pub fn client_info(connection_id: &str, user: &str, info: Option<&RawValue>) -> String {
    let mut s = String::with_capacity(48 + user.len());
    let _ = write!(s, r#"{{"connection_id":"{connection_id}","user":"#);
    push_json_str(&mut s, user);
    if let Some(info) = info {
        s.push_str(r#","info":"#);
        s.push_str(info.get());
    }
    s.push('}');
    s
}

/// `{"type":"join"|"leave","channel":C,"user":U,"connection_id":ID[,"info":INFO]}`,
/// from a [`client_info`] object; encoded once, shared by every subscriber.
pub fn join_leave(kind: &str, channel: &str, client: &str) -> Bytes {
    reply(|s| {
        let _ = write!(s, r#"{{"type":"{kind}","channel":"#);
        push_json_str(s, channel);
        s.push(',');
        // The client object's fields, without its braces (`client` comes
        // from `client_info`, which always writes `{...}`: the slice holds).
        let fields = client.strip_prefix('{').and_then(|c| c.strip_suffix('}'));
        s.push_str(fields.unwrap_or_default());
        s.push('}');
    })
}

/// `{"type":"presence","channel":C,"clients":[...][,"truncated":true][,"id":ID]}`
pub fn presence(channel: &str, presence: &Presence, id: Option<&RawValue>) -> Bytes {
    reply(|s| {
        s.push_str(r#"{"type":"presence","channel":"#);
        push_json_str(s, channel);
        s.push_str(r#","clients":["#);
        push_joined(s, &presence.clients);
        s.push(']');
        if presence.truncated {
            s.push_str(r#","truncated":true"#);
        }
        push_id(s, id);
        s.push('}');
    })
}

/// `{"type":"presence_stats","channel":C,"clients":N,"users":M[,"id":ID]}`
pub fn presence_stats(channel: &str, presence: &Presence, id: Option<&RawValue>) -> Bytes {
    reply(|s| {
        s.push_str(r#"{"type":"presence_stats","channel":"#);
        push_json_str(s, channel);
        let _ = write!(
            s,
            r#","clients":{},"users":{}"#,
            presence.n_clients, presence.n_users
        );
        push_id(s, id);
        s.push('}');
    })
}

/// Appends JSON values separated by commas.
pub fn push_joined(s: &mut String, items: &[String]) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(item);
    }
}

fn push_expiry(s: &mut String, expires_at: Option<u64>) {
    if let Some(at) = expires_at {
        let _ = write!(s, r#","expires_at":{at}"#);
    }
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
    encode_message(channel, data.get().as_bytes(), None)
}

/// `{"type":"message","channel":C,"data":ANY[,"offset":N]}` in one frame.
fn encode_message(channel: &str, data: &[u8], offset: Option<u64>) -> Bytes {
    ws::encode_with(Kind::Text, 64 + channel.len() + data.len(), |buf| {
        buf.extend_from_slice(br#"{"type":"message","channel":"#);
        // Writing into a Vec cannot fail.
        serde_json::to_writer(&mut *buf, channel).expect("vec write");
        buf.extend_from_slice(br#","data":"#);
        buf.extend_from_slice(data);
        if let Some(offset) = offset {
            // Writing into a Vec cannot fail.
            let _ = std::io::Write::write_fmt(buf, format_args!(r#","offset":{offset}"#));
        }
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

/// `{"type":"message","channel":C,"data":ANY,"offset":N}`: a history
/// channel's publication, encoded once at its home shard; `data` is the
/// publisher's JSON bytes.
pub fn message_frame_at(channel: &str, data: &[u8], offset: u64) -> Bytes {
    encode_message(channel, data, Some(offset))
}

/// `{"type":T,"channel":C,"offset":TOP,"epoch":E[,"recovered":B][,"id":ID]}`:
/// `subscribed` or `published` for a history channel.
pub fn position_reply(
    kind: &str,
    channel: &str,
    offset: u64,
    epoch: &str,
    recovered: Option<bool>,
    id: Option<&RawValue>,
) -> Bytes {
    reply(|s| {
        let _ = write!(s, r#"{{"type":"{kind}","channel":"#);
        push_json_str(s, channel);
        let _ = write!(s, r#","offset":{offset},"epoch":"#);
        push_json_str(s, epoch);
        if let Some(recovered) = recovered {
            let _ = write!(s, r#","recovered":{recovered}"#);
        }
        push_id(s, id);
        s.push('}');
    })
}

/// `{"type":"history","channel":C,"publications":[{"data":ANY,"offset":N},...],"offset":TOP,"epoch":E[,"id":ID]}`
pub fn history(channel: &str, page: &HistoryPage, id: Option<&RawValue>) -> Bytes {
    reply(|s| {
        s.push_str(r#"{"type":"history","channel":"#);
        push_json_str(s, channel);
        s.push(',');
        push_page(s, page);
        push_id(s, id);
        s.push('}');
    })
}

/// Appends `"publications":[{"data":ANY,"offset":N},...],"offset":TOP,"epoch":E`
/// (`data` verbatim: it was JSON when published).
pub fn push_page(s: &mut String, page: &HistoryPage) {
    s.push_str(r#""publications":["#);
    for (i, p) in page.publications.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(r#"{"data":"#);
        s.push_str(std::str::from_utf8(&p.payload).unwrap_or("null"));
        let _ = write!(s, r#","offset":{}}}"#, p.offset);
    }
    let _ = write!(
        s,
        r#"],"offset":{},"epoch":"{}""#,
        page.top,
        page.epoch.as_str()
    );
}
