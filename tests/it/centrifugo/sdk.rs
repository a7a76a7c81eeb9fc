//! The real `centrifuge` SDK against corecast, each scenario in JSON and in
//! Protobuf (tests/sdk/*.mjs print what they saw; the checks are here).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::{scenario, sdk_dir, server, step};
use crate::auth::{token_for, SECRET};
use crate::harness::{Client, TestServer};

fn basic(encoding: &str) {
    let server = server(&[]);
    let admin = server.admin_addr().to_string();
    let lines = scenario(&server, "basic", encoding, &[&admin]);
    let connected = step(&lines, "connected");
    assert!(
        connected["client"]
            .as_str()
            .is_some_and(|c| c.contains('-')),
        "{connected}"
    );
    assert_eq!(connected["transport"], "websocket");
    // The personal channel is a server-side subscription.
    let personal = step(&lines, "personal");
    assert_eq!(personal["status"], 200);
    assert_eq!(personal["server_subs"], json!(["#alice"]));
    assert_eq!(
        personal["publication"],
        json!({"channel": "#alice", "data": {"dm": 1}})
    );
    step(&lines, "subscribed");
    step(&lines, "join");
    assert_eq!(step(&lines, "publication")["data"], json!({"text": "hi"}));
    let presence = step(&lines, "presence");
    assert_eq!(presence["users"], json!(["alice", "bob"]));
    assert_eq!(presence["keyed_by_client"], true);
    assert_eq!(presence["alice_info"], json!({"name": "Alice"}));
    let stats = step(&lines, "presence_stats");
    assert_eq!((&stats["clients"], &stats["users"]), (&json!(2), &json!(2)));
    step(&lines, "leave");
    let sub = step(&lines, "history_subscribed");
    assert_eq!(
        (&sub["recoverable"], &sub["positioned"]),
        (&json!(true), &json!(true))
    );
    let history = step(&lines, "history");
    let all = json!([{"offset": 1, "n": 1}, {"offset": 2, "n": 2}, {"offset": 3, "n": 3}]);
    assert_eq!(history["pubs"], all);
    assert_eq!(
        (&history["offset"], &history["epoch"]),
        (&json!(3), &json!(true))
    );
    let newest = json!([{"offset": 3, "n": 3}, {"offset": 2, "n": 2}]);
    assert_eq!(step(&lines, "history_reverse")["pubs"], newest);
    assert_eq!(
        step(&lines, "history_since")["pubs"],
        json!([{"offset": 3, "n": 3}])
    );
    // 108 "not available": no history, no presence, no RPC handler.
    assert_eq!(step(&lines, "history_error")["code"], 108);
    assert_eq!(step(&lines, "presence_error")["code"], 108);
    assert_eq!(step(&lines, "rpc_error")["code"], 108);
}

#[test]
fn sdk_connects_subscribes_publishes_and_reads_presence_and_history_json() {
    basic("json");
}

#[test]
fn sdk_connects_subscribes_publishes_and_reads_presence_and_history_protobuf() {
    basic("protobuf");
}

fn refresh(encoding: &str) {
    let server = server(&[]);
    let lines = scenario(&server, "refresh", encoding, &[]);
    assert_eq!(step(&lines, "refreshed")["calls"], 1);
    let still = step(&lines, "still_connected");
    assert_eq!(still["state"], "connected");
    assert_eq!(
        still["events"],
        json!([]),
        "no disconnect or reconnect: {still}"
    );
    assert_eq!(still["same_client"], true);
    let late = step(&lines, "expired_at_connect");
    assert_eq!(late["errors"], json!([109]), "{late}");
    assert_eq!(late["calls"], 1);
}

#[test]
fn sdk_refreshes_its_token_before_expiry_json() {
    refresh("json");
}

#[test]
fn sdk_refreshes_its_token_before_expiry_protobuf() {
    refresh("protobuf");
}

fn recovery(encoding: &str) {
    recovery_on(&server(&[]), encoding);
}

fn recovery_on(server: &TestServer, encoding: &str) {
    let admin = server.admin_addr().to_string();
    let lines = scenario(server, "recovery", encoding, &[&admin]);
    let recovered = step(&lines, "recovered");
    assert_eq!(
        recovered["exact"], true,
        "every publication once, in order: {recovered}"
    );
    assert!(
        recovered["published_while_away"].as_u64().unwrap() > 0,
        "the cut must overlap publishes: {recovered}"
    );
    let subscribed = recovered["subscribed"].as_array().unwrap();
    assert_eq!(subscribed.len(), 2, "{recovered}");
    assert_eq!(
        subscribed[0],
        json!({"recovered": false, "was_recovering": false})
    );
    assert_eq!(
        subscribed[1],
        json!({"recovered": true, "was_recovering": true})
    );
    let lost = step(&lines, "lost");
    assert_eq!(lost["removed"], 200);
    assert_eq!(lost["recovered"], false, "{lost}");
    assert_eq!(lost["was_recovering"], true, "{lost}");
}

#[test]
fn sdk_recovers_every_publication_after_a_cut_and_reports_lost_history_json() {
    recovery("json");
}

#[test]
fn sdk_recovers_every_publication_after_a_cut_and_reports_lost_history_protobuf() {
    recovery("protobuf");
}

/// The `ws` package offers permessage-deflate: with `--compression on`
/// every frame to the SDK (replies and the converted publications) is
/// compressed, and recovery still holds.
#[test]
fn sdk_recovers_over_permessage_deflate_json() {
    let server = server(&["--compression", "on", "--compression-min-size", "0"]);
    recovery_on(&server, "json");
    let compressed = server.counter("corecast_compressed_frames_total");
    assert!(
        compressed > 0,
        "frames to the SDK are compressed: {compressed}"
    );
}

#[test]
fn sdk_recovers_over_permessage_deflate_protobuf() {
    let server = server(&["--compression", "on", "--compression-min-size", "0"]);
    recovery_on(&server, "protobuf");
}

/// A /ws client and an SDK client in one channel, messages both ways.
fn interop(encoding: &str) {
    let server = server(&[]);
    interop_on(&server, &server, encoding);
}

/// The SDK on `sdk_server`, the /ws client on `ws_server`.
fn interop_on(sdk_server: &TestServer, ws_server: &TestServer, encoding: &str) {
    let channel = format!("chat:interop-{encoding}");
    let (mut ws, _) = crate::auth::ws_with_token(ws_server, &token_for("native"));
    ws.subscribe(&channel);
    let url = format!("ws://{}/connection/websocket", sdk_server.addr());
    let mut node = Command::new("node")
        .current_dir(sdk_dir())
        .args(["interop.mjs", &url, encoding, SECRET, &channel])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run node");
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut next_line = || -> Value {
        let line = lines.next().expect("a line from the scenario").unwrap();
        serde_json::from_str(&line).unwrap()
    };
    assert_eq!(next_line()["step"], "subscribed");
    ws.send_json(&json!({"type": "publish", "channel": channel, "data": {"from": "ws"}}));
    let received = next_line();
    assert_eq!(received["data"], json!({"from": "ws"}), "{received}");
    assert_eq!(next_line()["step"], "published");
    // The /ws client gets its own message, then the SDK's.
    let mine = recv_message(&mut ws);
    assert_eq!(mine["data"], json!({"from": "ws"}));
    let theirs = recv_message(&mut ws);
    assert_eq!(theirs["channel"], channel.as_str());
    assert_eq!(theirs["data"], json!({"from": "sdk"}));
    assert!(node.wait().unwrap().success());
}

fn recv_message(ws: &mut Client) -> Value {
    loop {
        let m = ws.recv_json();
        if m["type"] == "message" {
            return m;
        }
    }
}

#[test]
fn ws_and_sdk_clients_share_a_channel_json() {
    interop("json");
}

#[test]
fn ws_and_sdk_clients_share_a_channel_protobuf() {
    interop("protobuf");
}

/// Redis mode: an SDK client on one process and a /ws client on another
/// share a channel both ways, and recovery goes through the Redis stream.
#[test]
fn sdk_works_across_processes_in_redis_mode() {
    let redis = crate::harness::RedisServer::start();
    let url = redis.url();
    let a = server(&["--redis", &url]);
    let b = server(&["--redis", &url]);
    crate::cluster::wait_redis_up(&a);
    crate::cluster::wait_redis_up(&b);
    interop_on(&a, &b, "json");
    interop_on(&b, &a, "protobuf");
    recovery_on(&a, "json");
}

/// Redis mode: Redis restarts empty under a history channel. /ws clients
/// are closed with 4010; an SDK client instead loses just that
/// subscription, with the unsubscribe push 2500 "insufficient state", and
/// its SDK subscribes again on the same connection: `recovered: false`
/// (the history is gone), then live publications again. JSON and Protobuf
/// side by side.
#[test]
fn sdk_subscription_evicted_by_lost_history_resubscribes_without_reconnecting() {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    let mut redis = crate::harness::RedisServer::start();
    let server = server(&["--redis", &redis.url(), "--redis-timeout", "300ms"]);
    crate::cluster::wait_redis_up(&server);
    let channel = "h:evicted";
    let url = format!("ws://{}/connection/websocket", server.addr());
    let (tx, rx) = mpsc::channel::<(&str, Value)>();
    let nodes: Vec<_> = ["json", "protobuf"]
        .into_iter()
        .map(|encoding| {
            let mut node = Command::new("node")
                .current_dir(sdk_dir())
                .args(["evicted.mjs", &url, encoding, SECRET, channel])
                .stdout(Stdio::piped())
                .spawn()
                .expect("run node");
            let stdout = node.stdout.take().unwrap();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let value = serde_json::from_str(&line).expect("a JSON line");
                    let _ = tx.send((encoding, value));
                }
            });
            node
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(40);
    let wait_step = |step: &str| -> Vec<(&str, Value)> {
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let left = deadline.saturating_duration_since(Instant::now());
            let (encoding, line) = rx.recv_timeout(left).expect("a line from each SDK");
            assert_eq!(line["step"], step, "{encoding}: {line}");
            seen.push((encoding, line));
        }
        seen
    };
    for (encoding, line) in wait_step("subscribed") {
        assert_eq!(line["recoverable"], true, "{encoding}: {line}");
    }
    let (mut native, _) = crate::auth::ws_with_token(&server, &token_for("native"));
    native.send_json(&json!({"type": "subscribe", "channel": channel, "id": 1}));
    assert_eq!(native.recv_json()["type"], "subscribed");
    let (mut publisher, _) = crate::auth::ws_with_token(&server, &token_for("publisher"));
    redis.kill();
    crate::cluster::wait_health(&server, |h| h["redis"]["up"] == false);
    redis.restart();
    crate::cluster::wait_redis_up(&server);
    // Publish into the new epoch until both SDKs are back: the first
    // publication the channel's home sees there evicts the subscribers.
    let mut back = Vec::new();
    while back.len() < 2 {
        assert!(Instant::now() < deadline, "the SDKs were never told");
        publisher.send_json(&json!({"type": "publish", "channel": channel, "data": {"n": 1}}));
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
            back.push(line);
        }
    }
    for (encoding, line) in &back {
        assert_eq!(line["step"], "resubscribed", "{encoding}: {line}");
        assert_eq!(
            line["subscribing"],
            json!([{"code": 2500, "reason": "insufficient state"}]),
            "{encoding}: {line}"
        );
        assert_eq!(
            (&line["recovered"], &line["was_recovering"]),
            (&json!(false), &json!(true)),
            "{encoding}: {line}"
        );
        assert_eq!(line["epoch_changed"], true, "{encoding}: {line}");
        assert_eq!(
            line["connection_events"],
            json!([]),
            "the connection stays: {encoding}: {line}"
        );
        assert_eq!(line["same_client"], true, "{encoding}: {line}");
    }
    // The /ws subscriber of the channel was closed with 4010.
    let closed = loop {
        match native.ws.read() {
            Ok(tungstenite::Message::Close(frame)) => break frame.map(|f| u16::from(f.code)),
            Ok(_) => continue,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(closed, Some(4010));
    publisher.send_json(&json!({"type": "publish", "channel": channel, "data": {"marker": true}}));
    for (encoding, line) in wait_step("received") {
        assert_eq!(line["data"], json!({"marker": true}), "{encoding}: {line}");
    }
    for mut node in nodes {
        assert!(node.wait().unwrap().success());
    }
}

/// Redis mode, two single-shard processes (so both hand out the same
/// `SHARD-SEQ`): an SDK client on each joins one presence channel, and
/// each sees the other in presence and join under the id the other's
/// connect result gave. Centrifugo's presence is a map keyed by client id,
/// so ids that collided across processes would hide one of them.
#[test]
fn sdk_clients_on_two_processes_have_distinct_ids_in_presence() {
    let redis = crate::harness::RedisServer::start();
    let url = redis.url();
    let a = server(&["--redis", &url, "--shards", "1"]);
    let b = server(&["--redis", &url, "--shards", "1"]);
    crate::cluster::wait_redis_up(&a);
    crate::cluster::wait_redis_up(&b);
    for encoding in ["json", "protobuf"] {
        let other = format!("ws://{}/connection/websocket", b.addr());
        let lines = scenario(&a, "cluster_presence", encoding, &[&other]);
        let p = step(&lines, "presence");
        assert_eq!(p["distinct"], true, "{encoding}: {p}");
        let ids = &p["ids"];
        let mut want = vec![ids["alice"].clone(), ids["bob"].clone()];
        want.sort_by_key(|v| v.to_string());
        assert_eq!(p["keys"], json!(want), "{encoding}: {p}");
        assert_eq!(p["users"], json!(["alice", "bob"]), "{encoding}: {p}");
        assert_eq!(p["bob_join_client"], ids["bob"], "{encoding}: {p}");
    }
}
