//! `msgpack_request`: the MessagePack <-> JSON transcoders of
//! `wire::msgpack` on arbitrary bytes, read both as a client's MessagePack
//! request and as JSON text.

use serde::de::IgnoredAny;

use crate::message;
use crate::wire::msgpack::{self, Error};

/// `data` as a MessagePack request: never a panic; what transcodes is
/// JSON, transcodes back to MessagePack and again to the same text, and
/// parses (or is refused) like any JSON request; the lossy transcoding
/// agrees with the strict one. `data` as JSON text: what serde_json reads
/// either converts to MessagePack holding the same value or is refused as
/// unrepresentable, never as malformed.
pub fn check_msgpack_request(data: &[u8]) {
    check_as_msgpack(data);
    check_as_json(data);
}

fn check_as_msgpack(data: &[u8]) {
    let mut json = Vec::new();
    let strict = msgpack::to_json(data, &mut json);
    let mut lossy_json = Vec::new();
    let lossy = msgpack::to_json_lossy(data, &mut lossy_json);
    match &strict {
        Ok(()) => {
            assert_eq!(lossy, Ok(None), "lossy lost what strict kept");
            assert_eq!(lossy_json, json, "lossy and strict differ");
            let text = std::str::from_utf8(&json).expect("transcoded JSON is UTF-8");
            serde_json::from_str::<IgnoredAny>(text).expect("transcoded JSON is JSON");
            let mut packed = Vec::new();
            msgpack::from_json(&json, &mut packed).expect("JSON from MessagePack goes back");
            let mut again = Vec::new();
            msgpack::to_json(&packed, &mut again).expect("and back again");
            assert_eq!(again, json, "the round trip changed the text");
            if let Ok(request) = message::parse(text) {
                if let message::Command::Publish { data, .. } = request.command {
                    msgpack::check_json(data.get().as_bytes())
                        .expect("publish data from MessagePack passes the check");
                }
            }
        }
        Err(Error::Unrepresentable(what)) => {
            assert!(json.is_empty(), "output left after an error");
            // Strict stops at the first problem; lossy reads on, and may
            // then find the bytes malformed further in.
            match lossy {
                Ok(lost) => {
                    assert!(
                        lost.is_some(),
                        "lossy lost nothing where strict refused {what:?}"
                    );
                    serde_json::from_slice::<IgnoredAny>(&lossy_json).expect("lossy JSON is JSON");
                }
                Err(Error::Malformed(_)) => assert!(lossy_json.is_empty()),
                Err(e) => panic!("lossy failed with {e:?}"),
            }
        }
        Err(Error::Malformed(_)) => {
            assert!(json.is_empty(), "output left after an error");
            assert!(
                matches!(lossy, Err(Error::Malformed(_))),
                "lossy read malformed input: {lossy:?}"
            );
        }
    }
}

fn check_as_json(data: &[u8]) {
    let mut packed = Vec::new();
    let converted = msgpack::from_json(data, &mut packed);
    assert_eq!(
        msgpack::check_json(data).is_ok(),
        converted.is_ok(),
        "check_json and from_json disagree"
    );
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    match converted {
        Ok(()) => {
            let mut back = Vec::new();
            msgpack::to_json(&packed, &mut back).expect("converted MessagePack reads back");
            let again: serde_json::Value =
                serde_json::from_slice(&back).expect("read back as JSON");
            assert_eq!(again, value, "the value changed on the way");
        }
        Err(Error::Unrepresentable(_)) => assert!(packed.is_empty()),
        Err(Error::Malformed(why)) => panic!("serde_json reads it, from_json: {why}"),
    }
}
