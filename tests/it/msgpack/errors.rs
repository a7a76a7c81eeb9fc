//! Errors to a MessagePack client come in MessagePack, with JSON's fields;
//! text frames and bytes that are not MessagePack get their own codes.

use super::*;

/// Sends `bytes`, expects an error with `code` (and `id`, or none), then
/// proves the connection still works.
fn assert_error(c: &mut MsgPackClient, bytes: &[u8], code: &str, id: Option<Value>) {
    c.send_bytes(bytes);
    let reply = c.recv();
    assert_eq!(reply["type"], "error", "{bytes:x?} -> {reply}");
    assert_eq!(reply["code"], code, "{bytes:x?} -> {reply}");
    assert!(
        reply["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{reply}"
    );
    assert_eq!(reply.get("id").cloned(), id, "{reply}");
    c.assert_heartbeat_next();
}

#[test]
fn request_errors_come_in_msgpack() {
    let server = TestServer::start(&["--shards", "1"]);
    let (mut c, _) = msgpack_client(&server);
    let cases = [
        (
            json!({"type":"dance","id":3}),
            "UNKNOWN_MESSAGE_TYPE",
            Some(json!(3)),
        ),
        (
            json!({"type":"subscribe","id":"s"}),
            "INVALID_MESSAGE",
            Some(json!("s")),
        ),
        (
            json!({"type":"subscribe","channel":"","id":4}),
            "INVALID_CHANNEL",
            Some(json!(4)),
        ),
        (
            json!({"type":"publish","channel":"c"}),
            "INVALID_MESSAGE",
            None,
        ),
        (json!(["subscribe", "c"]), "INVALID_MESSAGE", None),
        (json!("hello"), "INVALID_MESSAGE", None),
    ];
    for (request, code, id) in cases {
        assert_error(&mut c, &encode(&request), code, id);
    }
}

#[test]
fn bytes_that_are_not_msgpack_are_invalid_msgpack() {
    let server = TestServer::start(&["--shards", "1"]);
    let (mut c, _) = msgpack_client(&server);
    let mut truncated = encode(&json!({"type":"heartbeat"}));
    truncated.pop();
    let mut trailing = encode(&json!({"type":"heartbeat"}));
    trailing.push(0xc0);
    let mut deep = vec![0x91; 200];
    deep.push(0xc0);
    // An integer key (no JSON form) first, then a string that is not
    // UTF-8: malformed wins over unrepresentable.
    let both = vec![0x82, 0x01, 0x02, 0xa2, 0xff, 0xfe, 0xc0];
    for bytes in [vec![0xc1], truncated, trailing, deep, vec![], both] {
        assert_error(&mut c, &bytes, "INVALID_MSGPACK", None);
    }
}

#[test]
fn a_text_frame_from_a_msgpack_client_is_refused() {
    let server = TestServer::start(&["--shards", "1"]);
    let (mut c, _) = msgpack_client(&server);
    c.0.send_text(r#"{"type":"heartbeat"}"#);
    let reply = c.recv();
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], "TEXT_NOT_SUPPORTED", "{reply}");
    c.assert_heartbeat_next();
}
