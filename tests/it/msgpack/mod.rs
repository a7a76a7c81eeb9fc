//! MessagePack on /ws (`Sec-WebSocket-Protocol: corecast.msgpack`): the
//! negotiation, the protocol in binary frames with JSON's fields, the
//! `data` mapping between JSON and MessagePack clients of one channel,
//! what has no exact form on the other side, errors, history and
//! recovery, and one conversion per publish per shard.
//!
//! The client is tungstenite's; MessagePack is made and read with
//! rmp-serde (to and from `serde_json::Value`, whose numbers keep integer
//! and float apart, so a comparison checks the types too) and rmpv (for
//! what JSON cannot hold: bin, ext, integer keys).

use serde_json::{json, Value};

use crate::harness::{post, Client, RawClient, TestServer};

mod data;
mod errors;
mod history;
mod negotiation;

/// The subprotocol that selects MessagePack.
pub(crate) const MSGPACK: &str = "corecast.msgpack";

/// `value` as MessagePack bytes (maps with string keys, as JSON objects).
pub(crate) fn encode(value: &Value) -> Vec<u8> {
    rmp_serde::to_vec(value).expect("a JSON value encodes")
}

/// MessagePack `bytes` as the JSON value with the same fields.
pub(crate) fn decode(bytes: &[u8]) -> Value {
    rmp_serde::from_slice(bytes).unwrap_or_else(|e| panic!("not MessagePack ({e}): {bytes:x?}"))
}

/// A /ws client that asked for MessagePack and got it (tungstenite checks
/// the 101 names it); returns it with its greeting.
pub(crate) fn msgpack_client(server: &TestServer) -> (MsgPackClient, Value) {
    let ws = Client::connect_with_headers(
        &server.addr(),
        "/ws",
        &[("Sec-WebSocket-Protocol", MSGPACK)],
    );
    let mut c = MsgPackClient(ws);
    let hello = c.recv();
    assert_eq!(hello["type"], "connection_established", "{hello}");
    (c, hello)
}

/// A tungstenite client speaking MessagePack in binary frames.
pub(crate) struct MsgPackClient(pub Client);

impl MsgPackClient {
    /// Sends `value` as one MessagePack binary message.
    pub(crate) fn send(&mut self, value: &Value) {
        self.send_bytes(&encode(value));
    }

    /// Sends raw bytes as one binary message.
    pub(crate) fn send_bytes(&mut self, bytes: &[u8]) {
        self.0
            .ws
            .send(tungstenite::Message::binary(bytes.to_vec()))
            .expect("send binary");
    }

    /// The next message, which must be binary, undecoded.
    pub(crate) fn recv_bytes(&mut self) -> Vec<u8> {
        self.0.recv_binary()
    }

    /// The next message, which must be binary MessagePack, as JSON.
    pub(crate) fn recv(&mut self) -> Value {
        decode(&self.recv_bytes())
    }

    /// Sends `request` and returns the next message.
    pub(crate) fn ask(&mut self, request: Value) -> Value {
        self.send(&request);
        self.recv()
    }

    /// Subscribes and checks the reply.
    pub(crate) fn subscribe(&mut self, channel: &str) {
        let reply = self.ask(json!({"type":"subscribe","channel":channel}));
        assert_eq!(
            reply,
            json!({"type":"subscribed","channel":channel}),
            "{reply}"
        );
    }

    /// Proves the connection is open and nothing is queued for it.
    pub(crate) fn assert_heartbeat_next(&mut self) {
        assert_eq!(
            self.ask(json!({"type":"heartbeat","id":"probe"})),
            json!({"type":"heartbeat","id":"probe"}),
            "something arrived before the heartbeat reply"
        );
    }
}

/// corecast_converted_frames_total over every shard.
pub(crate) fn conversions(server: &TestServer) -> u64 {
    server.counter("corecast_converted_frames_total")
}

#[test]
fn subscribe_publish_ack_and_message_round_trip() {
    let server = TestServer::start(&["--shards", "2"]);
    let (mut c, hello) = msgpack_client(&server);
    assert!(hello["connection_id"].is_string(), "{hello}");
    c.subscribe("mp");
    let data = json!({"n": 1, "f": 2.5, "s": "é\"", "a": [true, null, -7], "o": {}});
    let ack = c.ask(json!({"type":"publish","channel":"mp","data":data,"id":5}));
    // The message and the ack, in either order (the ack goes out from the
    // poll, the message from the flush pass).
    let next = c.recv();
    let (message, ack) = if ack["type"] == "message" {
        (ack, next)
    } else {
        (next, ack)
    };
    assert_eq!(ack, json!({"type":"published","channel":"mp","id":5}));
    assert_eq!(
        message,
        json!({"type":"message","channel":"mp","data":data})
    );
    let reply = c.ask(json!({"type":"unsubscribe","channel":"mp","id":"u"}));
    assert_eq!(
        reply,
        json!({"type":"unsubscribed","channel":"mp","id":"u"})
    );
    c.assert_heartbeat_next();
}

#[test]
fn one_conversion_per_publish_per_shard() {
    let server = TestServer::start(&["--shards", "1"]);
    let mut subscribers: Vec<MsgPackClient> = (0..5)
        .map(|_| {
            let (mut c, _) = msgpack_client(&server);
            c.subscribe("many");
            c
        })
        .collect();
    let (mut publisher, _) = server.ws_client();
    let before = conversions(&server);
    for i in 0..3 {
        crate::pubsub::publish_acked(&mut publisher, "many", &json!({ "i": i }));
        for c in &mut subscribers {
            assert_eq!(
                c.recv(),
                json!({"type":"message","channel":"many","data":{"i":i}})
            );
        }
    }
    assert_eq!(
        conversions(&server) - before,
        3,
        "one conversion per publish for the five subscribers"
    );
}

#[test]
fn admin_publish_reaches_msgpack_subscribers() {
    let server = TestServer::start(&["--shards", "2"]);
    let (mut c, _) = msgpack_client(&server);
    c.subscribe("adm");
    let response = post(
        server.admin_addr(),
        "/api/publish",
        r#"{"channel":"adm","data":[1,2.0,"x"]}"#,
    );
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        c.recv(),
        json!({"type":"message","channel":"adm","data":[1,2.0,"x"]})
    );
}

/// A raw client on /ws that offered `protocols` (one header each); returns
/// it and the response head.
pub(crate) fn raw_with_protocols(server: &TestServer, protocols: &[&str]) -> (RawClient, String) {
    let lines: Vec<String> = protocols
        .iter()
        .map(|p| format!("Sec-WebSocket-Protocol: {p}"))
        .collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    RawClient::connect_with(&server.addr(), "/ws", &lines)
}
