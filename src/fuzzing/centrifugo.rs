//! `centrifugo_json` and `centrifugo_protobuf` oracles: the command
//! decoders of /connection/websocket (`centrifugo::decode_commands`) on
//! arbitrary frames, and the push conversion fan-out makes.

use prost::Message as _;

use crate::centrifugo::{self, proto::Command, Encoding};
use crate::ws::{self, Kind};

/// `centrifugo_json`: the input as a text frame's payload (a batch of
/// newline-separated commands). Never panics; decoding stops at the first
/// error; every command decoded round-trips through its Protobuf form, and
/// a publish's data, when given, is JSON (what fan-out copies into every
/// frame). The
/// same text as a native frame converts to a push that is one JSON object
/// with `push`, or to nothing.
pub fn check_centrifugo_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let items: Vec<_> = centrifugo::decode_commands(Encoding::Json, text.as_bytes()).collect();
    check_items(&items);
    for command in items.iter().flatten() {
        // No `data` decodes as empty (which the session refuses with 107,
        // as it does any Protobuf data that is not JSON); given, it is
        // the JSON value's own text.
        if let Some(publish) = command.publish.as_ref().filter(|p| !p.data.is_empty()) {
            let raw = std::str::from_utf8(&publish.data).expect("JSON data is UTF-8");
            serde_json::from_str::<serde::de::IgnoredAny>(raw).expect("publish data is JSON");
        }
    }
    let native = ws::encode(Kind::Text, data);
    for encoding in [Encoding::Json, Encoding::Protobuf] {
        let Some(push) = centrifugo::push_from_native(encoding, &native) else {
            continue;
        };
        let (kind, payload) = ws::data_payload(&push).expect("a push is one data frame");
        assert_eq!(kind, centrifugo::kind(encoding));
        if encoding == Encoding::Json {
            let v: serde_json::Value = serde_json::from_slice(payload).expect("push is JSON");
            assert!(v.get("push").is_some_and(|p| p.is_object()), "{v}");
        } else {
            let mut body = payload;
            let reply =
                centrifugo::proto::Reply::decode_length_delimited(&mut body).expect("push decodes");
            assert!(body.is_empty() && reply.push.is_some());
        }
    }
}

/// `centrifugo_protobuf`: the input as a binary frame's payload (a stream
/// of varint-length-delimited commands). Never panics or reads past the
/// frame; each command takes at least one byte; decoding stops at the
/// first error; every command decoded re-encodes to a message that decodes
/// to it again.
pub fn check_centrifugo_protobuf(data: &[u8]) {
    let items: Vec<_> = centrifugo::decode_commands(Encoding::Protobuf, data).collect();
    assert!(items.len() <= data.len(), "a command per byte at most");
    check_items(&items);
}

fn check_items(items: &[Result<Command, centrifugo::DecodeError>]) {
    if let Some(i) = items.iter().position(Result::is_err) {
        assert_eq!(i, items.len() - 1, "decoding goes on after an error");
    }
    for command in items.iter().flatten() {
        let mut buf = Vec::new();
        command
            .encode_length_delimited(&mut buf)
            .expect("encoding into a Vec");
        let again: Vec<_> = centrifugo::decode_commands(Encoding::Protobuf, &buf).collect();
        assert_eq!(again.len(), 1);
        assert_eq!(
            again[0].as_ref().expect("re-encoded command decodes"),
            command
        );
    }
}
