//! The /ws JSON protocol: greeting, subscribe/unsubscribe/publish, ids,
//! heartbeat, and every error code.
//!
//! Absence is proven by ordering, never by waiting: a heartbeat's reply (or
//! a later publish) arriving next shows that nothing was queued before it.
//! The helpers at the bottom are shared with cross_shard.rs.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::{json, Value};
use tungstenite::Message;

use crate::harness::{Client, TestServer, WAIT};

#[test]
fn publish_reaches_subscriber_and_publisher_gets_ack() {
    let server = TestServer::start(&["--shards", "1"]);
    let (mut sub, hello) = server.ws_client();
    assert_eq!(hello["shard"], 0);
    assert!(hello["connection_id"].is_string());
    sub.subscribe("news");
    let (mut publisher, _) = server.ws_client();
    publisher.send_json(&json!({"type":"publish","channel":"news","data":{"n":1,"s":"x"},"id":7}));
    let ack = publisher.recv_json();
    assert_eq!(ack, json!({"type":"published","channel":"news","id":7}));
    let msg = sub.recv_json();
    assert_eq!(
        msg,
        json!({"type":"message","channel":"news","data":{"n":1,"s":"x"}})
    );
}

#[test]
fn each_connection_gets_a_distinct_connection_id() {
    let server = TestServer::start(&["--shards", "1"]);
    let ids: Vec<String> = (0..5)
        .map(|_| {
            let (_client, hello) = server.ws_client();
            assert_eq!(hello["shard"], 0, "{hello}");
            hello["connection_id"]
                .as_str()
                .expect("connection_id is a string")
                .to_string()
        })
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "connection ids repeat: {ids:?}");
}

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

#[test]
fn ids_of_every_request_are_echoed_verbatim() {
    let server = TestServer::start(&["--shards", "1"]);
    let (mut c, _) = server.ws_client();
    let ids = [
        "7",
        "0",
        "-3",
        "1.5e3",
        "12345678901234567890",
        r#""abc""#,
        r#""""#,
        r#""q\"\\ü\u00e9😀""#,
    ];
    for id in ids {
        let requests = [
            (
                format!(r#"{{"type":"subscribe","channel":"ids","id":{id}}}"#),
                "subscribed",
            ),
            (
                format!(r#"{{"type":"publish","channel":"ids","data":0,"id":{id}}}"#),
                "published",
            ),
            (
                format!(r#"{{"type":"unsubscribe","channel":"ids","id":{id}}}"#),
                "unsubscribed",
            ),
            (format!(r#"{{"id":{id},"type":"heartbeat"}}"#), "heartbeat"),
        ];
        for (request, kind) in requests {
            c.send_text(&request);
            let mut text = c.recv_text();
            if kind == "published" {
                // The publisher is subscribed, so its own message may come first.
                if serde_json::from_str::<Value>(&text).unwrap()["type"] == "message" {
                    text = c.recv_text();
                }
            }
            let reply: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(reply["type"], kind, "{request} -> {text}");
            assert_eq!(
                raw_field(&text, "id"),
                Some(id.to_string()),
                "{request} -> {text}"
            );
        }
    }
    // Without an id, replies carry none.
    assert_eq!(
        ask(&mut c, r#"{"type":"heartbeat"}"#),
        json!({"type":"heartbeat"})
    );
    assert_eq!(
        ask(&mut c, r#"{"type":"subscribe","channel":"n"}"#),
        json!({"type":"subscribed","channel":"n"})
    );
    assert_eq!(
        ask(&mut c, r#"{"type":"unsubscribe","channel":"n"}"#),
        json!({"type":"unsubscribed","channel":"n"})
    );
}

#[test]
fn data_of_every_json_type_is_delivered_byte_for_byte() {
    let server = TestServer::start(&["--shards", "1"]);
    let (mut sub, _) = server.ws_client();
    sub.subscribe("raw");
    let (mut publisher, _) = server.ws_client();
    let values = [
        r#"{"a" : [1, 2.50e3]}"#,
        r#"{ }"#,
        r#"{"nested":{"deep":[[[{"x":[]}]]]},"b":false}"#,
        r#"[ 1 ,"x" , null,true ]"#,
        r#"[]"#,
        r#""he said \"hi\"\\ \/ \n\t \u00e9 é 日本 😀 \ud83d\ude00""#,
        r#""""#,
        r#"0"#,
        r#"-0.0"#,
        r#"1.5E-7"#,
        r#"2.50e3"#,
        r#"123456789012345678901234567890"#,
        r#"true"#,
        r#"false"#,
        r#"null"#,
    ];
    for data in values {
        let request = format!(r#"{{"type":"publish","channel":"raw","data":{data},"id":1}}"#);
        let ack = ask(&mut publisher, &request);
        assert_eq!(
            ack,
            json!({"type":"published","channel":"raw","id":1}),
            "{request}"
        );
        let text = sub.recv_text();
        assert_eq!(
            raw_field(&text, "data"),
            Some(data.to_string()),
            "data was altered: {text}"
        );
        let msg: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(msg["type"], "message", "{text}");
        assert_eq!(msg["channel"], "raw", "{text}");
    }
    sub.assert_heartbeat_next();
}

#[test]
fn channel_names_with_quotes_backslashes_and_unicode_round_trip() {
    let server = TestServer::start(&["--shards", "1"]);
    let (mut sub, _) = server.ws_client();
    let (mut publisher, _) = server.ws_client();
    let names = [
        r#"a"b"#,
        r"back\slash",
        r"\u0041",
        "ü/日本/😀",
        "sp ace",
        r#"{"json":1}"#,
        "'single'",
    ];
    for name in names {
        sub.subscribe(name);
        let ack = ask(
            &mut publisher,
            &json!({"type":"publish","channel":name,"data":name,"id":0}).to_string(),
        );
        assert_eq!(ack, json!({"type":"published","channel":name,"id":0}));
        assert_eq!(
            sub.recv_json(),
            json!({"type":"message","channel":name,"data":name})
        );
    }
    // A name is the decoded string: an escaped spelling is the same channel.
    sub.subscribe("é😀");
    publisher.send_text(r#"{"type":"publish","channel":"\u00e9\ud83d\ude00","data":1}"#);
    assert_eq!(
        sub.recv_json(),
        json!({"type":"message","channel":"é😀","data":1})
    );
    let reply = ask(
        &mut sub,
        r#"{"type":"unsubscribe","channel":"\u00e9\ud83d\ude00"}"#,
    );
    assert_eq!(reply, json!({"type":"unsubscribed","channel":"é😀"}));
    // Acked, so the heartbeat below is handled after the publish.
    publish_acked(&mut publisher, "é😀", &json!(2));
    sub.assert_heartbeat_next();
}

#[test]
fn subscribing_twice_delivers_each_message_once() {
    let server = TestServer::start(&["--shards", "1"]);
    let (mut sub, _) = server.ws_client();
    sub.subscribe("twice");
    let again = ask(&mut sub, r#"{"type":"subscribe","channel":"twice","id":2}"#);
    assert_eq!(again, json!({"type":"subscribed","channel":"twice","id":2}));
    let (mut publisher, _) = server.ws_client();
    publish(&mut publisher, "twice", &json!("one"));
    publish(&mut publisher, "twice", &json!("two"));
    assert_eq!(
        sub.recv_json(),
        json!({"type":"message","channel":"twice","data":"one"})
    );
    assert_eq!(
        sub.recv_json(),
        json!({"type":"message","channel":"twice","data":"two"})
    );
    sub.assert_heartbeat_next();
    // One unsubscribe undoes both subscribes.
    assert_eq!(
        ask(&mut sub, r#"{"type":"unsubscribe","channel":"twice"}"#)["type"],
        "unsubscribed"
    );
    publish(&mut publisher, "twice", &json!("gone"));
    publish_acked(&mut publisher, "twice", &json!("gone too"));
    sub.assert_heartbeat_next();
}

#[test]
fn unsubscribe_stops_delivery_and_leaves_other_channels() {
    let server = TestServer::start(&["--shards", "1"]);
    let (mut sub, _) = server.ws_client();
    sub.subscribe("left");
    sub.subscribe("kept");
    let (mut publisher, _) = server.ws_client();
    let reply = ask(
        &mut sub,
        r#"{"type":"unsubscribe","channel":"left","id":1}"#,
    );
    assert_eq!(
        reply,
        json!({"type":"unsubscribed","channel":"left","id":1})
    );
    publish(&mut publisher, "left", &json!("not for you"));
    publish(&mut publisher, "kept", &json!("for you"));
    // Same publisher, so "left" would have arrived first had it been delivered.
    assert_eq!(
        sub.recv_json(),
        json!({"type":"message","channel":"kept","data":"for you"})
    );
    sub.assert_heartbeat_next();
    // Unsubscribing from a channel never joined is answered the same way.
    let reply = ask(&mut sub, r#"{"type":"unsubscribe","channel":"never"}"#);
    assert_eq!(reply, json!({"type":"unsubscribed","channel":"never"}));
    // And a channel can be joined again.
    sub.subscribe("left");
    publish(&mut publisher, "left", &json!("back"));
    assert_eq!(
        sub.recv_json(),
        json!({"type":"message","channel":"left","data":"back"})
    );
}

#[test]
fn publish_without_id_gets_no_ack() {
    let server = TestServer::start(&["--shards", "1"]);
    let (mut sub, _) = server.ws_client();
    sub.subscribe("quiet");
    let (mut publisher, _) = server.ws_client();
    publish(&mut publisher, "quiet", &json!({"k":1}));
    publish(&mut publisher, "nobody-listens", &json!({"k":2}));
    publisher.assert_heartbeat_next();
    assert_eq!(
        sub.recv_json(),
        json!({"type":"message","channel":"quiet","data":{"k":1}})
    );
    // With an id, a publish to a channel nobody listens to is still acknowledged.
    let ack = ask(
        &mut publisher,
        r#"{"type":"publish","channel":"nobody-listens","data":3,"id":"z"}"#,
    );
    assert_eq!(
        ack,
        json!({"type":"published","channel":"nobody-listens","id":"z"})
    );
}

#[test]
fn publisher_subscribed_to_its_own_channel_receives_its_message_once() {
    let server = TestServer::start(&["--shards", "1"]);
    let (mut c, _) = server.ws_client();
    c.subscribe("self");
    publish(&mut c, "self", &json!("no id"));
    assert_eq!(
        c.recv_json(),
        json!({"type":"message","channel":"self","data":"no id"})
    );
    c.assert_heartbeat_next();
    c.send_json(&json!({"type":"publish","channel":"self","data":"with id","id":5}));
    let mut got = vec![c.recv_json(), c.recv_json()];
    got.sort_by_key(|v| v["type"].as_str().unwrap_or_default().to_string());
    assert_eq!(
        got,
        vec![
            json!({"type":"message","channel":"self","data":"with id"}),
            json!({"type":"published","channel":"self","id":5}),
        ]
    );
    c.assert_heartbeat_next();
}

#[test]
fn messages_from_one_publisher_arrive_in_publish_order() {
    let server = TestServer::start(&["--shards", "1"]);
    let (mut sub, _) = server.ws_client();
    sub.subscribe("ordered");
    let (mut publisher, _) = server.ws_client();
    const N: u64 = 1000;
    for seq in 0..N {
        publish(&mut publisher, "ordered", &json!({"seq":seq}));
    }
    for seq in 0..N {
        let msg = sub.recv_json();
        assert_eq!(msg["type"], "message", "{msg}");
        assert_eq!(msg["data"]["seq"], seq, "expected seq {seq}, got {msg}");
    }
    sub.assert_heartbeat_next();
}

#[test]
fn publishing_still_works_after_subscribers_disconnect() {
    let server = TestServer::start(&["--shards", "1"]);
    let (mut stays, _) = server.ws_client();
    stays.subscribe("room");
    let (mut dropped, _) = server.ws_client();
    dropped.subscribe("room");
    let (mut closed, _) = server.ws_client();
    closed.subscribe("room");
    let (mut publisher, _) = server.ws_client();
    publish_acked(&mut publisher, "room", &json!("before"));
    for c in [&mut stays, &mut dropped, &mut closed] {
        assert_eq!(
            c.recv_json(),
            json!({"type":"message","channel":"room","data":"before"})
        );
    }

    drop(dropped); // TCP FIN without a close frame.
    closed.ws.close(None).expect("send close");
    assert_eq!(closed.expect_close(), 1005);
    drop(closed);
    // Both connections are gone from the server before anything is published.
    let gone = server.wait_for_log_count("closed conn=", 2, WAIT);
    assert!(gone.is_some(), "{}", server.log_text());

    publish_acked(&mut publisher, "room", &json!("after"));
    assert_eq!(
        stays.recv_json(),
        json!({"type":"message","channel":"room","data":"after"})
    );
    let (mut newcomer, _) = server.ws_client();
    newcomer.subscribe("room");
    publish_acked(&mut publisher, "room", &json!("later"));
    for c in [&mut stays, &mut newcomer] {
        assert_eq!(
            c.recv_json(),
            json!({"type":"message","channel":"room","data":"later"})
        );
        c.assert_heartbeat_next();
    }
}

// ---- helpers (also used by cross_shard.rs) ----

/// Sends one request's text and returns the next message.
pub(crate) fn ask(c: &mut Client, request: &str) -> Value {
    c.send_text(request);
    c.recv_json()
}

/// Publishes without an id (so no reply comes back).
pub(crate) fn publish(c: &mut Client, channel: &str, data: &Value) {
    c.send_json(&json!({"type":"publish","channel":channel,"data":data}));
}

/// Publishes with an id and waits for the ack; the publisher must not be
/// subscribed to `channel`.
pub(crate) fn publish_acked(c: &mut Client, channel: &str, data: &Value) {
    let ack = ask(
        c,
        &json!({"type":"publish","channel":channel,"data":data,"id":"ack"}).to_string(),
    );
    assert_eq!(
        ack,
        json!({"type":"published","channel":channel,"id":"ack"})
    );
}

/// The raw JSON text of a top-level field of `text`, exactly as sent.
pub(crate) fn raw_field(text: &str, field: &str) -> Option<String> {
    let fields: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not a JSON object ({e}): {text}"));
    fields.get(field).map(|raw| raw.get().to_string())
}

/// Sends `request`, expects an error reply with `code` and the raw `id` (or
/// none), then proves the connection still works.
fn assert_error(c: &mut Client, request: &str, code: &str, id: Option<&str>) {
    c.send_text(request);
    let text = c.recv_text();
    let reply: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(reply["type"], "error", "{request} -> {text}");
    assert_eq!(reply["code"], code, "{request} -> {text}");
    assert!(
        reply["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{request} -> {text}"
    );
    assert_eq!(raw_field(&text, "id").as_deref(), id, "{request} -> {text}");
    c.assert_heartbeat_next();
}
