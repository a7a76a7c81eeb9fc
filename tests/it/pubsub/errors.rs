//! Every error code, and that a connection keeps working after one.

use serde_json::{json, Value};
use tungstenite::Message;

use crate::harness::TestServer;

use super::{ask, assert_error, publish, raw_field};

#[test]
fn invalid_json_is_reported_without_id_and_connection_stays_open() {
    let server = TestServer::start(&["--shards", "1"]);
    let (mut c, _) = server.ws_client();
    for text in [
        "{nope",
        "",
        "{\"type\":\"heartbeat\"",
        "{\"type\":\"heartbeat\"} extra",
        "{'type':'heartbeat'}",
    ] {
        assert_error(&mut c, text, "INVALID_JSON", None);
    }
    // The id cannot be read out of text that is not JSON, so none is echoed.
    assert_error(
        &mut c,
        r#"{"type":"heartbeat","id":5"#,
        "INVALID_JSON",
        None,
    );
    assert_error(
        &mut c,
        r#"{"type":"heartbeat","id":"a",}"#,
        "INVALID_JSON",
        None,
    );
}

#[test]
fn unknown_message_type_is_reported_with_and_without_id() {
    let server = TestServer::start(&["--shards", "1"]);
    let (mut c, _) = server.ws_client();
    assert_error(&mut c, r#"{"type":"dance"}"#, "UNKNOWN_MESSAGE_TYPE", None);
    assert_error(
        &mut c,
        r#"{"type":"","channel":"a"}"#,
        "UNKNOWN_MESSAGE_TYPE",
        None,
    );
    assert_error(
        &mut c,
        r#"{"type":"Subscribe","channel":"a"}"#,
        "UNKNOWN_MESSAGE_TYPE",
        None,
    );
    assert_error(
        &mut c,
        r#"{"type":"dance","id":1}"#,
        "UNKNOWN_MESSAGE_TYPE",
        Some("1"),
    );
    assert_error(
        &mut c,
        r#"{"id":"d-2","type":"dance"}"#,
        "UNKNOWN_MESSAGE_TYPE",
        Some(r#""d-2""#),
    );
}

#[test]
fn invalid_message_is_reported_for_non_objects_and_missing_or_mistyped_fields() {
    let server = TestServer::start(&["--shards", "1"]);
    let (mut c, _) = server.ws_client();
    let without_id = [
        "[1,2]",
        "\"subscribe\"",
        "42",
        "null",
        "true",
        "{}",
        r#"{"type":5}"#,
        r#"{"type":["subscribe"],"channel":"a"}"#,
        r#"{"type":"subscribe"}"#,
        r#"{"type":"subscribe","channel":3}"#,
        r#"{"type":"subscribe","channel":{"name":"a"}}"#,
        r#"{"type":"unsubscribe"}"#,
        r#"{"type":"unsubscribe","channel":false}"#,
        r#"{"type":"publish","channel":"a"}"#,
        r#"{"type":"publish","data":1}"#,
        r#"{"type":"publish","channel":["a"],"data":1}"#,
    ];
    for text in without_id {
        assert_error(&mut c, text, "INVALID_MESSAGE", None);
    }
    assert_error(&mut c, r#"{"id":3}"#, "INVALID_MESSAGE", Some("3"));
    assert_error(
        &mut c,
        r#"{"type":true,"id":4}"#,
        "INVALID_MESSAGE",
        Some("4"),
    );
    assert_error(
        &mut c,
        r#"{"type":"subscribe","id":9}"#,
        "INVALID_MESSAGE",
        Some("9"),
    );
    assert_error(
        &mut c,
        r#"{"type":"unsubscribe","channel":1,"id":"u"}"#,
        "INVALID_MESSAGE",
        Some(r#""u""#),
    );
    assert_error(
        &mut c,
        r#"{"type":"publish","channel":"a","id":"p"}"#,
        "INVALID_MESSAGE",
        Some(r#""p""#),
    );
    // An id that is neither a number nor a string is itself a wrongly typed field.
    for text in [
        r#"{"type":"heartbeat","id":true}"#,
        r#"{"type":"heartbeat","id":{"n":1}}"#,
        r#"{"type":"heartbeat","id":[1]}"#,
    ] {
        c.send_text(text);
        let reply = c.recv_json();
        assert_eq!(reply["type"], "error", "{text} -> {reply}");
        assert_eq!(reply["code"], "INVALID_MESSAGE", "{text} -> {reply}");
        c.assert_heartbeat_next();
    }
}

#[test]
fn invalid_channel_is_reported_for_every_request_type() {
    let server = TestServer::start(&["--shards", "1"]);
    let (mut c, _) = server.ws_client();
    let too_long = "x".repeat(256);
    let bad = [
        "",
        "a\nb",
        "tab\there",
        "nul\u{0}",
        "unit\u{1f}sep",
        "del\u{7f}",
    ];
    for channel in bad.iter().copied().chain([too_long.as_str()]) {
        for (kind, extra) in [
            ("subscribe", ""),
            ("unsubscribe", ""),
            ("publish", r#","data":1"#),
        ] {
            let ch = serde_json::to_string(channel).unwrap();
            let text = format!(r#"{{"type":"{kind}","channel":{ch}{extra}}}"#);
            assert_error(&mut c, &text, "INVALID_CHANNEL", None);
            let text = format!(r#"{{"type":"{kind}","channel":{ch}{extra},"id":"bad-{kind}"}}"#);
            assert_error(
                &mut c,
                &text,
                "INVALID_CHANNEL",
                Some(&format!(r#""bad-{kind}""#)),
            );
        }
    }
}

#[test]
fn channel_of_255_bytes_works_and_256_bytes_is_rejected() {
    let server = TestServer::start(&["--shards", "1"]);
    let (mut sub, _) = server.ws_client();
    let (mut publisher, _) = server.ws_client();
    // Bytes, not characters, are counted: 85 three-byte euro signs are 255 bytes.
    for channel in [
        "x".repeat(255),
        "€".repeat(85),
        format!("{}{}", "é".repeat(127), "x"),
    ] {
        assert_eq!(channel.len(), 255);
        sub.subscribe(&channel);
        let ack = ask(
            &mut publisher,
            &json!({"type":"publish","channel":channel,"data":1,"id":1}).to_string(),
        );
        assert_eq!(ack, json!({"type":"published","channel":channel,"id":1}));
        assert_eq!(
            sub.recv_json(),
            json!({"type":"message","channel":channel,"data":1})
        );
    }
    // The limit applies to the decoded name, not to its escaped JSON text.
    let escaped = format!(
        r#"{{"type":"subscribe","channel":"{}","id":2}}"#,
        "\\u0061".repeat(255)
    );
    sub.send_text(&escaped);
    assert_eq!(
        sub.recv_json(),
        json!({"type":"subscribed","channel":"a".repeat(255),"id":2})
    );
    for channel in ["x".repeat(256), "é".repeat(128), "€".repeat(86)] {
        let text = json!({"type":"subscribe","channel":channel,"id":3}).to_string();
        assert_error(&mut sub, &text, "INVALID_CHANNEL", Some("3"));
        let text = json!({"type":"publish","channel":channel,"data":1}).to_string();
        assert_error(&mut publisher, &text, "INVALID_CHANNEL", None);
    }
}

#[test]
fn too_many_channels_is_reported_and_connection_keeps_working() {
    let server = TestServer::start(&["--shards", "1", "--max-channels-per-connection", "3"]);
    let (mut c, _) = server.ws_client();
    let (mut publisher, _) = server.ws_client();
    for channel in ["a", "b", "c"] {
        c.subscribe(channel);
    }
    assert_error(
        &mut c,
        r#"{"type":"subscribe","channel":"d"}"#,
        "TOO_MANY_CHANNELS",
        None,
    );
    assert_error(
        &mut c,
        r#"{"type":"subscribe","channel":"d","id":44}"#,
        "TOO_MANY_CHANNELS",
        Some("44"),
    );
    // Re-subscribing to a channel it already has is not a new channel.
    c.subscribe("a");
    // The refused channel was not subscribed; the others still deliver.
    publish(&mut publisher, "d", &json!("lost"));
    publish(&mut publisher, "c", &json!("kept"));
    assert_eq!(
        c.recv_json(),
        json!({"type":"message","channel":"c","data":"kept"})
    );
    c.assert_heartbeat_next();
    // Leaving one channel makes room for another.
    assert_eq!(
        ask(&mut c, r#"{"type":"unsubscribe","channel":"a"}"#),
        json!({"type":"unsubscribed","channel":"a"})
    );
    c.subscribe("d");
    publish(&mut publisher, "d", &json!("found"));
    assert_eq!(
        c.recv_json(),
        json!({"type":"message","channel":"d","data":"found"})
    );
    assert_error(
        &mut c,
        r#"{"type":"subscribe","channel":"e","id":"e"}"#,
        "TOO_MANY_CHANNELS",
        Some(r#""e""#),
    );
}

#[test]
fn binary_frame_is_rejected_and_connection_stays_open() {
    let server = TestServer::start(&["--shards", "1"]);
    let (mut c, _) = server.ws_client();
    c.subscribe("after-binary");
    let (mut publisher, _) = server.ws_client();
    let payloads: [&[u8]; 3] = [b"\x00\x01\xff", b"", br#"{"type":"heartbeat","id":1}"#];
    for payload in payloads {
        c.ws.send(Message::binary(payload.to_vec()))
            .expect("send binary");
        let text = c.recv_text();
        let reply: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(reply["type"], "error", "{text}");
        assert_eq!(reply["code"], "BINARY_NOT_SUPPORTED", "{text}");
        assert!(
            reply["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{text}"
        );
        assert_eq!(
            raw_field(&text, "id"),
            None,
            "binary frames carry no readable id: {text}"
        );
        c.assert_heartbeat_next();
    }
    publish(&mut publisher, "after-binary", &json!(1));
    assert_eq!(
        c.recv_json(),
        json!({"type":"message","channel":"after-binary","data":1})
    );
}

#[test]
fn errors_leave_subscriptions_in_place() {
    let server = TestServer::start(&["--shards", "1"]);
    let (mut c, _) = server.ws_client();
    c.subscribe("steady");
    let (mut publisher, _) = server.ws_client();
    for text in [
        "{",
        r#"{"type":"x"}"#,
        "[]",
        r#"{"type":"subscribe","channel":""}"#,
    ] {
        c.send_text(text);
        assert_eq!(c.recv_json()["type"], "error");
    }
    c.ws.send(Message::binary(vec![1u8])).expect("send binary");
    assert_eq!(c.recv_json()["code"], "BINARY_NOT_SUPPORTED");
    publish(&mut publisher, "steady", &json!("still here"));
    assert_eq!(
        c.recv_json(),
        json!({"type":"message","channel":"steady","data":"still here"})
    );
}
