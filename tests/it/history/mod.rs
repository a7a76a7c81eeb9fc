//! History channels: offsets and epochs, one order per channel across
//! shards, recovery after a reconnect (all or nothing), history reads, and
//! the admin routes. Channels without history are checked unchanged by the
//! pub/sub tests.

mod order;
mod reads;
mod recovery;

use serde_json::{json, Value};

use crate::auth::config_file;
use crate::harness::{Client, TestServer};

/// `h:` keeps 1,000 publications for 5 minutes; `tiny:` keeps 3; `short:`
/// keeps them 1 s.
const NAMESPACES: &str = r#"
[namespaces.default]
[namespaces.h]
history_size = 1000
history_ttl = "5m"
[namespaces.tiny]
history_size = 3
history_ttl = "5m"
[namespaces.short]
history_size = 100
history_ttl = "1s"
"#;

/// A two-shard server with the namespaces above and `args`.
pub fn server(args: &[&str]) -> TestServer {
    let file = config_file(NAMESPACES);
    let mut all = vec!["--shards", "2", "--config", file.to_str().unwrap()];
    all.extend_from_slice(args);
    TestServer::start(&all)
}

/// Subscribes and returns the `subscribed` reply (after any recovered
/// messages, which are returned first).
pub fn subscribe(c: &mut Client, request: Value) -> (Vec<Value>, Value) {
    c.send_json(&request);
    let mut before = Vec::new();
    loop {
        let m = c.recv_json();
        if m["type"] == "subscribed" || m["type"] == "error" {
            return (before, m);
        }
        before.push(m);
    }
}

/// Publishes with an id and returns the ack.
pub fn publish(c: &mut Client, channel: &str, data: Value) -> Value {
    c.send_json(&json!({"type": "publish", "channel": channel, "data": data, "id": 1}));
    loop {
        let m = c.recv_json();
        if m["type"] == "published" || m["type"] == "error" {
            return m;
        }
    }
}
