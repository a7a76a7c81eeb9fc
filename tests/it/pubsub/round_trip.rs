//! Ids, data and channel names come back exactly as sent.

use serde_json::{json, Value};

use crate::harness::TestServer;

use super::{ask, publish_acked, raw_field};

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
        // The 64-bit extremes (wider integers have no exact MessagePack
        // form and are refused: msgpack::data).
        r#"18446744073709551615"#,
        r#"-9223372036854775808"#,
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
