//! What corecast processes publish to each other through Redis pub/sub:
//! one tag byte, then the body. Pure encode and parse, no I/O.
//!
//! - `F` + a complete WebSocket frame: a publication (or join/leave) of a
//!   channel without history, encoded once by the publishing process and
//!   fanned out as is by every receiving one.
//! - `H` + `OFFSET:EPOCH:` + JSON data: a history channel's publication as
//!   the publish script numbered it (each receiving process encodes the
//!   frame once, with the offset).
//! - On the control channel: `U` + `LEN:USER` + frame (send to a user's
//!   connections), `D` + `USER` (disconnect a user), `B` + frame (send to
//!   every /ws client).
//!
//! Redis is trusted infrastructure, yet a frame from it is checked to be
//! exactly one unmasked text frame before any client gets it: a stray
//! `PUBLISH` must not corrupt every subscriber's stream.

use bytes::{BufMut, Bytes, BytesMut};

use crate::history::Epoch;

/// One parsed message from a channel's pub/sub subscription.
#[derive(Debug, PartialEq, Eq)]
pub enum ChannelMessage {
    /// A frame to fan out as is.
    Frame(Bytes),
    /// A history publication to encode with its offset.
    Publication {
        /// Its offset.
        offset: u64,
        /// Its channel's epoch.
        epoch: Epoch,
        /// The JSON data.
        data: Bytes,
    },
}

/// One parsed message from the control channel.
#[derive(Debug, PartialEq, Eq)]
pub enum ControlMessage {
    /// Send `frame` to `user`'s connections.
    UserSend {
        /// User id.
        user: String,
        /// The frame.
        frame: Bytes,
    },
    /// Close `user`'s connections (4000).
    UserDisconnect {
        /// User id.
        user: String,
    },
    /// Send `frame` to every /ws client.
    Broadcast {
        /// The frame.
        frame: Bytes,
    },
}

/// Why a message from Redis was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Empty, or an unknown tag byte.
    UnknownTag,
    /// A body that is not what its tag says.
    Malformed,
}

impl std::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EnvelopeError::UnknownTag => "unknown tag",
            EnvelopeError::Malformed => "malformed body",
        })
    }
}

/// `F` + frame.
pub fn frame(frame: &[u8]) -> Bytes {
    tagged(b'F', &[frame])
}

/// `U` + `LEN:USER` + frame.
pub fn user_send(user: &str, frame: &[u8]) -> Bytes {
    let len = user.len().to_string();
    tagged(b'U', &[len.as_bytes(), b":", user.as_bytes(), frame])
}

/// `D` + user.
pub fn user_disconnect(user: &str) -> Bytes {
    tagged(b'D', &[user.as_bytes()])
}

/// `B` + frame.
pub fn broadcast(frame: &[u8]) -> Bytes {
    tagged(b'B', &[frame])
}

fn tagged(tag: u8, parts: &[&[u8]]) -> Bytes {
    let len = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut out = BytesMut::with_capacity(len);
    out.put_u8(tag);
    for part in parts {
        out.put_slice(part);
    }
    out.freeze()
}

/// Parses a message of a channel subscription. `payload` is sliced, never
/// copied.
pub fn parse_channel(payload: &Bytes) -> Result<ChannelMessage, EnvelopeError> {
    match payload.first() {
        Some(b'F') => {
            let frame = payload.slice(1..);
            check_frame(&frame)?;
            Ok(ChannelMessage::Frame(frame))
        }
        Some(b'H') => {
            let body = &payload[1..];
            let colon = body
                .iter()
                .position(|&b| b == b':')
                .ok_or(EnvelopeError::Malformed)?;
            let offset = parse_u64(&body[..colon])?;
            let rest = &body[colon + 1..];
            let colon2 = rest
                .iter()
                .position(|&b| b == b':')
                .ok_or(EnvelopeError::Malformed)?;
            let epoch = Epoch::parse(&rest[..colon2]).ok_or(EnvelopeError::Malformed)?;
            let start = 1 + colon + 1 + colon2 + 1;
            Ok(ChannelMessage::Publication {
                offset,
                epoch,
                data: payload.slice(start..),
            })
        }
        _ => Err(EnvelopeError::UnknownTag),
    }
}

/// Parses a message of the control channel.
pub fn parse_control(payload: &Bytes) -> Result<ControlMessage, EnvelopeError> {
    match payload.first() {
        Some(b'U') => {
            let body = &payload[1..];
            let colon = body
                .iter()
                .position(|&b| b == b':')
                .ok_or(EnvelopeError::Malformed)?;
            let len = usize::try_from(parse_u64(&body[..colon])?)
                .map_err(|_| EnvelopeError::Malformed)?;
            let start = 1 + colon + 1;
            let end = start
                .checked_add(len)
                .filter(|&e| e <= payload.len())
                .ok_or(EnvelopeError::Malformed)?;
            let user =
                std::str::from_utf8(&payload[start..end]).map_err(|_| EnvelopeError::Malformed)?;
            let frame = payload.slice(end..);
            check_frame(&frame)?;
            Ok(ControlMessage::UserSend {
                user: user.to_string(),
                frame,
            })
        }
        Some(b'D') => {
            let user = std::str::from_utf8(&payload[1..]).map_err(|_| EnvelopeError::Malformed)?;
            Ok(ControlMessage::UserDisconnect {
                user: user.to_string(),
            })
        }
        Some(b'B') => {
            let frame = payload.slice(1..);
            check_frame(&frame)?;
            Ok(ControlMessage::Broadcast { frame })
        }
        _ => Err(EnvelopeError::UnknownTag),
    }
}

/// A decimal u64 without sign, spaces or leading `+`.
fn parse_u64(digits: &[u8]) -> Result<u64, EnvelopeError> {
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(EnvelopeError::Malformed);
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(EnvelopeError::Malformed)
}

/// True for exactly one final, unmasked, uncompressed text frame whose
/// length field matches what follows it (the only frames a server sends
/// to subscribers).
fn check_frame(frame: &[u8]) -> Result<(), EnvelopeError> {
    let bad = Err(EnvelopeError::Malformed);
    let [b0, b1, rest @ ..] = frame else {
        return bad;
    };
    if *b0 != 0x81 || b1 & 0x80 != 0 {
        return bad;
    }
    let (len, header) = match b1 & 0x7f {
        126 if rest.len() >= 2 => (u64::from(u16::from_be_bytes([rest[0], rest[1]])), 4),
        127 if rest.len() >= 8 => {
            let mut be = [0u8; 8];
            be.copy_from_slice(&rest[..8]);
            (u64::from_be_bytes(be), 10)
        }
        126 | 127 => return bad,
        n => (u64::from(n), 2),
    };
    if (frame.len() - header) as u64 != len {
        return bad;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::{encode, Kind};

    #[test]
    fn frames_and_publications_round_trip() {
        let f = encode(Kind::Text, br#"{"type":"message"}"#);
        assert_eq!(
            parse_channel(&frame(&f)),
            Ok(ChannelMessage::Frame(f.clone()))
        );
        let big = encode(Kind::Text, &vec![b'x'; 70_000]);
        assert_eq!(
            parse_channel(&frame(&big)),
            Ok(ChannelMessage::Frame(big.clone()))
        );
        let epoch = Epoch::parse(b"0123456789ab").unwrap();
        let h = Bytes::from_static(b"H42:0123456789ab:{\"a\":1}");
        assert_eq!(
            parse_channel(&h),
            Ok(ChannelMessage::Publication {
                offset: 42,
                epoch,
                data: Bytes::from_static(b"{\"a\":1}"),
            })
        );
        let u = user_send("al:ice", &f);
        assert_eq!(
            parse_control(&u),
            Ok(ControlMessage::UserSend {
                user: "al:ice".into(),
                frame: f.clone()
            })
        );
        assert_eq!(
            parse_control(&user_disconnect("bob")),
            Ok(ControlMessage::UserDisconnect { user: "bob".into() })
        );
        assert_eq!(
            parse_control(&broadcast(&f)),
            Ok(ControlMessage::Broadcast { frame: f })
        );
    }

    #[test]
    fn anything_else_is_refused() {
        let bad: &[&[u8]] = &[
            b"",
            b"X",
            b"F",
            b"F\x81\x05abc",     // length says 5, 3 follow
            b"F\x82\x01a",       // binary
            b"F\x01\x01a",       // not final
            b"F\x81\x81abcde",   // masked
            b"F\x81\x7e\x00",    // short extended length
            b"H:0123456789ab:1", // no offset
            b"H1:short:1",       // bad epoch
            b"H+1:0123456789ab:1",
            b"H99999999999999999999:0123456789ab:1",
            b"H1:0123456789ab", // no data separator
        ];
        for b in bad {
            assert!(parse_channel(&Bytes::copy_from_slice(b)).is_err(), "{b:?}");
        }
        let bad: &[&[u8]] = &[
            b"U",
            b"U5:bob",
            b"U3:bob\x81\x01",
            b"Ux:bob",
            b"D\xff",
            b"B\x81",
        ];
        for b in bad {
            assert!(parse_control(&Bytes::copy_from_slice(b)).is_err(), "{b:?}");
        }
    }
}
