//! `data` between JSON and MessagePack clients of one channel: the same
//! value on both sides (integers stay integers, floats floats), and what
//! has no exact form on the other side refused with INVALID_DATA, never
//! altered.

use rmpv::Value as Mp;

use super::*;

/// Values whose form is exact both ways.
fn sample() -> Value {
    json!({
        "int": 42, "neg": -42, "big": 18446744073709551615u64, "min": -9223372036854775808i64,
        "float": 0.1, "whole_float": 1.0, "tiny": 5e-324,
        "text": "ünïcode \" \\ \u{1}", "empty": "",
        "list": [1, [2, [3]], {"k": null}], "yes": true, "no": false, "nothing": null
    })
}

#[test]
fn json_and_msgpack_clients_see_the_same_data() {
    let server = TestServer::start(&["--shards", "2"]);
    let (mut mp_sub, _) = msgpack_client(&server);
    mp_sub.subscribe("both");
    let (mut json_sub, _) = server.ws_client();
    json_sub.subscribe("both");
    let data = sample();
    // JSON publisher to both.
    let (mut json_pub, _) = server.ws_client();
    crate::pubsub::publish_acked(&mut json_pub, "both", &data);
    let want = json!({"type":"message","channel":"both","data":data});
    assert_eq!(json_sub.recv_json(), want);
    let bytes = mp_sub.recv_bytes();
    assert_eq!(decode(&bytes), want);
    check_wire_types(&bytes);
    // MessagePack publisher to both.
    let (mut mp_pub, _) = msgpack_client(&server);
    let ack = mp_pub.ask(json!({"type":"publish","channel":"both","data":data,"id":1}));
    assert_eq!(ack, json!({"type":"published","channel":"both","id":1}));
    assert_eq!(json_sub.recv_json(), want);
    let bytes = mp_sub.recv_bytes();
    assert_eq!(decode(&bytes), want);
    check_wire_types(&bytes);
}

/// The MessagePack types on the wire: the smallest integer forms, float 64.
fn check_wire_types(bytes: &[u8]) {
    let message = rmpv::decode::read_value(&mut &bytes[..]).unwrap();
    let data = field(&message, "data");
    assert!(field(data, "int").is_u64(), "{data}");
    assert_eq!(field(data, "neg").as_i64(), Some(-42));
    assert!(
        matches!(field(data, "float"), Mp::F64(v) if *v == 0.1),
        "{data}"
    );
    assert!(
        matches!(field(data, "whole_float"), Mp::F64(v) if *v == 1.0),
        "{data}"
    );
}

fn field<'a>(map: &'a Mp, name: &str) -> &'a Mp {
    let Mp::Map(entries) = map else {
        panic!("not a map: {map}")
    };
    entries
        .iter()
        .find(|(k, _)| k.as_str() == Some(name))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {name} in {map}"))
}

/// A publish request with `data`, as MessagePack bytes.
fn publish_bytes(data: Mp) -> Vec<u8> {
    let request = Mp::Map(vec![
        (Mp::from("type"), Mp::from("publish")),
        (Mp::from("channel"), Mp::from("refused")),
        (Mp::from("id"), Mp::from(9)),
        (Mp::from("data"), data),
    ]);
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &request).unwrap();
    bytes
}

#[test]
fn msgpack_data_without_a_json_form_is_refused_not_altered() {
    let server = TestServer::start(&["--shards", "2"]);
    let (mut json_sub, _) = server.ws_client();
    json_sub.subscribe("refused");
    let (mut mp_sub, _) = msgpack_client(&server);
    mp_sub.subscribe("refused");
    let (mut publisher, _) = msgpack_client(&server);
    for data in [
        Mp::Binary(vec![1, 2, 3]),
        Mp::Ext(-1, vec![0; 8]), // a timestamp
        Mp::Map(vec![(Mp::from(1), Mp::from("one"))]),
        Mp::Array(vec![Mp::F64(f64::NAN)]),
        Mp::Array(vec![Mp::F32(f32::INFINITY)]),
    ] {
        publisher.send_bytes(&publish_bytes(data.clone()));
        let reply = publisher.recv();
        assert_eq!(reply["type"], "error", "{data}: {reply}");
        assert_eq!(reply["code"], "INVALID_DATA", "{data}: {reply}");
        assert_eq!(reply["id"], 9, "the id is read even so: {reply}");
    }
    // Nothing was delivered: the next message is a valid publish.
    let ack = publisher.ask(json!({"type":"publish","channel":"refused","data":"ok","id":2}));
    assert_eq!(ack["type"], "published");
    let want = json!({"type":"message","channel":"refused","data":"ok"});
    assert_eq!(json_sub.recv_json(), want);
    assert_eq!(mp_sub.recv(), want);
}

#[test]
fn json_data_without_a_msgpack_form_is_refused_not_altered() {
    let server = TestServer::start(&["--shards", "2"]);
    let (mut sub, _) = server.ws_client();
    sub.subscribe("big");
    let (mut publisher, _) = server.ws_client();
    for data in [
        "18446744073709551616",
        "-9223372036854775809",
        "[1e400]",
        r#"{"s":"\ud800"}"#,
    ] {
        let request = format!(r#"{{"type":"publish","channel":"big","data":{data},"id":"b"}}"#);
        let reply = crate::pubsub::ask(&mut publisher, &request);
        assert_eq!(reply["code"], "INVALID_DATA", "{data}: {reply}");
        assert_eq!(reply["id"], "b");
        let body = format!(r#"{{"channel":"big","data":{data}}}"#);
        let response = post(server.admin_addr(), "/api/publish", &body);
        assert_eq!(response.status, 400, "{data}: {response:?}");
        assert_eq!(response.json()["code"], "INVALID_DATA", "{response:?}");
    }
    // The JSON subscriber got none of them.
    crate::pubsub::publish_acked(&mut publisher, "big", &json!(1));
    assert_eq!(
        sub.recv_json(),
        json!({"type":"message","channel":"big","data":1})
    );
}
