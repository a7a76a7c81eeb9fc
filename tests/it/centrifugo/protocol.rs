//! The wire of /connection/websocket without the SDK: Centrifugo's codes,
//! server pings, the Protobuf subprotocol, and one conversion per encoding
//! per publish per shard.

use serde_json::{json, Value};
use tungstenite::Message;

use super::server;
use crate::auth::token_for;
use crate::harness::{get, Client};

const PATH: &str = "/connection/websocket";

fn json_client(addr: &str) -> Client {
    Client::connect(addr, PATH, None)
}

fn protobuf_client(addr: &str) -> Client {
    // tungstenite fails the handshake unless the answer names the protocol.
    Client::connect_with_headers(
        addr,
        PATH,
        &[("Sec-WebSocket-Protocol", "centrifuge-protobuf")],
    )
}

/// Sends a batch of JSON commands in one frame.
fn send(c: &mut Client, commands: &[Value]) {
    let text: Vec<String> = commands.iter().map(Value::to_string).collect();
    c.send_text(&text.join("\n"));
}

/// The next reply that is not a ping.
fn reply(c: &mut Client) -> Value {
    loop {
        let v: Value = serde_json::from_str(&c.recv_text()).unwrap();
        if v != json!({}) {
            return v;
        }
    }
}

fn connect(c: &mut Client, token: &str) -> Value {
    send(c, &[json!({"id": 1, "connect": {"token": token}})]);
    let r = reply(c);
    assert_eq!(r["id"], 1, "{r}");
    r
}

#[test]
fn connect_result_names_the_client_and_the_ping_interval() {
    let server = server(&["--ping-interval", "1s"]);
    let mut c = json_client(&server.addr());
    let r = connect(&mut c, &token_for("ann"));
    let result = &r["connect"];
    assert!(result["client"].as_str().unwrap().contains('-'), "{r}");
    assert!(result["version"].as_str().unwrap().starts_with("corecast"));
    assert_eq!(
        (&result["ping"], &result["pong"]),
        (&json!(1), &json!(true))
    );
    assert_eq!(result["expires"], true, "the token has an exp");
    assert!(result["ttl"].as_u64().unwrap() <= 3600);
    // The server's ping is an empty reply.
    assert_eq!(c.recv_text(), "{}");
    c.send_text("{}");
}

#[test]
fn a_command_before_connect_is_a_bad_request() {
    let server = server(&[]);
    let mut c = json_client(&server.addr());
    send(&mut c, &[json!({"id": 1, "subscribe": {"channel": "a"}})]);
    assert_eq!(c.read_close(), (3501, "bad request".to_string()));
}

#[test]
fn malformed_commands_are_a_bad_request() {
    let server = server(&[]);
    for bad in ["[1]", "{\"id\":", "{\"id\":2}"] {
        let mut c = json_client(&server.addr());
        connect(&mut c, "");
        c.send_text(bad);
        assert_eq!(c.expect_close(), 3501, "{bad}");
    }
}

#[test]
fn an_invalid_token_closes_without_reconnect_advice() {
    let server = server(&[]);
    let mut c = json_client(&server.addr());
    send(
        &mut c,
        &[json!({"id": 1, "connect": {"token": "not.a.jwt"}})],
    );
    // 3500-3999: the SDK does not reconnect.
    assert_eq!(c.expect_close(), 3500);
}

#[test]
fn unsupported_requests_answer_not_available() {
    let server = server(&[]);
    let mut c = json_client(&server.addr());
    connect(&mut c, "");
    send(
        &mut c,
        &[
            json!({"id": 2, "rpc": {"method": "m"}}),
            json!({"id": 3, "sub_refresh": {"channel": "a", "token": "t"}}),
            json!({"id": 4, "subscribe": {"channel": "a", "token": "t"}}),
            json!({"id": 5, "publish": {"channel": "a", "data": 1, "type": 1}}),
            json!({"send": {"data": {}}}),
            json!({"id": 6, "subscribe": {"channel": "a"}}),
        ],
    );
    for id in 2..=5 {
        let r = reply(&mut c);
        assert_eq!(
            (&r["id"], &r["error"]["code"]),
            (&json!(id), &json!(108)),
            "{r}"
        );
    }
    // `send` has no reply; the batch goes on after it.
    let r = reply(&mut c);
    assert_eq!(r, json!({"id": 6, "subscribe": {}}));
    send(&mut c, &[json!({"id": 7, "subscribe": {"channel": "a"}})]);
    assert_eq!(reply(&mut c)["error"]["code"], 105, "already subscribed");
}

#[test]
fn permission_errors_carry_centrifugo_codes() {
    let server = server(&[]);
    let mut c = json_client(&server.addr());
    connect(&mut c, &token_for("ann"));
    send(
        &mut c,
        &[
            json!({"id": 2, "subscribe": {"channel": "#bob"}}),
            json!({"id": 3, "subscribe": {"channel": "nope:x"}}),
            json!({"id": 4, "presence": {"channel": "plain"}}),
            json!({"id": 5, "publish": {"channel": "plain"}}),
        ],
    );
    assert_eq!(
        reply(&mut c)["error"]["code"],
        103,
        "another user's channel"
    );
    assert_eq!(reply(&mut c)["error"]["code"], 102, "unknown namespace");
    assert_eq!(reply(&mut c)["error"]["code"], 108, "no presence there");
    assert_eq!(
        reply(&mut c)["error"]["code"],
        107,
        "a publish without data"
    );
}

/// Protobuf helpers: just enough of the encoding to build commands.
fn varint(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn field(tag: u64, payload: &[u8], out: &mut Vec<u8>) {
    varint(tag << 3 | 2, out);
    varint(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

/// A length-delimited command: `id`, and request `tag` holding `channel`.
fn command(id: u64, tag: u64, channel: &str) -> Vec<u8> {
    let mut request = Vec::new();
    if !channel.is_empty() {
        field(1, channel.as_bytes(), &mut request);
    }
    let mut cmd = Vec::new();
    varint(8, &mut cmd); // field 1 (id), varint
    varint(id, &mut cmd);
    field(tag, &request, &mut cmd);
    let mut out = Vec::new();
    varint(cmd.len() as u64, &mut out);
    out.extend_from_slice(&cmd);
    out
}

#[test]
fn protobuf_is_chosen_by_subprotocol_and_spoken_in_binary_frames() {
    let server = server(&[]);
    let mut c = protobuf_client(&server.addr());
    let mut batch = command(1, 4, ""); // connect, anonymous
    batch.extend(command(2, 5, "news")); // subscribe
    c.ws.send(Message::binary(batch)).unwrap();
    // Reply{id:1, connect:{...}}: field 1 = 1, then field 5.
    let connect = c.recv_binary();
    assert_eq!(&connect[1..3], &[0x08, 0x01], "{connect:?}");
    assert_eq!(connect[3], 5 << 3 | 2, "{connect:?}");
    // Reply{id:2, subscribe:{}}: 4 bytes after the length.
    assert_eq!(c.recv_binary(), vec![4, 0x08, 0x02, 0x32, 0x00]);
    // A text frame on a Protobuf connection is a bad request.
    c.send_text("{}");
    assert_eq!(c.expect_close(), 3501);
}

#[test]
fn a_publish_is_converted_once_per_encoding_per_shard() {
    let server = server(&["--shards", "1"]);
    let addr = server.addr();
    let channel = "once"; // No join/leave: the publish is the only frame.
    let mut json_subs: Vec<Client> = (0..3).map(|_| json_client(&addr)).collect();
    for c in &mut json_subs {
        connect(c, "");
        send(c, &[json!({"id": 2, "subscribe": {"channel": channel}})]);
        assert_eq!(reply(c), json!({"id": 2, "subscribe": {}}));
    }
    let mut pb_subs: Vec<Client> = (0..2).map(|_| protobuf_client(&addr)).collect();
    for c in &mut pb_subs {
        let mut batch = command(1, 4, "");
        batch.extend(command(2, 5, channel));
        c.ws.send(Message::binary(batch)).unwrap();
        c.recv_binary();
        c.recv_binary();
    }
    let (mut ws, _) = server.ws_client();
    ws.subscribe(channel);
    ws.send_json(&json!({"type": "publish", "channel": channel, "data": {"k": 1}}));
    for c in &mut json_subs {
        let push = reply(c);
        assert_eq!(
            push,
            json!({"push": {"channel": channel, "pub": {"data": {"k": 1}}}})
        );
    }
    for c in &mut pb_subs {
        let push = c.recv_binary();
        let text = String::from_utf8_lossy(&push);
        assert!(
            text.contains(channel) && text.contains(r#"{"k":1}"#),
            "{push:?}"
        );
    }
    let metrics = get(server.admin_addr(), "/metrics").body;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("corecast_centrifugo_conversions_total"))
        .unwrap_or_else(|| panic!("no conversions counter in {metrics}"));
    assert!(line.ends_with(" 2"), "one per encoding: {line}");
}

/// A Protobuf publish: `id`, channel and raw `data` bytes.
fn publish_command(id: u64, channel: &str, data: &[u8]) -> Vec<u8> {
    let mut request = Vec::new();
    field(1, channel.as_bytes(), &mut request);
    field(2, data, &mut request);
    let mut cmd = Vec::new();
    varint(8, &mut cmd);
    varint(id, &mut cmd);
    field(7, &request, &mut cmd);
    let mut out = Vec::new();
    varint(cmd.len() as u64, &mut out);
    out.extend_from_slice(&cmd);
    out
}

#[test]
fn protobuf_data_must_be_json_text_and_reaches_ws_clients_as_json() {
    let server = server(&[]);
    let mut ws_sub = server.ws_client().0;
    ws_sub.subscribe("mixed");
    let mut c = protobuf_client(&server.addr());
    let mut batch = command(1, 4, "");
    batch.extend(publish_command(2, "mixed", b"\xff\x00 not json"));
    batch.extend(publish_command(3, "mixed", br#"{"ok":true}"#));
    c.ws.send(Message::binary(batch)).unwrap();
    c.recv_binary(); // connect
                     // Reply{id:2, error:{code:107, ...}}: field 2 holds field 1 = 107.
    let refused = c.recv_binary();
    assert_eq!(&refused[1..3], &[0x08, 0x02], "{refused:?}");
    assert_eq!(&refused[3..4], &[0x12], "an error: {refused:?}");
    assert_eq!(&refused[5..7], &[0x08, 107], "code 107: {refused:?}");
    // Reply{id:3, publish:{}}
    assert_eq!(c.recv_binary(), vec![4, 0x08, 0x03, 0x42, 0x00]);
    let m = ws_sub.recv_json();
    assert_eq!(
        m,
        json!({"type": "message", "channel": "mixed", "data": {"ok": true}})
    );
}

#[test]
fn a_connection_that_never_connects_is_closed_as_stale() {
    let server = server(&["--handshake-timeout", "1s"]);
    let mut c = json_client(&server.addr());
    // 3502: the SDK does not reconnect.
    assert_eq!(c.read_close(), (3502, "stale".to_string()));
}
