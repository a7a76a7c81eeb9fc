//! `redis_message` oracle: what another process (or anyone with access to
//! Redis) can put in front of the Redis engine: pub/sub envelopes, and the
//! replies of the history and presence scripts.

use bytes::{Bytes, BytesMut};

use crate::broker::envelope::{self, ChannelMessage, ControlMessage};
use crate::broker::{presence, scripts};
use crate::redis::resp;

/// `redis_message`: one selector byte, then the input. Selector 0: a
/// channel message, 1: a control message; each that parses must survive
/// its own encoding (parse, encode, parse gives the same), and a frame it
/// accepts must be one complete unmasked text frame. Selector 2: RESP
/// replies, each handed to the publish, read and presence decoders, which
/// must answer (never panic) and, for a read, give one publication per
/// offset/data pair.
pub fn check_redis_message(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let payload = Bytes::copy_from_slice(input);
    match selector % 3 {
        0 => match envelope::parse_channel(&payload) {
            Ok(ChannelMessage::Frame(frame)) => {
                check_frame(&frame);
                let again = envelope::parse_channel(&envelope::frame(&frame));
                assert_eq!(again, Ok(ChannelMessage::Frame(frame)));
            }
            Ok(ChannelMessage::Publication {
                offset,
                epoch,
                data,
            }) => {
                let mut text = format!("H{offset}:{epoch}:").into_bytes();
                text.extend_from_slice(&data);
                let again = envelope::parse_channel(&Bytes::from(text));
                let same = ChannelMessage::Publication {
                    offset,
                    epoch,
                    data,
                };
                assert_eq!(again, Ok(same));
            }
            Err(_) => {}
        },
        1 => {
            if let Ok(message) = envelope::parse_control(&payload) {
                let encoded = match &message {
                    ControlMessage::UserSend { user, frame } => {
                        check_frame(frame);
                        envelope::user_send(user, frame)
                    }
                    ControlMessage::UserDisconnect { user } => envelope::user_disconnect(user),
                    ControlMessage::Broadcast { frame } => {
                        check_frame(frame);
                        envelope::broadcast(frame)
                    }
                };
                assert_eq!(envelope::parse_control(&encoded), Ok(message));
            }
        }
        _ => {
            let mut buf = BytesMut::from(input);
            while let Ok(Some(reply)) = resp::decode(&mut buf) {
                let n_items = reply.as_array().map(<[_]>::len);
                let _ = scripts::parse_publish(reply.clone());
                let _ = presence::parse_get(reply.clone());
                if let Ok(read) = scripts::parse_read(reply) {
                    let items = n_items.expect("a read reply is an array");
                    assert_eq!(read.publications.len() * 2 + 3, items);
                }
            }
        }
    }
}

/// One final unmasked text frame whose length field matches its size.
fn check_frame(frame: &[u8]) {
    assert_eq!(frame[0], 0x81, "{frame:?}");
    assert_eq!(frame[1] & 0x80, 0, "masked: {frame:?}");
    let (len, header) = match frame[1] & 0x7f {
        126 => (usize::from(u16::from_be_bytes([frame[2], frame[3]])), 4),
        127 => {
            let mut be = [0u8; 8];
            be.copy_from_slice(&frame[2..10]);
            (u64::from_be_bytes(be) as usize, 10)
        }
        n => (usize::from(n), 2),
    };
    assert_eq!(frame.len(), header + len, "{frame:?}");
}
