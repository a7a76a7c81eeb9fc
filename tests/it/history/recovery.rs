//! Recovery: a reconnecting subscriber gets every publication it missed,
//! exactly once and in order, before anything live, or `recovered:false`
//! and nothing from history.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use serde_json::{json, Value};

use super::*;
use crate::harness::{log_field, Pool};

/// Reads messages until `offset` has been seen; returns their offsets.
fn read_until(c: &mut Client, offset: u64) -> Vec<u64> {
    let mut seen = Vec::new();
    while seen.last() != Some(&offset) {
        let m = c.recv_json();
        assert_eq!(m["type"], "message", "{m}");
        seen.push(m["offset"].as_u64().unwrap());
    }
    seen
}

#[test]
fn a_reconnect_recovers_everything_missed_while_both_shards_publish() {
    let server = server(&[]);
    let mut pool = Pool::new(&server);
    let stop = Arc::new(AtomicBool::new(false));
    let publishers: Vec<_> = (0..2)
        .map(|shard| {
            let mut c = pool.on_shard(shard);
            let stop = stop.clone();
            thread::spawn(move || {
                let mut n = 0u64;
                // Bounded, so a failing test cannot publish forever.
                while !stop.load(Ordering::Relaxed) && n < 20_000 {
                    // One publish per ack: the server's own pace, so a
                    // reconnect misses tens, well within the channel's 1,000.
                    let ack = publish(&mut c, "h:rec", json!(n));
                    assert_eq!(ack["type"], "published", "{ack}");
                    n += 1;
                }
            })
        })
        .collect();
    let mut all: Vec<u64> = Vec::new();
    let mut epoch = String::new();
    for round in 0..20 {
        let mut c = pool.on_shard(round % 2);
        let request = if all.is_empty() {
            json!({"type": "subscribe", "channel": "h:rec"})
        } else {
            json!({"type": "subscribe", "channel": "h:rec", "recover": true,
                   "offset": all.last().unwrap(), "epoch": epoch})
        };
        let (recovered, reply) = subscribe(&mut c, request);
        if all.is_empty() {
            epoch = reply["epoch"].as_str().unwrap().to_string();
        } else {
            assert_eq!(reply["recovered"], true, "round {round}: {reply}");
        }
        for m in &recovered {
            all.push(m["offset"].as_u64().unwrap());
        }
        let top = reply["offset"].as_u64().unwrap();
        assert_eq!(
            all.last().copied().unwrap_or(top),
            top,
            "recovered up to the top"
        );
        // Then live messages continue from top + 1.
        let next = c.recv_json();
        assert_eq!(next["offset"], top + 1, "{next}");
        all.push(top + 1);
        all.extend(read_until(&mut c, top + 5));
        drop(c); // Disconnect while publishing continues.
    }
    stop.store(true, Ordering::Relaxed);
    for p in publishers {
        p.join().unwrap();
    }
    let first = all[0];
    let expected: Vec<u64> = (first..first + all.len() as u64).collect();
    assert_eq!(all, expected, "every publication exactly once, in order");
}

/// A channel `c` with 5 publications; returns (subscriber, its epoch).
fn five_published(server: &TestServer, channel: &str) -> String {
    let mut pool = Pool::new(server);
    let mut p = pool.on_shard(0);
    let mut epoch = String::new();
    for n in 1..=5 {
        epoch = publish(&mut p, channel, json!(n))["epoch"]
            .as_str()
            .unwrap()
            .to_string();
    }
    epoch
}

fn not_recovered(server: &TestServer, channel: &str, offset: u64, epoch: &str) -> Value {
    let (mut c, _) = server.ws_client();
    let (before, reply) = subscribe(
        &mut c,
        json!({"type": "subscribe", "channel": channel, "recover": true, "offset": offset, "epoch": epoch}),
    );
    assert!(before.is_empty(), "nothing from history: {before:?}");
    assert_eq!(reply["recovered"], false, "{reply}");
    c.assert_heartbeat_next();
    reply
}

#[test]
fn anything_that_cannot_be_recovered_whole_is_recovered_false_with_nothing_sent() {
    let server = server(&["--recovery-max-publications", "3"]);
    let epoch = five_published(&server, "h:x");
    let reply = not_recovered(&server, "h:x", 3, "not-the-epoch");
    assert_eq!(
        (reply["offset"].clone(), reply["epoch"].clone()),
        (json!(5), json!(epoch))
    );
    not_recovered(&server, "h:x", 3, "");
    not_recovered(&server, "h:x", 9, &epoch); // ahead of the top
    not_recovered(&server, "h:x", 1, &epoch); // 4 missed, the limit is 3
                                              // Within the limit: recovered.
    let (mut c, _) = server.ws_client();
    let (before, reply) = subscribe(
        &mut c,
        json!({"type": "subscribe", "channel": "h:x", "recover": true, "offset": 2, "epoch": epoch}),
    );
    assert_eq!(reply["recovered"], true, "{reply}");
    let offsets: Vec<_> = before
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, vec![3, 4, 5]);
    // Trimmed by size: tiny keeps 3 of 5.
    let tiny = five_published(&server, "tiny:x");
    not_recovered(&server, "tiny:x", 1, &tiny);
    let (mut c, _) = server.ws_client();
    let (before, reply) = subscribe(
        &mut c,
        json!({"type": "subscribe", "channel": "tiny:x", "recover": true, "offset": 2, "epoch": tiny}),
    );
    assert_eq!(reply["recovered"], true, "{reply}");
    assert_eq!(before.len(), 3);
}

#[test]
fn publications_older_than_the_ttl_cannot_be_recovered() {
    let server = server(&[]);
    let epoch = five_published(&server, "short:x");
    wait_expired(&server, 5);
    let reply = not_recovered(&server, "short:x", 2, &epoch);
    // The epoch and top outlive the data (--history-meta-ttl).
    assert_eq!(
        (reply["offset"].clone(), reply["epoch"].clone()),
        (json!(5), json!(epoch))
    );
}

/// Waits until the ticker has logged dropping `n` publications past their
/// history_ttl in all. One log line is not enough: a pass can fall between
/// the expiry times of publications made a few milliseconds apart, drop
/// the older ones only, and leave the rest recoverable for a moment.
fn wait_expired(server: &TestServer, n: u64) {
    const LINE: &str = "history expired publications=";
    let mut lines = 0;
    loop {
        lines += 1;
        server
            .wait_for_log_count(LINE, lines, crate::harness::WAIT)
            .unwrap_or_else(|| panic!("publications expire: {lines} expiry lines expected"));
        let dropped: u64 = server
            .log_text()
            .lines()
            .filter(|l| l.contains(LINE))
            .map(|l| log_field(l, LINE).parse::<u64>().expect("a count"))
            .sum();
        if dropped >= n {
            return;
        }
    }
}
