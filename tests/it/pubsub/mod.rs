//! The /ws JSON protocol: greeting, subscribe/unsubscribe/publish, ids,
//! heartbeat, and every error code.
//!
//! Absence is proven by ordering, never by waiting: a heartbeat's reply (or
//! a later publish) arriving next shows that nothing was queued before it.
//! The helpers below are shared with cross_shard.rs and the submodules.

mod delivery;
mod errors;
mod round_trip;

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::harness::Client;

// ---- helpers (also used by cross_shard.rs) ----

/// Sends one request's text and returns the next message.
pub(crate) fn ask(c: &mut Client, request: &str) -> Value {
    c.send_text(request);
    c.recv_json()
}

/// Publishes without an id (so no reply comes back).
pub(crate) fn publish(c: &mut Client, channel: &str, data: &Value) {
    c.send_json(&json!({"type":"publish","channel":channel,"data":data}));
}

/// Publishes with an id and waits for the ack; the publisher must not be
/// subscribed to `channel`.
pub(crate) fn publish_acked(c: &mut Client, channel: &str, data: &Value) {
    let ack = ask(
        c,
        &json!({"type":"publish","channel":channel,"data":data,"id":"ack"}).to_string(),
    );
    assert_eq!(
        ack,
        json!({"type":"published","channel":channel,"id":"ack"})
    );
}

/// The raw JSON text of a top-level field of `text`, exactly as sent.
pub(crate) fn raw_field(text: &str, field: &str) -> Option<String> {
    let fields: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not a JSON object ({e}): {text}"));
    fields.get(field).map(|raw| raw.get().to_string())
}

/// Sends `request`, expects an error reply with `code` and the raw `id` (or
/// none), then proves the connection still works.
fn assert_error(c: &mut Client, request: &str, code: &str, id: Option<&str>) {
    c.send_text(request);
    let text = c.recv_text();
    let reply: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(reply["type"], "error", "{request} -> {text}");
    assert_eq!(reply["code"], code, "{request} -> {text}");
    assert!(
        reply["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{request} -> {text}"
    );
    assert_eq!(raw_field(&text, "id").as_deref(), id, "{request} -> {text}");
    c.assert_heartbeat_next();
}
