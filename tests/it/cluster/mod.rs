//! Redis mode (`--redis`): several corecast processes on real Redis
//! instances act as one server: delivery across processes exactly once
//! and in one order, history and recovery through the Redis stream,
//! user-targeted messages, join/leave, sharding over two instances, and
//! Redis going away and coming back.

mod faults;

use std::time::Duration;

use serde_json::{json, Value};

use crate::auth::{config_file, token_for, ws_with_token, SECRET};
use crate::harness::redis::RedisServer;
use crate::harness::{connection_id, post, Client, TestServer};
use crate::history::{publish, subscribe};

/// `h:` keeps history; `room:` announces joins and leaves; `pres:` keeps
/// presence.
const NAMESPACES: &str = r#"
[namespaces.default]
[namespaces.h]
history_size = 1000
history_ttl = "5m"
[namespaces.room]
join_leave = true
[namespaces.pres]
presence = true
"#;

/// `n` two-shard servers on the Redis instances `redis`, with `args`.
fn cluster(redis: &[&RedisServer], n: usize, args: &[&str]) -> Vec<TestServer> {
    let file = config_file(NAMESPACES);
    let urls: Vec<String> = redis.iter().map(|r| r.url()).collect();
    let urls = urls.join(",");
    (0..n)
        .map(|_| {
            let mut all = vec![
                "--shards",
                "2",
                "--config",
                file.to_str().unwrap(),
                "--redis",
                &urls,
                "--jwt-hmac-secret",
                SECRET,
            ];
            all.extend_from_slice(args);
            let server = TestServer::start(&all);
            wait_redis_up(&server);
            server
        })
        .collect()
}

/// Waits until the server's /health says every Redis link is up.
pub fn wait_redis_up(server: &TestServer) {
    wait_health(server, |h| h["redis"]["up"] == true);
}

/// Polls /health (bounded) until `ok` holds: the server reports the
/// state of its links there, and nothing else signals it.
pub fn wait_health(server: &TestServer, ok: impl Fn(&Value) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let health = server.health();
        if ok(&health) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "health never matched: {health}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A subscribed client on `server`.
fn subscriber(server: &TestServer, channel: &str) -> Client {
    let (mut c, _) = server.ws_client();
    c.subscribe(channel);
    c
}

/// The `data` of the next `n` messages.
fn datas(c: &mut Client, n: usize) -> Vec<Value> {
    (0..n)
        .map(|_| {
            let m = c.recv_json();
            assert_eq!(m["type"], "message", "{m}");
            m["data"].clone()
        })
        .collect()
}

#[test]
fn publishes_reach_every_process_once_and_in_one_order() {
    let redis = RedisServer::start();
    let servers = cluster(&[&redis], 3, &[]);
    let mut subs: Vec<Client> = Vec::new();
    for s in &servers {
        for _ in 0..3 {
            subs.push(subscriber(s, "news"));
        }
    }
    // Two publishers on two processes, interleaved, each acked.
    let (mut a, _) = servers[0].ws_client();
    let (mut b, _) = servers[2].ws_client();
    for i in 0..100 {
        for (c, who) in [(&mut a, "a"), (&mut b, "b")] {
            c.send_json(&json!({"type": "publish", "channel": "news", "data": {"from": who, "n": i}, "id": i}));
            let ack = c.recv_json();
            assert_eq!(ack["type"], "published", "{ack}");
        }
    }
    let first = datas(&mut subs[0], 200);
    for (who, key) in [("a", 0), ("b", 1)] {
        let mine: Vec<u64> = first
            .iter()
            .filter(|d| d["from"] == who)
            .map(|d| d["n"].as_u64().unwrap())
            .collect();
        assert_eq!(
            mine,
            (0..100).collect::<Vec<_>>(),
            "publisher {key} out of order"
        );
    }
    for c in &mut subs[1..] {
        assert_eq!(datas(c, 200), first, "every subscriber sees one order");
    }
    // Exactly once: nothing more arrives before a marker published last.
    a.send_json(&json!({"type": "publish", "channel": "news", "data": "end", "id": 0}));
    assert_eq!(a.recv_json()["type"], "published");
    for c in &mut subs {
        assert_eq!(c.recv_json()["data"], "end");
    }
}

#[test]
fn an_api_publish_on_one_process_reaches_the_others() {
    let redis = RedisServer::start();
    let servers = cluster(&[&redis], 2, &[]);
    let mut c = subscriber(&servers[1], "api");
    let r = post(
        servers[0].admin_addr(),
        "/api/publish",
        r#"{"channel":"api","data":7}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(c.recv_json()["data"], 7);
    // /metrics has each shard's links to the instance.
    let metrics = crate::harness::get(servers[1].admin_addr(), "/metrics").body;
    let instance = format!("redis://127.0.0.1:{}/0", redis.port());
    for shard in ["0", "1"] {
        let up = format!("corecast_redis_up{{shard=\"{shard}\",instance=\"{instance}\"}} 1");
        assert!(metrics.contains(&up), "no {up} in:\n{metrics}");
    }
    assert!(
        metrics.contains("corecast_redis_messages_total{"),
        "{metrics}"
    );
    assert!(
        metrics.contains("corecast_redis_command_seconds_total{"),
        "{metrics}"
    );
}

#[test]
fn a_history_subscriber_recovers_on_another_process() {
    let redis = RedisServer::start();
    let servers = cluster(&[&redis], 3, &[]);
    let (mut c, _) = servers[0].ws_client();
    let (_, reply) = subscribe(&mut c, json!({"type": "subscribe", "channel": "h:doc"}));
    let epoch = reply["epoch"].as_str().unwrap().to_string();
    let (mut p, _) = servers[1].ws_client();
    for i in 1..=5 {
        let ack = publish(&mut p, "h:doc", json!(i));
        assert_eq!(ack["offset"], i, "{ack}");
        assert_eq!(ack["epoch"], epoch.as_str());
    }
    let seen: Vec<u64> = (0..5)
        .map(|_| c.recv_json()["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(seen, [1, 2, 3, 4, 5]);
    drop(c);
    for i in 6..=9 {
        assert_eq!(publish(&mut p, "h:doc", json!(i))["offset"], i);
    }
    // Back on a third process, from offset 5: 6..=9 exactly, then live.
    let (mut back, _) = servers[2].ws_client();
    let request = json!({"type": "subscribe", "channel": "h:doc", "recover": true,
                         "offset": 5, "epoch": epoch});
    let (recovered, reply) = subscribe(&mut back, request);
    assert_eq!(reply["recovered"], true, "{reply}");
    assert_eq!(reply["offset"], 9);
    let offsets: Vec<u64> = recovered
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [6, 7, 8, 9]);
    assert_eq!(publish(&mut p, "h:doc", json!(10))["offset"], 10);
    assert_eq!(back.recv_json()["offset"], 10);
    // A history read on any process reads the same stream.
    back.send_json(&json!({"type": "history", "channel": "h:doc", "limit": 3, "reverse": true}));
    let page = back.recv_json();
    let offsets: Vec<u64> = page["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [10, 9, 8], "{page}");
    // A position from another epoch is refused plainly.
    let stale = json!({"type": "subscribe", "channel": "h:doc", "recover": true,
                       "offset": 3, "epoch": "0000000000zz"});
    let (none, reply) = subscribe(&mut servers[1].ws_client().0, stale);
    assert_eq!(reply["recovered"], false, "{reply}");
    assert!(none.is_empty());
}

#[test]
fn users_are_reached_and_disconnected_on_any_process() {
    let redis = RedisServer::start();
    let servers = cluster(&[&redis], 2, &[]);
    let (mut alice, _) = ws_with_token(&servers[1], &token_for("alice"));
    let (mut alice2, _) = ws_with_token(&servers[0], &token_for("alice"));
    let r = post(
        servers[0].admin_addr(),
        "/api/user/send",
        r##"{"user":"alice","data":"hi"}"##,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    for c in [&mut alice, &mut alice2] {
        let m = c.recv_json();
        assert_eq!(
            (m["channel"].as_str(), m["data"].as_str()),
            (Some("#alice"), Some("hi")),
            "{m}"
        );
    }
    // A client publish to a personal channel crosses processes too.
    let (mut bob, _) = ws_with_token(&servers[0], &token_for("bob"));
    bob.send_json(&json!({"type": "publish", "channel": "#alice", "data": "from bob", "id": 1}));
    assert_eq!(bob.recv_json()["type"], "published");
    assert_eq!(alice.recv_json()["data"], "from bob");
    assert_eq!(alice2.recv_json()["data"], "from bob");
    let r = post(
        servers[0].admin_addr(),
        "/api/user/disconnect",
        r#"{"user":"alice"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(alice.expect_close(), 4000);
    assert_eq!(alice2.expect_close(), 4000);
}

#[test]
fn joins_and_leaves_cross_processes() {
    let redis = RedisServer::start();
    let servers = cluster(&[&redis], 2, &[]);
    let (mut watcher, _) = ws_with_token(&servers[0], &token_for("watcher"));
    watcher.subscribe("room:1");
    assert_eq!(watcher.recv_json()["type"], "join"); // Its own.
    let (mut carol, hello) = ws_with_token(&servers[1], &token_for("carol"));
    carol.subscribe("room:1");
    let join = watcher.recv_json();
    assert_eq!(
        (join["type"].as_str(), join["user"].as_str()),
        (Some("join"), Some("carol")),
        "{join}"
    );
    assert_eq!(
        join["connection_id"].as_str(),
        Some(connection_id(&hello).as_str()),
        "a join names the connection as its own greeting did"
    );
    drop(carol);
    let leave = watcher.recv_json();
    assert_eq!(
        (leave["type"].as_str(), leave["user"].as_str()),
        (Some("leave"), Some("carol")),
        "{leave}"
    );
}

/// Redis mode: a connection id names its process (`NODE.SHARD-SEQ`), so
/// ids never collide across processes; `/api/disconnect` closes its own
/// process's connections and says which process it is for another's.
#[test]
fn connection_ids_name_their_process_and_disconnect_answers_for_its_own() {
    let redis = RedisServer::start();
    let servers = cluster(&[&redis], 2, &[]);
    let (mut first, hello) = servers[0].ws_client();
    let id = connection_id(&hello);
    let (_other, other_hello) = servers[1].ws_client();
    let other_id = connection_id(&other_hello);
    let node = |id: &str| id.split_once('.').map(|(n, _)| n.to_string());
    assert!(node(&id).is_some(), "{id}");
    assert_ne!(node(&id), node(&other_id), "{id} {other_id}");
    let body = json!({"connection_id": id}).to_string();
    let elsewhere = post(servers[1].admin_addr(), "/api/disconnect", &body);
    assert_eq!(elsewhere.status, 404, "{}", elsewhere.body);
    assert!(
        elsewhere.body.contains("in this process"),
        "{}",
        elsewhere.body
    );
    let here = post(servers[0].admin_addr(), "/api/disconnect", &body);
    assert_eq!(here.status, 200, "{}", here.body);
    assert_eq!(first.read_close().0, 4000);
}

#[test]
fn channels_are_sharded_over_two_redis_instances() {
    let (r1, r2) = (RedisServer::start(), RedisServer::start());
    let servers = cluster(&[&r1, &r2], 2, &[]);
    let names: Vec<String> = (0..16).map(|i| format!("spread-{i}")).collect();
    let mut subs: Vec<Client> = names.iter().map(|n| subscriber(&servers[1], n)).collect();
    let (mut p, _) = servers[0].ws_client();
    for (i, name) in names.iter().enumerate() {
        p.send_json(&json!({"type": "publish", "channel": name, "data": i, "id": i}));
        assert_eq!(p.recv_json()["type"], "published");
    }
    for (i, c) in subs.iter_mut().enumerate() {
        assert_eq!(c.recv_json()["data"], i);
    }
    // Both instances carry some of the channels' subscriptions.
    for r in [&r1, &r2] {
        let channels = r.cli(&["PUBSUB", "CHANNELS", "corecast.ch.spread-*"]);
        assert!(
            !channels.trim().is_empty(),
            "instance {} carries none",
            r.port()
        );
    }
}

#[test]
fn a_process_unsubscribes_from_redis_when_its_last_subscriber_leaves() {
    let redis = RedisServer::start();
    let servers = cluster(&[&redis], 1, &[]);
    let (mut c, _) = servers[0].ws_client();
    c.subscribe("fleeting");
    assert_eq!(
        redis
            .cli(&["PUBSUB", "NUMSUB", "corecast.ch.fleeting"])
            .lines()
            .nth(1),
        Some("1")
    );
    c.send_json(&json!({"type": "unsubscribe", "channel": "fleeting"}));
    assert_eq!(c.recv_json()["type"], "unsubscribed");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while redis
        .cli(&["PUBSUB", "NUMSUB", "corecast.ch.fleeting"])
        .lines()
        .nth(1)
        != Some("0")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "still subscribed in Redis"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asks `c` for `channel`'s presence (or stats) and returns the reply.
fn presence(c: &mut Client, channel: &str, stats: bool) -> Value {
    let kind = if stats { "presence_stats" } else { "presence" };
    c.send_json(&json!({"type": kind, "channel": channel}));
    c.recv_json()
}

/// The users listed in a presence reply, sorted.
fn users(reply: &Value) -> Vec<String> {
    let mut users: Vec<String> = reply["clients"]
        .as_array()
        .unwrap_or_else(|| panic!("{reply}"))
        .iter()
        .map(|c| c["user"].as_str().unwrap().to_string())
        .collect();
    users.sort();
    users
}

/// Asks for presence until it lists `expected` (bounded): an entry is
/// written to Redis just after the `subscribed` reply, and nothing tells a
/// client on another process when it has landed.
fn wait_users(c: &mut Client, channel: &str, expected: &[&str]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listed = users(&presence(c, channel, false));
        if listed == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "listed {listed:?}, want {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn presence_is_cluster_wide_and_a_crashed_process_leaves_it() {
    let redis = RedisServer::start();
    let mut servers = cluster(&[&redis], 2, &["--redis-presence-ttl", "1s"]);
    let (mut alice, _) = ws_with_token(&servers[0], &token_for("alice"));
    alice.subscribe("pres:lobby");
    let (mut bob, _) = ws_with_token(&servers[1], &token_for("bob"));
    bob.subscribe("pres:lobby");
    let (mut bob2, _) = ws_with_token(&servers[1], &token_for("bob"));
    bob2.subscribe("pres:lobby");
    wait_users(&mut alice, "pres:lobby", &["alice", "bob", "bob"]);
    let stats = presence(&mut bob, "pres:lobby", true);
    assert_eq!(
        (stats["clients"].as_u64(), stats["users"].as_u64()),
        (Some(3), Some(2)),
        "{stats}"
    );
    // The admin API of either process answers the same.
    let r = crate::harness::get(servers[1].admin_addr(), "/api/presence?channel=pres:lobby");
    assert_eq!(
        r.json()["clients"].as_array().map(Vec::len),
        Some(3),
        "{}",
        r.body
    );
    // Leaving removes at once.
    bob2.send_json(&json!({"type": "unsubscribe", "channel": "pres:lobby"}));
    assert_eq!(bob2.recv_json()["type"], "unsubscribed");
    wait_users(&mut alice, "pres:lobby", &["alice", "bob"]);
    // A process that dies without a word: its clients expire within the ttl,
    // while alice's own entry, refreshed, stays.
    let dead = servers.remove(1);
    dead.signal(libc::SIGKILL);
    drop(dead);
    wait_users(&mut alice, "pres:lobby", &["alice"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        users(&presence(&mut alice, "pres:lobby", false)),
        ["alice"],
        "refreshed entries stay"
    );
}

#[test]
fn a_history_channel_published_from_two_processes_arrives_in_offset_order_everywhere() {
    let redis = RedisServer::start();
    let servers = cluster(&[&redis], 3, &[]);
    let mut subs: Vec<Client> = servers.iter().map(|s| subscriber(s, "h:race")).collect();
    let publishers: Vec<_> = servers[..2]
        .iter()
        .map(|s| {
            let (mut c, _) = s.ws_client();
            std::thread::spawn(move || {
                for i in 0..150 {
                    // Without ids: as fast as the connection takes them.
                    c.send_json(&json!({"type": "publish", "channel": "h:race", "data": i}));
                }
                // One acked publish last: all before it were taken.
                let ack = publish(&mut c, "h:race", json!("last"));
                assert_eq!(ack["type"], "published", "{ack}");
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    for c in &mut subs {
        let offsets: Vec<u64> = (0..302)
            .map(|_| {
                let m = c.recv_json();
                assert_eq!(m["type"], "message", "{m}");
                m["offset"].as_u64().unwrap()
            })
            .collect();
        assert_eq!(offsets, (1..=302).collect::<Vec<_>>());
    }
}

#[test]
fn msgpack_and_json_clients_share_channels_across_processes() {
    use crate::msgpack::msgpack_client;
    let redis = RedisServer::start();
    let servers = cluster(&[&redis], 2, &[]);
    let (mut mp, _) = msgpack_client(&servers[1]);
    mp.subscribe("mix");
    let mut json_sub = subscriber(&servers[1], "mix");
    let (mut mp_h, _) = msgpack_client(&servers[1]);
    let reply = mp_h.ask(json!({"type":"subscribe","channel":"h:mix"}));
    assert_eq!(reply["type"], "subscribed", "{reply}");
    // A JSON publisher on the other process: the frame crosses Redis as
    // JSON and is converted on the receiving home shard.
    let (mut p, _) = servers[0].ws_client();
    p.send_json(&json!({"type":"publish","channel":"mix","data":{"n":1,"f":1.5},"id":1}));
    assert_eq!(p.recv_json()["type"], "published");
    let want = json!({"type":"message","channel":"mix","data":{"n":1,"f":1.5}});
    assert_eq!(mp.recv(), want);
    assert_eq!(json_sub.recv_json(), want);
    // A MessagePack publisher: both again, and a history channel through
    // the Redis stream.
    let (mut mp_pub, _) = msgpack_client(&servers[0]);
    let ack = mp_pub.ask(json!({"type":"publish","channel":"mix","data":[1,2.5,"x"],"id":2}));
    assert_eq!(ack, json!({"type":"published","channel":"mix","id":2}));
    let want = json!({"type":"message","channel":"mix","data":[1,2.5,"x"]});
    assert_eq!(mp.recv(), want);
    assert_eq!(json_sub.recv_json(), want);
    let ack = mp_pub.ask(json!({"type":"publish","channel":"h:mix","data":{"k":"v"},"id":3}));
    assert_eq!(ack["offset"], 1, "{ack}");
    assert_eq!(
        mp_h.recv(),
        json!({"type":"message","channel":"h:mix","data":{"k":"v"},"offset":1})
    );
}
