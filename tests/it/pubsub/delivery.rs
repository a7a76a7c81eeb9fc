//! Delivery: greetings, subscribe/unsubscribe, acks and ordering.

use serde_json::json;

use crate::harness::{TestServer, WAIT};

use super::{ask, publish, publish_acked};

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
    // Guaranteed order (README, docs/protocol.md): the publish is queued to
    // every local subscriber before its ack is queued, and an outbox is FIFO.
    let got = vec![c.recv_json(), c.recv_json()];
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

/// `--send-path io-uring`: the flush pass submits its sends on the shard's
/// ring, more than one slice of it (256 connections) per pass, and outboxes
/// longer than one `sendmsg` (64 frames) finish with plain syscalls; every
/// subscriber still gets every message once, in order.
#[test]
fn io_uring_send_path_delivers_everything_in_order_to_many_subscribers() {
    let server = TestServer::start(&["--shards", "1", "--send-path", "io-uring"]);
    const SUBS: usize = 300;
    const N: u64 = 200;
    let mut subs: Vec<_> = (0..SUBS)
        .map(|_| {
            let (mut sub, _) = server.ws_client();
            sub.subscribe("wide");
            sub
        })
        .collect();
    let (mut publisher, _) = server.ws_client();
    for seq in 0..N {
        publish(&mut publisher, "wide", &json!({"seq":seq}));
    }
    publish_acked(&mut publisher, "wide", &json!({"seq":N}));
    for sub in &mut subs {
        for seq in 0..=N {
            let msg = sub.recv_json();
            assert_eq!(msg["data"]["seq"], seq, "expected seq {seq}, got {msg}");
        }
    }
    subs[0].assert_heartbeat_next();
}
