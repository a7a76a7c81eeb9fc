//! Presence (who is subscribed, from every shard) and join/leave pushes:
//! each exactly once on every shard, a subscriber's own join before
//! anything else it gets on the channel, and leaves for abrupt disconnects.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::harness::{get, Client, Pool, TestServer};

const CHAT: &str = r#"
[namespaces.chat]
presence = true
join_leave = true
[namespaces.quiet]
presence = true
"#;

fn server(extra: &[&str]) -> TestServer {
    let file = config_file(CHAT);
    let mut args = vec!["--shards", "2", "--config", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    auth_server(&args)
}

/// A connection of `user` on `shard`, with `info` in its token.
fn user_on_shard(server: &TestServer, user: &str, shard: u64, info: Value) -> (Client, String) {
    for _ in 0..200 {
        let token = hs256(json!({"sub": user, "exp": now() + 600, "info": info}));
        let (client, hello) = ws_with_token(server, &token);
        if hello["shard"] == shard {
            return (client, hello["connection_id"].as_str().unwrap().to_string());
        }
    }
    panic!("no connection of {user} landed on shard {shard}");
}

#[test]
fn presence_lists_subscribers_from_every_shard_with_their_info() {
    let server = server(&[]);
    let (mut a, a_id) = user_on_shard(&server, "alice", 0, json!({"name": "Alice"}));
    let (mut b, b_id) = user_on_shard(&server, "bob", 1, json!(null));
    let (mut b2, b2_id) = user_on_shard(&server, "bob", 0, json!(null));
    for c in [&mut a, &mut b, &mut b2] {
        c.subscribe("quiet:room");
    }
    let reply = ask(
        &mut a,
        json!({"type": "presence", "channel": "quiet:room", "id": 9}),
    );
    assert_eq!(reply["type"], "presence", "{reply}");
    assert_eq!(reply["id"], 9);
    let clients = reply["clients"].as_array().unwrap();
    let ids: HashSet<&str> = clients
        .iter()
        .map(|c| c["connection_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        HashSet::from([a_id.as_str(), b_id.as_str(), b2_id.as_str()])
    );
    let alice = clients
        .iter()
        .find(|c| c["connection_id"] == a_id.as_str())
        .unwrap();
    assert_eq!(alice["user"], "alice");
    assert_eq!(alice["info"], json!({"name": "Alice"}));
    assert!(reply.get("truncated").is_none(), "{reply}");
    let stats = ask(
        &mut b,
        json!({"type": "presence_stats", "channel": "quiet:room"}),
    );
    assert_eq!(
        stats,
        json!({"type": "presence_stats", "channel": "quiet:room", "clients": 3, "users": 2})
    );
    // The admin API gives the same.
    let r = get(
        server.admin_addr(),
        "/api/presence_stats?channel=quiet:room",
    );
    assert_eq!(
        r.json(),
        json!({"channel": "quiet:room", "clients": 3, "users": 2})
    );
    let r = get(server.admin_addr(), "/api/presence?channel=quiet%3Aroom");
    assert_eq!(r.json()["clients"].as_array().unwrap().len(), 3, "{r:?}");
}

#[test]
fn presence_is_capped_by_max_presence_clients() {
    let server = server(&["--max-presence-clients", "2"]);
    let mut pool = Pool::new(&server);
    let mut clients: Vec<Client> = (0..2).map(|s| pool.on_shard(s)).collect();
    clients.push(pool.on_shard(0));
    for c in &mut clients {
        c.subscribe("quiet:big");
    }
    let reply = ask(
        &mut clients[0],
        json!({"type": "presence", "channel": "quiet:big"}),
    );
    assert_eq!(reply["clients"].as_array().unwrap().len(), 2, "{reply}");
    assert_eq!(reply["truncated"], true, "{reply}");
}

#[test]
fn presence_needs_it_enabled_and_the_right_to_subscribe() {
    let server = server(&[]);
    let (mut c, _) = server.ws_client();
    let reply = ask(&mut c, json!({"type": "presence", "channel": "lobby"}));
    assert_eq!(reply["code"], "PRESENCE_DISABLED", "{reply}");
    let reply = ask(&mut c, json!({"type": "presence", "channel": "#alice"}));
    assert_eq!(reply["code"], "PERMISSION_DENIED", "{reply}");
}

/// Reads until a message of `kind` arrives; returns it.
fn next_of(c: &mut Client, kind: &str) -> Value {
    loop {
        let m = c.recv_json();
        if m["type"] == kind {
            return m;
        }
    }
}

#[test]
fn join_and_leave_reach_every_shard_exactly_once_including_abrupt_disconnects() {
    let server = server(&[]);
    let (mut a, _) = user_on_shard(&server, "alice", 0, json!(null));
    let (mut b, _) = user_on_shard(&server, "bob", 1, json!(null));
    a.subscribe("chat:room");
    assert_eq!(a.recv_json()["type"], "join", "alice's own join");
    b.subscribe("chat:room");
    assert_eq!(b.recv_json()["type"], "join", "bob's own join");
    let join = a.recv_json();
    assert_eq!(join["type"], "join");
    assert_eq!(join["user"], "bob");

    for shard in [0, 1] {
        let (mut c, c_id) = user_on_shard(&server, "carol", shard, json!({"n": shard}));
        c.subscribe("chat:room");
        let own = c.recv_json();
        assert_eq!(own["type"], "join", "{own}");
        assert_eq!(own["connection_id"], c_id.as_str());
        for watcher in [&mut a, &mut b] {
            let m = watcher.recv_json();
            assert_eq!(
                m,
                json!({"type": "join", "channel": "chat:room", "user": "carol",
                       "connection_id": c_id, "info": {"n": shard}})
            );
        }
        if shard == 0 {
            c.send_json(&json!({"type": "unsubscribe", "channel": "chat:room"}));
            assert_eq!(c.recv_json()["type"], "unsubscribed");
        } else {
            // Abrupt: the socket is dropped without a close frame.
            drop(c);
        }
        for watcher in [&mut a, &mut b] {
            let m = watcher.recv_json();
            assert_eq!(m["type"], "leave", "{m}");
            assert_eq!(m["connection_id"], c_id.as_str());
        }
    }
    // Exactly once: nothing more is queued for either.
    a.assert_heartbeat_next();
    b.assert_heartbeat_next();
}

#[test]
fn a_subscribers_own_join_comes_before_any_message_on_the_channel() {
    let server = server(&[]);
    let (mut publisher, _) = user_on_shard(&server, "pub", 1, json!(null));
    let (mut reader, _) = user_on_shard(&server, "keep", 1, json!(null));
    reader.subscribe("chat:busy");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let flood = std::thread::spawn(move || {
        let mut n = 0u64;
        // Bounded, so a test that fails early cannot flood forever.
        while !flag.load(Ordering::Relaxed) && n < 200_000 {
            publisher.send_json(&json!({"type": "publish", "channel": "chat:busy", "data": n}));
            n += 1;
        }
        n
    });
    // Wait until messages flow, so the subscribe lands among them.
    assert_eq!(next_of(&mut reader, "message")["channel"], "chat:busy");
    for _ in 0..10 {
        let (mut c, id) = user_on_shard(&server, "late", 0, json!(null));
        c.subscribe("chat:busy");
        let first = c.recv_json();
        assert_eq!(first["type"], "join", "first after subscribed: {first}");
        assert_eq!(first["connection_id"], id.as_str());
    }
    stop.store(true, Ordering::Relaxed);
    assert!(flood.join().unwrap() > 0);
}
