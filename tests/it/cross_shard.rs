//! Publishes crossing shards over the bus: exactly-once, per-publisher order,
//! the "subscribed means reachable" guarantee, unsubscribe, and channel
//! isolation. Every server here runs two shards (the machine has two CPUs);
//! clients land on a shard by SO_REUSEPORT hashing, so [`Pool`] opens
//! connections until it has one on the shard it needs.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::harness::{Client, Pool, TestServer, WAIT};
use crate::pubsub::{ask, publish, publish_acked};

#[test]
fn every_subscriber_on_every_shard_gets_each_message_once_in_order() {
    let server = TestServer::start(&["--shards", "2"]);
    let mut pool = Pool::new(&server);
    let mut subs: Vec<(usize, Client)> = Vec::new();
    for shard in [0, 0, 1, 1] {
        subs.push((shard, pool.on_shard(shard)));
    }
    // Connections opened on the way land somewhere; they subscribe too.
    subs.extend(pool.drain());
    for (_, sub) in &mut subs {
        sub.subscribe("x");
    }
    let mut publishers = [pool.on_shard(0), pool.on_shard(1)];

    // N messages each, interleaved, then an end marker: a duplicate of any
    // message would arrive before its publisher's marker and break the order.
    const N: u64 = 200;
    for seq in 0..=N {
        for (p, publisher) in publishers.iter_mut().enumerate() {
            publish(publisher, "x", &json!({"p":p,"seq":seq}));
        }
    }
    for (shard, sub) in &mut subs {
        let mut next = [0u64; 2];
        while next != [N + 1, N + 1] {
            let msg = sub.recv_json();
            assert_eq!(msg["type"], "message", "shard {shard}: {msg}");
            assert_eq!(msg["channel"], "x", "shard {shard}: {msg}");
            let p = msg["data"]["p"].as_u64().expect("p") as usize;
            assert_eq!(
                msg["data"]["seq"], next[p],
                "subscriber on shard {shard}, publisher {p}: lost, duplicated or reordered"
            );
            next[p] += 1;
        }
        sub.assert_heartbeat_next();
    }
}

#[test]
fn subscribed_reply_means_publishes_from_the_other_shard_arrive() {
    let server = TestServer::start(&["--shards", "2"]);
    let mut pool = Pool::new(&server);
    let mut subs = [pool.on_shard(0), pool.on_shard(1)];
    let mut publishers = [pool.on_shard(0), pool.on_shard(1)];
    for round in 0..50 {
        let a = round % 2;
        let b = 1 - a;
        // A channel no shard has heard of, so subscribing needs the other shard's ack.
        let channel = format!("fresh-{round}");
        subs[a].subscribe(&channel);
        publish(&mut publishers[b], &channel, &json!({"round":round}));
        let msg = subs[a].recv_json();
        assert_eq!(
            msg,
            json!({"type":"message","channel":channel,"data":{"round":round}}),
            "round {round}: subscriber on shard {a}, publisher on shard {b}"
        );
    }
    for sub in &mut subs {
        sub.assert_heartbeat_next();
    }
}

#[test]
fn resubscribing_right_after_unsubscribing_still_receives_from_the_other_shard() {
    let server = TestServer::start(&["--shards", "2"]);
    let mut pool = Pool::new(&server);
    let mut subs = [pool.on_shard(0), pool.on_shard(1)];
    let mut publishers = [pool.on_shard(0), pool.on_shard(1)];
    for round in 0..40 {
        let a = round % 2;
        let b = 1 - a;
        let channel = format!("again-{round}");
        subs[a].subscribe(&channel);
        // Sent together: the shard withdraws its interest, then asks for it again.
        subs[a].send_text(&json!({"type":"unsubscribe","channel":channel}).to_string());
        subs[a].send_text(&json!({"type":"subscribe","channel":channel}).to_string());
        assert_eq!(
            subs[a].recv_json(),
            json!({"type":"unsubscribed","channel":channel})
        );
        assert_eq!(
            subs[a].recv_json(),
            json!({"type":"subscribed","channel":channel})
        );
        publish(&mut publishers[b], &channel, &json!(round));
        let msg = subs[a].recv_json();
        assert_eq!(
            msg,
            json!({"type":"message","channel":channel,"data":round}),
            "round {round}: shard {a}"
        );
    }
}

#[test]
fn new_subscriber_receives_after_the_last_one_on_its_shard_disconnected() {
    let server = TestServer::start(&["--shards", "2"]);
    let mut pool = Pool::new(&server);
    let mut publisher = pool.on_shard(1);
    let mut witness = pool.on_shard(1);
    witness.subscribe("lobby");
    let mut first = pool.on_shard(0);
    first.subscribe("lobby");
    publish_acked(&mut publisher, "lobby", &json!(1));
    for c in [&mut first, &mut witness] {
        assert_eq!(
            c.recv_json(),
            json!({"type":"message","channel":"lobby","data":1})
        );
    }
    drop(first);
    let closed = server.wait_for_log("closed conn=0-", WAIT);
    assert!(closed.is_some(), "{}", server.log_text());

    // Shard 1 may already have learned that shard 0 lost interest.
    publish_acked(&mut publisher, "lobby", &json!(2));
    assert_eq!(
        witness.recv_json(),
        json!({"type":"message","channel":"lobby","data":2})
    );
    let mut second = pool.on_shard(0);
    second.subscribe("lobby");
    publish_acked(&mut publisher, "lobby", &json!(3));
    assert_eq!(
        second.recv_json(),
        json!({"type":"message","channel":"lobby","data":3})
    );
    assert_eq!(
        witness.recv_json(),
        json!({"type":"message","channel":"lobby","data":3})
    );
    second.assert_heartbeat_next();
}

#[test]
fn unsubscribed_client_gets_nothing_published_on_the_other_shard() {
    let server = TestServer::start(&["--shards", "2"]);
    let mut pool = Pool::new(&server);
    for (a, b) in [(0, 1), (1, 0)] {
        let (x, y) = (format!("x-{a}"), format!("y-{a}"));
        let mut leaver = pool.on_shard(a);
        let mut neighbour = pool.on_shard(a);
        let mut publisher = pool.on_shard(b);
        for c in [&mut leaver, &mut neighbour] {
            c.subscribe(&x);
            c.subscribe(&y);
        }

        // A neighbour on the same shard still wants x, so shard b keeps forwarding it.
        let reply = ask(
            &mut leaver,
            &json!({"type":"unsubscribe","channel":x}).to_string(),
        );
        assert_eq!(reply, json!({"type":"unsubscribed","channel":x}));
        publish(&mut publisher, &x, &json!("x1"));
        publish(&mut publisher, &y, &json!("y1"));
        // Same publisher: x1 would have come before y1.
        assert_eq!(
            leaver.recv_json(),
            json!({"type":"message","channel":y,"data":"y1"}),
            "shard {a}"
        );
        leaver.assert_heartbeat_next();
        assert_eq!(
            neighbour.recv_json(),
            json!({"type":"message","channel":x,"data":"x1"})
        );
        assert_eq!(
            neighbour.recv_json(),
            json!({"type":"message","channel":y,"data":"y1"})
        );

        // Now the last subscriber of x on shard a leaves.
        let reply = ask(
            &mut neighbour,
            &json!({"type":"unsubscribe","channel":x}).to_string(),
        );
        assert_eq!(reply, json!({"type":"unsubscribed","channel":x}));
        publish(&mut publisher, &x, &json!("x2"));
        publish(&mut publisher, &y, &json!("y2"));
        for c in [&mut leaver, &mut neighbour] {
            assert_eq!(
                c.recv_json(),
                json!({"type":"message","channel":y,"data":"y2"}),
                "shard {a}"
            );
            c.assert_heartbeat_next();
        }
    }
}

#[test]
fn each_channel_reaches_only_its_subscribers_across_shards() {
    let server = TestServer::start(&["--shards", "2"]);
    let mut pool = Pool::new(&server);
    const CHANNELS: usize = 20;
    const PER_CHANNEL: u64 = 5;
    // Client j sits on shard j % 2; which channels it joins is arbitrary but
    // mixes channels with subscribers on one shard, on both, and on none.
    let wants = |j: usize, k: usize| k != 19 && (k % 8 == j || (k * 3 + j).is_multiple_of(7));
    let mut subs: Vec<(usize, Client, BTreeSet<usize>)> = Vec::new();
    for j in 0..8 {
        let mut c = pool.on_shard(j % 2);
        let joined: BTreeSet<usize> = (0..CHANNELS).filter(|&k| wants(j, k)).collect();
        for &k in &joined {
            c.subscribe(&format!("ch-{k}"));
        }
        subs.push((j % 2, c, joined));
    }
    let shards_of =
        |k: usize| -> BTreeSet<usize> { (0..8).filter(|&j| wants(j, k)).map(|j| j % 2).collect() };
    assert!(
        (0..CHANNELS).any(|k| shards_of(k).len() == 2),
        "some channel must span both shards"
    );
    assert!(
        (0..CHANNELS).any(|k| shards_of(k).len() == 1),
        "some channel must live on one shard"
    );

    for (_, sub, _) in &mut subs {
        sub.subscribe("end");
    }

    let mut publishers = [pool.on_shard(0), pool.on_shard(1)];
    for seq in 0..PER_CHANNEL {
        for k in 0..CHANNELS {
            let p = (k + seq as usize) % 2;
            publish(
                &mut publishers[p],
                &format!("ch-{k}"),
                &json!({"k":k,"seq":seq}),
            );
        }
    }
    // Each publisher's end marker comes after all its messages, so anything
    // misrouted or duplicated shows up before both markers are in.
    for (p, publisher) in publishers.iter_mut().enumerate() {
        publish(publisher, "end", &json!({"end":p}));
    }
    for (shard, sub, joined) in &mut subs {
        let mut got: Vec<(u64, u64)> = Vec::new();
        let mut ends = BTreeSet::new();
        while ends.len() < 2 {
            let msg: Value = sub.recv_json();
            assert_eq!(msg["type"], "message", "{msg}");
            if msg["channel"] == "end" {
                assert!(
                    ends.insert(msg["data"]["end"].as_u64().expect("end")),
                    "duplicate end marker {msg}"
                );
                continue;
            }
            let k = msg["data"]["k"].as_u64().expect("k");
            assert_eq!(msg["channel"], format!("ch-{k}"), "{msg}");
            assert!(
                joined.contains(&(k as usize)),
                "shard {shard}: got ch-{k}, joined only {joined:?}"
            );
            got.push((k, msg["data"]["seq"].as_u64().expect("seq")));
        }
        let want: Vec<(u64, u64)> = joined
            .iter()
            .flat_map(|&k| (0..PER_CHANNEL).map(move |s| (k as u64, s)))
            .collect();
        got.sort();
        assert_eq!(
            got, want,
            "shard {shard}: each joined channel's messages exactly once"
        );
        sub.assert_heartbeat_next();
    }
}

#[test]
fn concurrent_publishers_on_both_shards_keep_their_order_for_late_readers() {
    // Subscribers on each shard read nothing until both publishers, each in
    // its own thread on its own shard, are done: their sockets fill, the
    // flush pass leaves the rest to their tasks, and every frame must still
    // arrive once, each publisher's in its order.
    let server = TestServer::start(&["--shards", "2", "--max-outbound-bytes", "64MiB"]);
    let mut late: Vec<(usize, Client)> = Vec::new();
    for _ in 0..64 {
        if late.len() == 2 {
            break;
        }
        let (mut client, hello) = server.ws_client_small_rcvbuf();
        let shard = hello["shard"].as_u64().expect("shard") as usize;
        if late.iter().all(|(s, _)| *s != shard) {
            client.subscribe("busy");
            late.push((shard, client));
        }
    }
    assert_eq!(late.len(), 2, "no late subscriber on each shard");
    let mut pool = Pool::new(&server);
    let publishers = [pool.on_shard(0), pool.on_shard(1)];
    const N: u64 = 1500;
    let fill = "z".repeat(1024);
    std::thread::scope(|scope| {
        for (p, mut publisher) in publishers.into_iter().enumerate() {
            let fill = &fill;
            scope.spawn(move || {
                for seq in 0..N {
                    let data = json!({"p":p,"seq":seq,"fill":fill});
                    publish(&mut publisher, "busy", &data);
                }
                // A heartbeat reply after every publish means all were taken.
                publisher.send_json(&json!({"type":"heartbeat","id":"end"}));
                loop {
                    let reply = publisher.recv_json();
                    if reply["type"] == "heartbeat" {
                        break;
                    }
                }
            });
        }
    });
    for (shard, sub) in &mut late {
        let mut next = [0u64; 2];
        while next != [N, N] {
            let msg = sub.recv_json();
            assert_eq!(msg["type"], "message", "shard {shard}: {msg}");
            let p = msg["data"]["p"].as_u64().expect("p") as usize;
            assert_eq!(
                msg["data"]["seq"], next[p],
                "late subscriber on shard {shard}, publisher {p}: lost, duplicated or reordered"
            );
            next[p] += 1;
        }
    }
}
