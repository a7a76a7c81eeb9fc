//! Offsets and one order per history channel, whoever publishes from
//! whichever shard.

use std::thread;

use serde_json::json;

use super::*;
use crate::harness::{Pool, TestServer};

#[test]
fn subscribed_and_published_carry_the_position_and_messages_their_offset() {
    let server = server(&[]);
    let mut pool = Pool::new(&server);
    let mut sub = pool.on_shard(0);
    let mut publisher = pool.on_shard(1);
    let (_, reply) = subscribe(&mut sub, json!({"type": "subscribe", "channel": "h:a"}));
    assert_eq!(reply["offset"], 0, "{reply}");
    let epoch = reply["epoch"].as_str().unwrap().to_string();
    assert!(!epoch.is_empty());
    for n in 1..=3u64 {
        let ack = publish(&mut publisher, "h:a", json!(n));
        assert_eq!(
            ack,
            json!({"type": "published", "channel": "h:a", "offset": n, "epoch": epoch, "id": 1})
        );
        let m = sub.recv_json();
        assert_eq!(
            m,
            json!({"type": "message", "channel": "h:a", "data": n, "offset": n})
        );
    }
    // A later subscriber learns the top.
    let mut late = pool.on_shard(1);
    let (_, reply) = subscribe(&mut late, json!({"type": "subscribe", "channel": "h:a"}));
    assert_eq!(
        (reply["offset"].clone(), reply["epoch"].clone()),
        (json!(3), json!(epoch))
    );
    // A channel without history is unchanged.
    late.subscribe("plain");
    publish(&mut publisher, "plain", json!(1));
    let m = late.recv_json();
    assert!(m.get("offset").is_none(), "{m}");
}

#[test]
fn every_subscriber_on_every_shard_sees_one_order_from_concurrent_publishers() {
    const EACH: u64 = 300;
    let server = server(&[]);
    let mut pool = Pool::new(&server);
    let mut subs: Vec<Client> = (0..4).map(|i| pool.on_shard(i % 2)).collect();
    for s in &mut subs {
        subscribe(s, json!({"type": "subscribe", "channel": "h:race"}));
    }
    let publishers: Vec<Client> = (0..2).map(|i| pool.on_shard(i)).collect();
    let threads: Vec<_> = publishers
        .into_iter()
        .enumerate()
        .map(|(p, mut c)| {
            thread::spawn(move || {
                for n in 0..EACH {
                    c.send_json(&json!({"type": "publish", "channel": "h:race", "data": [p, n]}));
                }
                c.assert_heartbeat_next();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut first: Option<Vec<serde_json::Value>> = None;
    for s in &mut subs {
        let seen: Vec<_> = (0..2 * EACH).map(|_| s.recv_json()).collect();
        for (i, m) in seen.iter().enumerate() {
            assert_eq!(m["offset"], i as u64 + 1, "offsets are contiguous: {m}");
        }
        let data: Vec<_> = seen.iter().map(|m| m["data"].clone()).collect();
        // Each publisher's own order is kept within the one order.
        for p in 0..2 {
            let mine: Vec<_> = data
                .iter()
                .filter(|d| d[0] == p)
                .map(|d| d[1].as_u64().unwrap())
                .collect();
            assert_eq!(mine, (0..EACH).collect::<Vec<_>>());
        }
        match &first {
            None => first = Some(data),
            Some(f) => assert_eq!(f, &data, "two subscribers saw different orders"),
        }
    }
}

#[test]
fn join_and_leave_in_a_history_namespace_reach_every_shard() {
    let file = crate::auth::config_file(
        "[namespaces.room]\nhistory_size = 10\nhistory_ttl = \"5m\"\njoin_leave = true\n",
    );
    let server = TestServer::start(&["--shards", "2", "--config", file.to_str().unwrap()]);
    let mut pool = Pool::new(&server);
    // Watchers on both shards; then joiners from each shard in turn, so
    // one of them is on the channel's home and one is not.
    let mut watchers: Vec<Client> = (0..2).map(|s| pool.on_shard(s)).collect();
    for w in &mut watchers {
        let (_, reply) = subscribe(w, json!({"type": "subscribe", "channel": "room:1"}));
        assert!(reply.get("offset").is_some(), "{reply}");
        assert_eq!(w.recv_json()["type"], "join", "its own join");
    }
    assert_eq!(
        watchers[0].recv_json()["type"],
        "join",
        "the second watcher's join"
    );
    for shard in [0, 1] {
        let mut c = pool.on_shard(shard);
        subscribe(&mut c, json!({"type": "subscribe", "channel": "room:1"}));
        assert_eq!(c.recv_json()["type"], "join", "own join first");
        for w in &mut watchers {
            assert_eq!(w.recv_json()["type"], "join", "from shard {shard}");
        }
        drop(c);
        for w in &mut watchers {
            assert_eq!(w.recv_json()["type"], "leave", "from shard {shard}");
        }
    }
    for w in &mut watchers {
        w.assert_heartbeat_next();
    }
}
