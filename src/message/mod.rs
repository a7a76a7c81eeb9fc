//! The /ws JSON protocol: [`Command`]s parsed from client text, and the
//! server's replies encoded straight into WebSocket frames.
//!
//! A publish's `data` stays a `&RawValue` borrowed from the client's own
//! frame and is copied once into the outgoing frame, which every subscriber
//! then shares; nothing here re-serializes it. docs/protocol.md is the
//! contract; keep the two in step.

use serde::Deserialize;
use serde_json::value::RawValue;

mod reply;

pub use reply::*;

/// Longest channel name, in bytes.
pub const MAX_CHANNEL_BYTES: usize = 255;

/// A request from a /ws client.
#[derive(Debug)]
pub enum Command<'a> {
    /// `{"type":"subscribe","channel":C}`
    Subscribe {
        /// Channel name, validated.
        channel: String,
        /// `"recover":true,"offset":N,"epoch":E`: where the client's copy of
        /// a history channel ends.
        recover: Option<Position>,
    },
    /// `{"type":"unsubscribe","channel":C}`
    Unsubscribe {
        /// Channel name, validated.
        channel: String,
    },
    /// `{"type":"publish","channel":C,"data":ANY}`
    Publish {
        /// Channel name, validated.
        channel: String,
        /// The client's JSON value, verbatim.
        data: &'a RawValue,
    },
    /// `{"type":"heartbeat"}`
    Heartbeat,
    /// `{"type":"connect","token":JWT}`: authenticates the connection; only
    /// as its first request.
    Connect {
        /// The token, unverified.
        token: String,
    },
    /// `{"type":"refresh","token":JWT}`: extends the connection's expiry
    /// with a new token for the same user.
    Refresh {
        /// The token, unverified.
        token: String,
    },
    /// `{"type":"presence","channel":C}`: who is subscribed, on every shard.
    Presence {
        /// Channel name, validated.
        channel: String,
    },
    /// `{"type":"history","channel":C,"limit":N,"since":{"offset":O,"epoch":E},"reverse":B}`
    History {
        /// Channel name, validated.
        channel: String,
        /// Most publications wanted (0: only the top offset and epoch).
        limit: u64,
        /// Only publications after this position.
        since: Option<Position>,
        /// Newest first.
        reverse: bool,
    },
    /// `{"type":"presence_stats","channel":C}`: how many clients and users.
    PresenceStats {
        /// Channel name, validated.
        channel: String,
    },
}

/// A position in a history channel's stream: an offset, meaningful only
/// with its epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The offset of the last publication the client has.
    pub offset: u64,
    /// The epoch that offset belongs to (an empty one never matches).
    pub epoch: String,
}

/// A parsed request: the command and the request's `id`, if it carried one.
#[derive(Debug)]
pub struct Request<'a> {
    /// What the client asked for.
    pub command: Command<'a>,
    /// The `id` (a JSON number or string), echoed verbatim in the reply.
    pub id: Option<&'a RawValue>,
}

/// Error codes sent in `{"type":"error"}` replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum ErrorCode {
    /// The text is not JSON.
    InvalidJson,
    /// `type` names no known request.
    UnknownMessageType,
    /// A field is missing or has the wrong type.
    InvalidMessage,
    /// The channel is empty, longer than 255 bytes or has control characters.
    InvalidChannel,
    /// The per-connection channel limit is reached.
    TooManyChannels,
    /// A binary frame was sent on /ws.
    BinaryNotSupported,
    /// The connection may not do this here (namespace rules, a private
    /// channel without a grant, another user's personal channel).
    PermissionDenied,
    /// The channel's `ns:` prefix names no configured namespace.
    UnknownNamespace,
    /// A `refresh` token that does not verify or names another user.
    InvalidToken,
    /// A `refresh` token that has already expired.
    TokenExpired,
    /// `connect` after the first request.
    AlreadyConnected,
    /// Presence is not enabled in the channel's namespace.
    PresenceDisabled,
    /// Too many presence requests are in flight on this shard.
    TooManyRequests,
    /// History is not kept for the channel's namespace.
    HistoryDisabled,
    /// A history read's `since` names another epoch.
    UnrecoverablePosition,
    /// The history channel's home shard did not answer in time.
    HistoryUnavailable,
    /// Redis mode: Redis is unreachable, so the publish or subscribe did
    /// not happen (retry; the server reconnects by itself).
    Unavailable,
    /// The data has no exact form in one of the encodings clients speak
    /// (JSON, MessagePack): refused rather than altered.
    InvalidData,
    /// A binary frame from a MessagePack client is not one MessagePack value.
    InvalidMsgpack,
    /// A text frame was sent by a client that chose MessagePack.
    TextNotSupported,
}

impl ErrorCode {
    /// Every code, in declaration order (`code as usize` indexes it).
    pub const ALL: [ErrorCode; 20] = [
        ErrorCode::InvalidJson,
        ErrorCode::UnknownMessageType,
        ErrorCode::InvalidMessage,
        ErrorCode::InvalidChannel,
        ErrorCode::TooManyChannels,
        ErrorCode::BinaryNotSupported,
        ErrorCode::PermissionDenied,
        ErrorCode::UnknownNamespace,
        ErrorCode::InvalidToken,
        ErrorCode::TokenExpired,
        ErrorCode::AlreadyConnected,
        ErrorCode::PresenceDisabled,
        ErrorCode::TooManyRequests,
        ErrorCode::HistoryDisabled,
        ErrorCode::UnrecoverablePosition,
        ErrorCode::HistoryUnavailable,
        ErrorCode::Unavailable,
        ErrorCode::InvalidData,
        ErrorCode::InvalidMsgpack,
        ErrorCode::TextNotSupported,
    ];

    /// The code as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "INVALID_JSON",
            ErrorCode::UnknownMessageType => "UNKNOWN_MESSAGE_TYPE",
            ErrorCode::InvalidMessage => "INVALID_MESSAGE",
            ErrorCode::InvalidChannel => "INVALID_CHANNEL",
            ErrorCode::TooManyChannels => "TOO_MANY_CHANNELS",
            ErrorCode::BinaryNotSupported => "BINARY_NOT_SUPPORTED",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::UnknownNamespace => "UNKNOWN_NAMESPACE",
            ErrorCode::InvalidToken => "INVALID_TOKEN",
            ErrorCode::TokenExpired => "TOKEN_EXPIRED",
            ErrorCode::AlreadyConnected => "ALREADY_CONNECTED",
            ErrorCode::PresenceDisabled => "PRESENCE_DISABLED",
            ErrorCode::TooManyRequests => "TOO_MANY_REQUESTS",
            ErrorCode::HistoryDisabled => "HISTORY_DISABLED",
            ErrorCode::UnrecoverablePosition => "UNRECOVERABLE_POSITION",
            ErrorCode::HistoryUnavailable => "HISTORY_UNAVAILABLE",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::InvalidData => "INVALID_DATA",
            ErrorCode::InvalidMsgpack => "INVALID_MSGPACK",
            ErrorCode::TextNotSupported => "TEXT_NOT_SUPPORTED",
        }
    }
}

/// A request that could not be served: code, human text, and the `id` if known.
#[derive(Debug)]
pub struct RequestError<'a> {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// The request's `id`, when it could be read.
    pub id: Option<&'a RawValue>,
}

/// Every field the protocol knows, each kept raw so a wrongly typed one is
/// INVALID_MESSAGE rather than a JSON syntax error.
/// `present` keeps a JSON `null` as a value: `"data":null` is valid data
/// and `"id":null` is a wrongly typed id, neither is a missing field.
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow, rename = "type", default, deserialize_with = "present")]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    channel: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    token: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    recover: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    offset: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    epoch: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    limit: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    since: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    reverse: Option<&'a RawValue>,
}

/// Deserializes a present field, `null` included, as `Some`.
pub(crate) fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// True when `json` (already parsed) is an object. serde's derived
/// structs also accept an array, matched to the fields by position, so
/// `["subscribe","c"]` would otherwise pass for a request.
pub(crate) fn is_object(json: &str) -> bool {
    json.trim_start().starts_with('{')
}

/// Parses one client text message.
pub fn parse(text: &str) -> Result<Request<'_>, RequestError<'_>> {
    let fields: Fields<'_> = serde_json::from_str(text).map_err(|e| {
        // serde's category is not "is it JSON": it stops at the first type
        // mismatch (`"x" junk` is a data error) and calls a five-element
        // array "trailing characters". So the text is checked on its own
        // (error path only), and a syntax error from that check wins.
        let not_json = serde_json::from_str::<serde::de::IgnoredAny>(text).err();
        let code = if not_json.is_some() {
            ErrorCode::InvalidJson
        } else {
            ErrorCode::InvalidMessage
        };
        let e = not_json.unwrap_or(e);
        let message = match code {
            ErrorCode::InvalidMessage => {
                format!("request must be a JSON object with a \"type\": {e}")
            }
            _ => format!("invalid JSON: {e}"),
        };
        RequestError {
            code,
            message,
            id: None,
        }
    })?;
    if !is_object(text) {
        return Err(RequestError {
            code: ErrorCode::InvalidMessage,
            message: "request must be a JSON object with a \"type\", not an array".into(),
            id: None,
        });
    }
    let id = fields.id;
    let fail = |code, message: String| RequestError { code, message, id };
    if let Some(raw) = id {
        let first = raw.get().as_bytes()[0];
        if !(first == b'"' || first == b'-' || first.is_ascii_digit()) {
            return Err(RequestError {
                id: None,
                ..fail(
                    ErrorCode::InvalidMessage,
                    "\"id\" must be a number or a string".into(),
                )
            });
        }
    }
    let kind = match fields.kind {
        None => {
            return Err(fail(
                ErrorCode::InvalidMessage,
                "missing field \"type\"".into(),
            ))
        }
        Some(raw) => {
            serde_json::from_str::<std::borrow::Cow<'_, str>>(raw.get()).map_err(|_| {
                fail(
                    ErrorCode::InvalidMessage,
                    "\"type\" must be a string".into(),
                )
            })?
        }
    };
    let channel = || channel_field(fields.channel).map_err(|(code, msg)| fail(code, msg));
    let command = match kind.as_ref() {
        "subscribe" => {
            let channel = channel()?;
            let recover = match typed::<bool>(fields.recover, "recover", "a boolean") {
                Ok(Some(true)) => Some(Position {
                    offset: typed::<u64>(fields.offset, "offset", "a non-negative integer")
                        .and_then(|o| o.ok_or("\"recover\" needs \"offset\"".to_string()))
                        .map_err(|msg| fail(ErrorCode::InvalidMessage, msg))?,
                    epoch: typed::<String>(fields.epoch, "epoch", "a string")
                        .map_err(|msg| fail(ErrorCode::InvalidMessage, msg))?
                        .unwrap_or_default(),
                }),
                Ok(_) => None,
                Err(msg) => return Err(fail(ErrorCode::InvalidMessage, msg)),
            };
            Command::Subscribe { channel, recover }
        }
        "history" => {
            let channel = channel()?;
            let bad = |msg: String| fail(ErrorCode::InvalidMessage, msg);
            let limit =
                typed::<u64>(fields.limit, "limit", "a non-negative integer").map_err(&bad)?;
            let reverse = typed::<bool>(fields.reverse, "reverse", "a boolean").map_err(&bad)?;
            let since = typed::<SinceField>(fields.since, "since", "{\"offset\":N,\"epoch\":E}")
                .map_err(&bad)?;
            Command::History {
                channel,
                limit: limit.unwrap_or(0),
                since: since.map(|s| Position {
                    offset: s.offset,
                    epoch: s.epoch,
                }),
                reverse: reverse.unwrap_or(false),
            }
        }
        "unsubscribe" => Command::Unsubscribe {
            channel: channel()?,
        },
        "publish" => {
            let channel = channel()?;
            let data = fields
                .data
                .ok_or_else(|| fail(ErrorCode::InvalidMessage, "missing field \"data\"".into()))?;
            crate::wire::check_data(data.get().as_bytes())
                .map_err(|e| fail(ErrorCode::InvalidData, e.0))?;
            Command::Publish { channel, data }
        }
        "heartbeat" => Command::Heartbeat,
        "connect" => Command::Connect {
            token: token_field(fields.token).map_err(|msg| fail(ErrorCode::InvalidMessage, msg))?,
        },
        "refresh" => Command::Refresh {
            token: token_field(fields.token).map_err(|msg| fail(ErrorCode::InvalidMessage, msg))?,
        },
        "presence" => Command::Presence {
            channel: channel()?,
        },
        "presence_stats" => Command::PresenceStats {
            channel: channel()?,
        },
        other => {
            let shown: String = other.chars().take(64).collect();
            return Err(fail(
                ErrorCode::UnknownMessageType,
                format!(
                    "unknown type {shown:?}; expected subscribe, unsubscribe, publish, heartbeat, \
                     connect, refresh, presence, presence_stats or history"
                ),
            ));
        }
    };
    Ok(Request { command, id })
}

/// `{"offset":N,"epoch":E}` in a history request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SinceField {
    offset: u64,
    #[serde(default)]
    epoch: String,
}

/// An optional field of type `T`; a present one of another type (`null`
/// included) is an error naming the field and what it must be.
fn typed<T: serde::de::DeserializeOwned>(
    raw: Option<&RawValue>,
    name: &str,
    what: &str,
) -> Result<Option<T>, String> {
    raw.map(|raw| serde_json::from_str(raw.get()).map_err(|_| format!("\"{name}\" must be {what}")))
        .transpose()
}

fn token_field(raw: Option<&RawValue>) -> Result<String, String> {
    let raw = raw.ok_or("missing field \"token\"")?;
    serde_json::from_str(raw.get()).map_err(|_| "\"token\" must be a string".to_string())
}

fn channel_field(raw: Option<&RawValue>) -> Result<String, (ErrorCode, String)> {
    let raw = raw.ok_or((
        ErrorCode::InvalidMessage,
        "missing field \"channel\"".to_string(),
    ))?;
    let channel: String = serde_json::from_str(raw.get()).map_err(|_| {
        (
            ErrorCode::InvalidMessage,
            "\"channel\" must be a string".to_string(),
        )
    })?;
    validate_channel(&channel).map_err(|msg| (ErrorCode::InvalidChannel, msg))?;
    Ok(channel)
}

/// Checks a channel name: 1 to 255 bytes, no control characters.
pub fn validate_channel(channel: &str) -> Result<(), String> {
    if channel.is_empty() {
        return Err("channel must not be empty".into());
    }
    if channel.len() > MAX_CHANNEL_BYTES {
        return Err(format!(
            "channel is {} bytes; the limit is {MAX_CHANNEL_BYTES}",
            channel.len()
        ));
    }
    if channel.chars().any(char::is_control) {
        return Err("channel must not contain control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(text: &str) -> ErrorCode {
        parse(text).expect_err("should be rejected").code
    }

    #[test]
    fn parses_each_command_and_keeps_data_raw() {
        let r = parse(r#"{"type":"publish","channel":"a\u0062","data":{"x": [1, 2.50]},"id":7}"#)
            .unwrap();
        match r.command {
            Command::Publish { channel, data } => {
                assert_eq!(channel, "ab");
                assert_eq!(data.get(), r#"{"x": [1, 2.50]}"#);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(r.id.map(|i| i.get()), Some("7"));
        assert!(matches!(
            parse(r#"{"type":"heartbeat"}"#).unwrap().command,
            Command::Heartbeat
        ));
        match parse(r#"{"type":"publish","channel":"c","data":null}"#)
            .unwrap()
            .command
        {
            Command::Publish { data, .. } => assert_eq!(data.get(), "null"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn each_error_code_has_its_cause() {
        assert_eq!(code_of("{nope"), ErrorCode::InvalidJson);
        assert_eq!(code_of("[1,2]"), ErrorCode::InvalidMessage);
        assert_eq!(code_of(r#"["heartbeat"]"#), ErrorCode::InvalidMessage);
        assert_eq!(code_of(r#" ["subscribe","c"]"#), ErrorCode::InvalidMessage);
        // serde calls a long array "trailing characters" and `"x" junk` a
        // type error; what decides is whether the text is JSON.
        assert_eq!(
            code_of(r#"["a","b","c","d","e"]"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(code_of(r#""x" junk"#), ErrorCode::InvalidJson);
        assert_eq!(
            code_of(r#"{"type":"dance"}"#),
            ErrorCode::UnknownMessageType
        );
        assert_eq!(code_of(r#"{"type":5}"#), ErrorCode::InvalidMessage);
        assert_eq!(code_of(r#"{"type":null}"#), ErrorCode::InvalidMessage);
        assert_eq!(
            code_of(r#"{"type":"heartbeat","id":null}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code_of(r#"{"type":"subscribe"}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code_of(r#"{"type":"subscribe","channel":3}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code_of(r#"{"type":"publish","channel":"a"}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code_of(r#"{"type":"subscribe","channel":""}"#),
            ErrorCode::InvalidChannel
        );
        assert_eq!(
            code_of(r#"{"type":"subscribe","channel":"a\nb"}"#),
            ErrorCode::InvalidChannel
        );
        let long = format!(r#"{{"type":"subscribe","channel":"{}"}}"#, "x".repeat(256));
        assert_eq!(code_of(&long), ErrorCode::InvalidChannel);
        let max = format!(r#"{{"type":"subscribe","channel":"{}"}}"#, "x".repeat(255));
        assert!(parse(&max).is_ok());
    }

    #[test]
    fn error_replies_carry_the_id() {
        let err = parse(r#"{"type":"subscribe","id":"q1"}"#).unwrap_err();
        let frame = error(&err);
        let text = std::str::from_utf8(&frame[2..]).unwrap();
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["id"], "q1");
        assert_eq!(v["code"], "INVALID_MESSAGE");
    }

    #[test]
    fn all_codes_index_themselves() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(*code as usize, i);
        }
    }

    #[test]
    fn message_frame_escapes_the_channel() {
        let data = RawValue::from_string("[1]".into()).unwrap();
        let frame = message_frame("a\"b", &data);
        let text = std::str::from_utf8(&frame[2..]).unwrap();
        assert_eq!(text, r#"{"type":"message","channel":"a\"b","data":[1]}"#);
    }
}
