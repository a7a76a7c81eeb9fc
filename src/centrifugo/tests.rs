use bytes::Bytes;
use prost::Message as _;

use super::proto::{self, Command, Reply};
use super::*;
use crate::message;

fn payload(frame: &[u8]) -> &[u8] {
    ws::data_payload(frame).expect("a data frame").1
}

fn json(frame: &[u8]) -> serde_json::Value {
    serde_json::from_slice(payload(frame)).expect("json reply")
}

fn protobuf_reply(frame: &[u8]) -> Reply {
    let mut body = payload(frame);
    let reply = Reply::decode_length_delimited(&mut body).expect("one reply");
    assert!(body.is_empty(), "one reply per frame");
    reply
}

#[test]
fn json_batch_decodes_in_order_with_pongs_and_blank_lines() {
    let batch = concat!(
        r#"{"id":1,"connect":{"token":"t","name":"js","subs":{}}}"#,
        "\n",
        r#"{"id":2,"subscribe":{"channel":"news","recover":true,"offset":7,"epoch":"e","flag":1}}"#,
        "\n\n{}\n",
        r#"{"id":3,"publish":{"channel":"news","data":{"a":[1,2]}}}"#,
        "\n"
    );
    let commands: Vec<Command> = decode_commands(Encoding::Json, batch.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(commands.len(), 4);
    assert_eq!(commands[0].connect.as_ref().unwrap().token, "t");
    let sub = commands[1].subscribe.as_ref().unwrap();
    assert_eq!((sub.recover, sub.offset, &*sub.epoch), (true, 7, "e"));
    assert_eq!(commands[2], Command::default(), "{{}} is a pong");
    assert_eq!(
        &commands[3].publish.as_ref().unwrap().data[..],
        br#"{"a":[1,2]}"#
    );
}

#[test]
fn malformed_json_commands_are_errors_and_stop_the_batch() {
    for bad in [
        "[1,2]",
        "{\"id\":",
        "{\"id\":\"x\"}",
        "{\"id\":1,\"publish\":{\"channel\":3}}",
    ] {
        let text = format!("{bad}\n{{\"id\":9,\"presence\":{{\"channel\":\"c\"}}}}");
        let items: Vec<_> = decode_commands(Encoding::Json, text.as_bytes()).collect();
        assert_eq!(items.len(), 1, "{bad}: nothing after the error");
        assert!(matches!(items[0], Err(DecodeError::Json(_))), "{bad}");
    }
}

#[test]
fn protobuf_stream_decodes_length_delimited_commands() {
    let mut stream = Vec::new();
    let connect = Command {
        id: 1,
        connect: Some(proto::ConnectRequest {
            token: "t".into(),
            name: "js".into(),
        }),
        ..Default::default()
    };
    let publish = Command {
        id: 2,
        publish: Some(proto::PublishRequest {
            channel: "c".into(),
            data: Bytes::from_static(b"{\"x\":1}"),
            kind: 0,
        }),
        ..Default::default()
    };
    connect.encode_length_delimited(&mut stream).unwrap();
    Command::default()
        .encode_length_delimited(&mut stream)
        .unwrap();
    publish.encode_length_delimited(&mut stream).unwrap();
    let got: Vec<Command> = decode_commands(Encoding::Protobuf, &stream)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got, vec![connect, Command::default(), publish]);

    // A length past the end is an error, not a panic or a wait.
    let cut = &stream[..stream.len() - 1];
    let items: Vec<_> = decode_commands(Encoding::Protobuf, cut).collect();
    assert!(matches!(items.last(), Some(Err(DecodeError::Protobuf(_)))));
}

#[test]
fn replies_are_one_frame_each_in_both_encodings() {
    let reply = Reply {
        id: 4,
        connect: Some(proto::ConnectResult {
            client: "0-1".into(),
            version: VERSION.into(),
            expires: true,
            ttl: 30,
            ping: 25,
            pong: true,
            subs: Default::default(),
        }),
        ..Default::default()
    };
    let v = json(&reply_frame(Encoding::Json, &reply));
    assert_eq!(v["id"], 4);
    assert_eq!(v["connect"]["client"], "0-1");
    assert_eq!(v["connect"]["ttl"], 30);
    assert_eq!(v["connect"]["pong"], true);
    assert!(v.get("error").is_none(), "unset fields are left out: {v}");
    assert_eq!(
        protobuf_reply(&reply_frame(Encoding::Protobuf, &reply)),
        reply
    );
}

#[test]
fn errors_carry_centrifugo_codes() {
    let frame = request_error(
        Encoding::Json,
        7,
        message::ErrorCode::PermissionDenied,
        "no".into(),
    );
    let v = json(&frame);
    assert_eq!(v["id"], 7);
    assert_eq!(v["error"]["code"], 103);
    assert_eq!(v["error"]["message"], "no");
    let (code, temporary) = error_code(message::ErrorCode::HistoryUnavailable);
    assert_eq!((code, temporary), (100, true));
    assert_eq!(error_code(message::ErrorCode::TokenExpired).0, 109);
    assert_eq!(error_code(message::ErrorCode::UnrecoverablePosition).0, 112);
}

#[test]
fn a_native_message_becomes_a_pub_push() {
    let native = message::message_frame_at("news", br#"{"n":1}"#, 5);
    let v = json(&push_from_native(Encoding::Json, &native).unwrap());
    assert_eq!(
        v,
        serde_json::json!({"push":{"channel":"news","pub":{"data":{"n":1},"offset":5}}})
    );
    let pb = protobuf_reply(&push_from_native(Encoding::Protobuf, &native).unwrap());
    let push = pb.push.unwrap();
    assert_eq!(push.channel, "news");
    let publication = push.publication.unwrap();
    assert_eq!(&publication.data[..], br#"{"n":1}"#, "JSON text as bytes");
    assert_eq!(publication.offset, 5);
}

#[test]
fn native_join_and_leave_become_pushes_with_client_info() {
    let client = message::client_info(
        "0-3",
        "alice",
        Some(&serde_json::value::RawValue::from_string(r#"{"n":"A"}"#.into()).unwrap()),
    );
    let join = message::join_leave("join", "room", &client);
    let v = json(&push_from_native(Encoding::Json, &join).unwrap());
    assert_eq!(v["push"]["channel"], "room");
    assert_eq!(v["push"]["join"]["info"]["user"], "alice");
    assert_eq!(v["push"]["join"]["info"]["client"], "0-3");
    assert_eq!(v["push"]["join"]["info"]["conn_info"]["n"], "A");
    let leave = message::join_leave("leave", "room", &client);
    let pb = protobuf_reply(&push_from_native(Encoding::Protobuf, &leave).unwrap());
    assert_eq!(pb.push.unwrap().leave.unwrap().info.unwrap().user, "alice");
}

#[test]
fn an_unsubscribe_push_carries_code_and_reason_in_both_encodings() {
    let why = UNSUBSCRIBE_INSUFFICIENT_STATE;
    let v = json(&unsubscribe_push(Encoding::Json, "h:x", why));
    assert_eq!(
        v,
        serde_json::json!({"push":{"channel":"h:x","unsubscribe":{"code":2500,"reason":"insufficient state"}}})
    );
    let push = protobuf_reply(&unsubscribe_push(Encoding::Protobuf, "h:x", why))
        .push
        .unwrap();
    assert_eq!(push.channel, "h:x");
    let unsubscribe = push.unsubscribe.unwrap();
    assert_eq!((unsubscribe.code, &*unsubscribe.reason), why);
}

#[test]
fn other_native_frames_are_not_pushed() {
    let data = serde_json::value::RawValue::from_string("1".into()).unwrap();
    let broadcast = message::broadcast_frame(&data);
    assert!(push_from_native(Encoding::Json, &broadcast).is_none());
    assert!(push_from_native(Encoding::Json, &ws::PING).is_none());
    assert!(push_from_native(Encoding::Protobuf, b"junk").is_none());
}

#[test]
fn pings_are_empty_replies() {
    assert_eq!(payload(&ping_frame(Encoding::Json)), b"{}");
    assert_eq!(
        protobuf_reply(&ping_frame(Encoding::Protobuf)),
        Reply::default()
    );
}

#[test]
fn close_reasons_map_to_disconnect_codes_with_reconnect_advice() {
    // 3000-3499: the SDK reconnects; 3500-3999: it does not.
    assert_eq!(close_code(CloseReason::TokenExpired).0, 3005);
    assert_eq!(close_code(CloseReason::SlowConsumer).0, 3008);
    assert_eq!(close_code(CloseReason::GoingAway).0, 3001);
    assert_eq!(close_code(CloseReason::InvalidToken).0, 3500);
    assert_eq!(close_code(CloseReason::BadRequest).0, 3501);
    assert_eq!(close_code(CloseReason::AuthRequired), (3502, "stale"));
    assert_eq!(close_code(CloseReason::TooBig).0, 1009);
}

#[test]
fn history_subscribed_carries_position_and_recovered_publications() {
    let pubs = [crate::history::Publication {
        offset: 3,
        payload: Bytes::from_static(b"\"x\""),
    }];
    let v = json(&history_subscribed(
        Encoding::Json,
        2,
        3,
        "ep",
        true,
        Some(&pubs),
    ));
    let sub = &v["subscribe"];
    assert_eq!(sub["recoverable"], true);
    assert_eq!(sub["positioned"], true);
    assert_eq!(sub["recovered"], true);
    assert_eq!(sub["was_recovering"], true);
    assert_eq!(sub["epoch"], "ep");
    assert_eq!(sub["offset"], 3);
    assert_eq!(sub["publications"][0]["data"], "x");
    let v = json(&history_subscribed(Encoding::Json, 2, 3, "ep", true, None));
    assert!(
        v["subscribe"].get("recovered").is_none(),
        "recovered: false is left out"
    );
}

#[test]
fn server_side_subscriptions_keep_their_empty_results() {
    let result = proto::ConnectResult {
        subs: vec![proto::SubscriptionEntry {
            key: "#a".into(),
            value: Some(proto::SubscribeResult::default()),
        }],
        ..Default::default()
    };
    // The map entry holds its key and an empty value: the SDK reads the
    // value's fields, and an absent one is null there.
    let bytes = result.encode_to_vec();
    assert!(
        bytes
            .windows(6)
            .any(|w| w == [0x0a, 0x02, b'#', b'a', 0x12, 0x00]),
        "{bytes:?}"
    );
    let v = serde_json::to_value(&result).unwrap();
    assert_eq!(v["subs"], serde_json::json!({"#a": {}}));
}
