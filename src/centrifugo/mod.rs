//! Centrifugo's client protocol v2 (what the `centrifuge` SDKs speak at
//! `/connection/websocket`), as a codec that does no I/O: command batches
//! decoded from JSON or Protobuf, replies and pushes encoded into WebSocket
//! frames, the native `/ws` frames of a publish or join/leave turned into
//! `pub`/`join`/`leave` pushes, and the mapping of corecast's error and
//! close reasons to Centrifugo's codes. The request handling that maps
//! commands onto the shard lives in `connection/centrifugo/`;
//! docs/centrifugo.md is the contract.

use bytes::Bytes;

use crate::error::CloseReason;
use crate::message::ErrorCode;
use crate::ws::{self, Kind};

mod codec;
pub mod proto;

pub use codec::{convert_native, decode_commands, push_from_native, reply_frame, DecodeError};

/// The WebSocket subprotocol the SDK's Protobuf build asks for.
pub const PROTOBUF_SUBPROTOCOL: &str = "centrifuge-protobuf";

/// The `version` corecast reports in connect and refresh results.
pub const VERSION: &str = concat!("corecast ", env!("CARGO_PKG_VERSION"));

/// How a Centrifugo connection's commands and replies are encoded; chosen
/// at the upgrade (`Sec-WebSocket-Protocol: centrifuge-protobuf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Newline-delimited JSON objects in text frames.
    Json,
    /// Varint-length-delimited Protobuf messages in binary frames.
    Protobuf,
}

/// Centrifugo's error codes (errors.go of centrifugal/centrifuge).
pub mod error_code {
    /// Internal server error (corecast: a history home or Redis did not answer).
    pub const INTERNAL: u32 = 100;
    /// Unauthorized.
    pub const UNAUTHORIZED: u32 = 101;
    /// Unknown channel (no such namespace).
    pub const UNKNOWN_CHANNEL: u32 = 102;
    /// Permission denied.
    pub const PERMISSION_DENIED: u32 = 103;
    /// Method not found.
    pub const METHOD_NOT_FOUND: u32 = 104;
    /// Already subscribed.
    pub const ALREADY_SUBSCRIBED: u32 = 105;
    /// Limit exceeded.
    pub const LIMIT_EXCEEDED: u32 = 106;
    /// Bad request.
    pub const BAD_REQUEST: u32 = 107;
    /// Not available (a feature corecast does not have, or a namespace
    /// without history or presence).
    pub const NOT_AVAILABLE: u32 = 108;
    /// Token expired: the SDK gets a new token and retries.
    pub const TOKEN_EXPIRED: u32 = 109;
    /// Too many requests.
    pub const TOO_MANY_REQUESTS: u32 = 111;
    /// Unrecoverable position.
    pub const UNRECOVERABLE_POSITION: u32 = 112;
}

/// The Centrifugo error code for one of corecast's request errors, and
/// whether retrying may help.
pub fn error_code(code: ErrorCode) -> (u32, bool) {
    use error_code::*;
    match code {
        ErrorCode::InvalidJson
        | ErrorCode::UnknownMessageType
        | ErrorCode::InvalidMessage
        | ErrorCode::InvalidChannel
        | ErrorCode::BinaryNotSupported
        | ErrorCode::AlreadyConnected
        | ErrorCode::InvalidData
        | ErrorCode::InvalidMsgpack
        | ErrorCode::TextNotSupported => (BAD_REQUEST, false),
        ErrorCode::TooManyChannels => (LIMIT_EXCEEDED, false),
        ErrorCode::PermissionDenied => (PERMISSION_DENIED, false),
        ErrorCode::UnknownNamespace => (UNKNOWN_CHANNEL, false),
        ErrorCode::InvalidToken => (UNAUTHORIZED, false),
        ErrorCode::TokenExpired => (TOKEN_EXPIRED, false),
        ErrorCode::PresenceDisabled | ErrorCode::HistoryDisabled => (NOT_AVAILABLE, false),
        ErrorCode::TooManyRequests => (TOO_MANY_REQUESTS, true),
        ErrorCode::UnrecoverablePosition => (UNRECOVERABLE_POSITION, false),
        ErrorCode::HistoryUnavailable | ErrorCode::Unavailable => (INTERNAL, true),
    }
}

/// The close code and reason a Centrifugo client gets for `reason`:
/// Centrifugo's disconnect codes (3000-3499: the SDK reconnects;
/// 3500-3999: it does not), RFC 6455 codes where the WebSocket layer
/// failed (the SDK handles 1009 itself).
pub fn close_code(reason: CloseReason) -> (u16, &'static str) {
    match reason {
        CloseReason::GoingAway => (3001, "shutdown"),
        CloseReason::SlowConsumer => (3008, "slow"),
        CloseReason::HeartbeatTimeout => (3012, "no pong"),
        CloseReason::TokenExpired => (3005, "connection expired"),
        CloseReason::InsufficientState => (3010, "insufficient state"),
        CloseReason::InvalidToken => (3500, "invalid token"),
        // No `connect` within the handshake timeout.
        CloseReason::AuthRequired => (3502, "stale"),
        CloseReason::BadRequest => (3501, "bad request"),
        CloseReason::Disconnected => (3503, "force disconnect"),
        other => (other.code(), other.text()),
    }
}

/// The server ping: an empty reply (`{}` in JSON, a zero-length message in
/// Protobuf), one static frame per encoding.
pub fn ping_frame(encoding: Encoding) -> Bytes {
    static JSON: Bytes = Bytes::from_static(&[0x81, 0x02, b'{', b'}']);
    static PROTOBUF: Bytes = Bytes::from_static(&[0x82, 0x01, 0x00]);
    match encoding {
        Encoding::Json => JSON.clone(),
        Encoding::Protobuf => PROTOBUF.clone(),
    }
}

/// An error reply to command `id`.
pub fn error_reply(
    encoding: Encoding,
    id: u32,
    code: u32,
    message: String,
    temporary: bool,
) -> Bytes {
    reply_frame(
        encoding,
        &proto::Reply {
            id,
            error: Some(proto::Error {
                code,
                message,
                temporary,
            }),
            ..Default::default()
        },
    )
}

/// The command id a shard reply path carries as a /ws request id (see
/// `connection/centrifugo/`); 0 when there is none.
pub fn command_id(id: Option<&serde_json::value::RawValue>) -> u32 {
    id.and_then(|raw| raw.get().parse().ok()).unwrap_or(0)
}

/// The error reply for one of corecast's request errors.
pub fn request_error(encoding: Encoding, id: u32, code: ErrorCode, message: String) -> Bytes {
    let (code, temporary) = error_code(code);
    error_reply(encoding, id, code, message, temporary)
}

/// The reply to a subscribe to a history channel: positioned and
/// recoverable at `top`/`epoch`; when the client asked to recover,
/// `recovered` holds what it missed (`None`: not recovered).
pub fn history_subscribed(
    encoding: Encoding,
    id: u32,
    top: u64,
    epoch: &str,
    recovering: bool,
    recovered: Option<&[crate::history::Publication]>,
) -> Bytes {
    let publications = recovered
        .unwrap_or_default()
        .iter()
        .map(|p| proto::Publication {
            data: p.payload.clone(),
            offset: p.offset,
        })
        .collect();
    let result = proto::SubscribeResult {
        recoverable: true,
        positioned: true,
        epoch: epoch.to_string(),
        offset: top,
        recovered: recovering && recovered.is_some(),
        was_recovering: recovering,
        publications,
    };
    reply_frame(
        encoding,
        &proto::Reply {
            id,
            subscribe: Some(result),
            ..Default::default()
        },
    )
}

/// The unsubscribe code Centrifugo sends when a subscriber missed
/// publications live delivery cannot repair: the SDK subscribes again and
/// recovers what the history still holds (or learns `recovered: false`).
pub const UNSUBSCRIBE_INSUFFICIENT_STATE: (u32, &str) = (2500, "insufficient state");

/// The push ending the subscription to `channel` from the server side
/// with `(code, reason)`.
pub fn unsubscribe_push(encoding: Encoding, channel: &str, (code, reason): (u32, &str)) -> Bytes {
    reply_frame(
        encoding,
        &proto::Reply {
            push: Some(proto::Push {
                channel: channel.to_string(),
                unsubscribe: Some(proto::Unsubscribe {
                    code,
                    reason: reason.to_string(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
}

/// The frame kind of `encoding`.
pub(crate) fn kind(encoding: Encoding) -> Kind {
    match encoding {
        Encoding::Json => Kind::Text,
        Encoding::Protobuf => Kind::Binary,
    }
}

/// A close frame for a Centrifugo client.
pub fn close_frame(reason: CloseReason) -> Bytes {
    let (code, text) = close_code(reason);
    ws::close(code, text)
}

#[cfg(test)]
mod tests;
