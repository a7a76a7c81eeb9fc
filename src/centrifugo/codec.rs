//! Frames of the Centrifugo protocol: command batches in, replies and
//! pushes out. Pure functions over bytes; nothing here knows a socket.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use prost::Message as _;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::proto::{ClientEvent, ClientInfo, Command, Publication, Push, Reply};
use super::{kind, Encoding};
use crate::wire::ConvertError;
use crate::ws;

/// Why a frame's commands could not be read (the client is disconnected
/// with 3501 "bad request", as Centrifugo does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// A JSON line that is not a command object.
    Json(String),
    /// A Protobuf length prefix or message that does not parse.
    Protobuf(String),
    /// A frame of the other encoding (binary on a JSON connection or the
    /// reverse).
    WrongFrame,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Json(e) => write!(f, "invalid JSON command: {e}"),
            DecodeError::Protobuf(e) => write!(f, "invalid Protobuf command: {e}"),
            DecodeError::WrongFrame => f.write_str("frame type does not match the encoding"),
        }
    }
}

/// The commands of one frame, in order: JSON objects separated by
/// newlines (blank lines skipped), or varint-length-delimited Protobuf
/// messages. Lazy, so a batch costs one command at a time.
pub fn decode_commands(
    encoding: Encoding,
    payload: &[u8],
) -> impl Iterator<Item = Result<Command, DecodeError>> + '_ {
    Commands {
        encoding,
        rest: payload,
        failed: false,
    }
}

struct Commands<'a> {
    encoding: Encoding,
    rest: &'a [u8],
    failed: bool,
}

impl Iterator for Commands<'_> {
    type Item = Result<Command, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = match self.encoding {
            Encoding::Json => self.next_json()?,
            Encoding::Protobuf => self.next_protobuf()?,
        };
        self.failed = item.is_err();
        Some(item)
    }
}

impl Commands<'_> {
    fn next_json(&mut self) -> Option<Result<Command, DecodeError>> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let end = self
                .rest
                .iter()
                .position(|b| *b == b'\n')
                .unwrap_or(self.rest.len());
            let line = self.rest[..end].trim_ascii();
            self.rest = self.rest.get(end + 1..).unwrap_or_default();
            if line.is_empty() {
                continue;
            }
            // serde's derived structs also take a JSON array by position.
            if line[0] != b'{' {
                return Some(Err(DecodeError::Json("a command must be an object".into())));
            }
            return Some(
                serde_json::from_slice::<Command>(line)
                    .map_err(|e| DecodeError::Json(e.to_string())),
            );
        }
    }

    fn next_protobuf(&mut self) -> Option<Result<Command, DecodeError>> {
        if self.rest.is_empty() {
            return None;
        }
        let mut buf = self.rest;
        let len = match prost::encoding::decode_varint(&mut buf) {
            Ok(len) => len,
            Err(e) => return Some(Err(DecodeError::Protobuf(e.to_string()))),
        };
        let Some(message) = usize::try_from(len).ok().and_then(|n| buf.get(..n)) else {
            return Some(Err(DecodeError::Protobuf(format!(
                "length {len} is past the frame's end"
            ))));
        };
        self.rest = &buf[message.len()..];
        Some(Command::decode(message).map_err(|e| DecodeError::Protobuf(e.to_string())))
    }
}

/// One reply (or push, or ping) as a frame of `encoding`.
pub fn reply_frame(encoding: Encoding, reply: &Reply) -> Bytes {
    let hint = match encoding {
        Encoding::Json => 128,
        Encoding::Protobuf => reply.encoded_len() + 10,
    };
    ws::encode_with(kind(encoding), hint, |buf| {
        write_reply(encoding, reply, buf)
    })
}

/// Appends one reply in `encoding` (a JSON object, or a length-delimited
/// Protobuf message).
fn write_reply(encoding: Encoding, reply: &Reply, buf: &mut Vec<u8>) {
    match encoding {
        // Serializing these types into a Vec cannot fail: every map key is
        // a string and `raw_json` writes JSON or null.
        Encoding::Json => serde_json::to_writer(&mut *buf, reply).expect("reply to json"),
        // Encoding into a Vec grows it as needed: cannot fail.
        Encoding::Protobuf => reply
            .encode_length_delimited(buf)
            .expect("reply to protobuf"),
    }
}

/// The fields of a native /ws frame a push is made from.
#[derive(Deserialize)]
struct Native<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    channel: Cow<'a, str>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    offset: Option<u64>,
    #[serde(borrow, default)]
    connection_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    user: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    info: Option<&'a RawValue>,
}

/// A native /ws frame of a channel (`message`, `join`, `leave`: what a
/// publish fans out) as the Centrifugo push frame of `encoding`; `None` for
/// anything else, which Centrifugo clients do not get. Fan-out converts
/// through [`convert_native`] (via `wire::convert`); this frame-level form
/// is for tests and the fuzz oracles.
pub fn push_from_native(encoding: Encoding, frame: &[u8]) -> Option<Bytes> {
    let (ws::Kind::Text, payload) = ws::data_payload(frame)? else {
        return None;
    };
    let mut out = Vec::new();
    convert_native(encoding, payload, &mut out).ok()?;
    Some(ws::encode(kind(encoding), &out))
}

/// A native /ws message's payload (JSON) as the payload of the Centrifugo
/// push of `encoding`, appended to `out`: `message` becomes `pub`, `join`
/// and `leave` stay themselves; anything else has no Centrifugo form.
///
/// This is the one conversion per encoding that fan-out makes, at most
/// once per shard per publish (`wire::convert`).
pub fn convert_native(
    encoding: Encoding,
    json: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ConvertError> {
    let native: Native<'_> = serde_json::from_slice(json)
        .map_err(|e| ConvertError(format!("not a server message: {e}")))?;
    let push = match &*native.kind {
        "message" => {
            let Some(data) = native.data else {
                return Err(ConvertError("a message without data".into()));
            };
            if encoding == Encoding::Json {
                json_pub(out, &native.channel, data.get(), native.offset);
                return Ok(());
            }
            Push {
                channel: native.channel.into_owned(),
                publication: Some(Publication {
                    data: Bytes::copy_from_slice(data.get().as_bytes()),
                    offset: native.offset.unwrap_or(0),
                }),
                ..Default::default()
            }
        }
        "join" | "leave" => {
            let event = ClientEvent {
                info: Some(ClientInfo {
                    user: native.user.unwrap_or_default().into_owned(),
                    client: native.connection_id.unwrap_or_default().into_owned(),
                    conn_info: native
                        .info
                        .map(|i| Bytes::copy_from_slice(i.get().as_bytes()))
                        .unwrap_or_default(),
                }),
            };
            let join = native.kind == "join";
            Push {
                channel: native.channel.into_owned(),
                join: join.then(|| event.clone()),
                leave: (!join).then_some(event),
                ..Default::default()
            }
        }
        other => return Err(ConvertError(format!("{other:?} has no Centrifugo push"))),
    };
    let reply = Reply {
        push: Some(push),
        ..Default::default()
    };
    write_reply(encoding, &reply, out);
    Ok(())
}

/// `{"push":{"channel":C,"pub":{"data":D[,"offset":N]}}}`, written
/// directly: `data` is already JSON, so it is copied, not re-validated.
fn json_pub(buf: &mut Vec<u8>, channel: &str, data: &str, offset: Option<u64>) {
    buf.reserve(48 + channel.len() + data.len());
    buf.extend_from_slice(br#"{"push":{"channel":"#);
    // Writing a &str into a Vec cannot fail.
    serde_json::to_writer(&mut *buf, channel).expect("vec write");
    buf.extend_from_slice(br#","pub":{"data":"#);
    buf.extend_from_slice(data.as_bytes());
    if let Some(offset) = offset.filter(|o| *o > 0) {
        buf.extend_from_slice(format!(r#","offset":{offset}"#).as_bytes());
    }
    buf.extend_from_slice(b"}}}");
}
