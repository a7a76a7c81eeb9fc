//! `Sec-WebSocket-Protocol` on the upgrade: the first offered protocol the
//! server speaks wins and is echoed; none known means JSON and no header.

use super::*;
use crate::harness::RawFrame;

/// The 101's Sec-WebSocket-Protocol value, if any.
fn protocol(head: &str) -> Option<String> {
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    head.lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Protocol: "))
        .map(str::to_owned)
}

/// The next frame that is not a ping.
fn next_data(c: &mut RawClient) -> RawFrame {
    loop {
        let frame = c.read_frame().expect("a frame");
        if frame.opcode != 0x9 {
            return frame;
        }
    }
}

#[test]
fn the_first_offered_protocol_the_server_speaks_is_chosen() {
    let server = TestServer::start(&["--shards", "1"]);
    let cases: &[(&[&str], Option<&str>)] = &[
        (&["corecast.msgpack"], Some("corecast.msgpack")),
        (&["corecast.json"], Some("corecast.json")),
        (
            &["chat, corecast.msgpack, corecast.json"],
            Some("corecast.msgpack"),
        ),
        (&["corecast.json,corecast.msgpack"], Some("corecast.json")),
        (&["chat", "corecast.msgpack"], Some("corecast.msgpack")),
        (&[" corecast.msgpack "], Some("corecast.msgpack")),
        // Names are case-sensitive (RFC 6455 4.1: a token compared as is).
        (&["Corecast.MsgPack"], None),
        (&["chat, superchat"], None),
        (&[""], None),
        (&[], None),
    ];
    for (offers, want) in cases {
        let (mut c, head) = raw_with_protocols(&server, offers);
        assert_eq!(protocol(&head).as_deref(), *want, "offers {offers:?}");
        let greeting = next_data(&mut c);
        if *want == Some(MSGPACK) {
            assert_eq!(greeting.opcode, 0x2, "MessagePack goes in binary frames");
            assert_eq!(decode(&greeting.payload)["type"], "connection_established");
        } else {
            assert_eq!(greeting.opcode, 0x1, "JSON in text frames: {offers:?}");
            let hello: Value = serde_json::from_slice(&greeting.payload).unwrap();
            assert_eq!(hello["type"], "connection_established");
        }
    }
}

#[test]
fn echo_ignores_the_subprotocol() {
    let server = TestServer::start(&["--shards", "1"]);
    let (mut c, head) = RawClient::connect_with(
        &server.addr(),
        "/echo",
        &["Sec-WebSocket-Protocol: corecast.msgpack"],
    );
    assert_eq!(protocol(&head), None, "{head}");
    c.send_frame(0x81, b"plain text", true);
    let frame = next_data(&mut c);
    assert_eq!(
        (frame.opcode, &frame.payload[..]),
        (0x1, &b"plain text"[..])
    );
}
