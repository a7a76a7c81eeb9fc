//! Admin routes: `/metrics`, `/health`, `/latency`, and the server API for
//! backends (`/api/publish`, `/api/broadcast`, `/api/channels`,
//! `/api/stats`, `/api/disconnect`; users and presence in `users.rs`).
//! docs/operations.md documents each.

use std::rc::Rc;

use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

use super::report::interval_fanout;
use super::{history, users, Request};
use crate::http::Response;
use crate::shard::{merge_channels, Query, Shard, ShardId};
use crate::{latency, message, prom};

/// Answers one admin request.
pub async fn route(shard: &Rc<Shard>, req: &Request) -> Response {
    let Some(allowed) = methods(&req.path) else {
        return Response::error(404, &format!("no admin route {}", req.path));
    };
    if req.path.starts_with("/api/") {
        if let Err(response) = authorize(shard, req) {
            return response;
        }
    }
    if !allowed.contains(&req.method.as_str()) {
        let allow = allowed.join(", ");
        return Response::error(405, &format!("{} takes {allow}", req.path))
            .with_header(&format!("Allow: {allow}"));
    }
    match req.path.as_str() {
        "/metrics" => metrics(shard).await,
        "/health" => crate::http::health(shard),
        "/latency" => latency_hgrm(shard, req).await,
        "/api/channels" => channels(shard).await,
        "/api/stats" => stats(shard).await,
        "/api/publish" => publish(shard, req).await,
        "/api/history" => history::read(shard, req).await,
        "/api/history/remove" => history::remove(shard, req).await,
        "/api/broadcast" => broadcast(shard, req).await,
        "/api/presence" => users::presence(shard, req, false).await,
        "/api/presence_stats" => users::presence(shard, req, true).await,
        "/api/user/send" => users::send(shard, req).await,
        "/api/user/disconnect" => users::disconnect(shard, req).await,
        _ => disconnect(shard, req).await,
    }
}

/// Every admin route with the one method it takes; `route` answers 404 to
/// any other path. The fuzzing oracle reads the same table.
pub static ROUTES: [(&str, &str); 14] = [
    ("/metrics", "GET"),
    ("/health", "GET"),
    ("/latency", "GET"),
    ("/api/channels", "GET"),
    ("/api/stats", "GET"),
    ("/api/presence", "GET"),
    ("/api/presence_stats", "GET"),
    ("/api/history", "GET"),
    ("/api/publish", "POST"),
    ("/api/broadcast", "POST"),
    ("/api/disconnect", "POST"),
    ("/api/user/send", "POST"),
    ("/api/user/disconnect", "POST"),
    ("/api/history/remove", "POST"),
];

/// The methods `path` takes, or `None` when it is no admin route.
fn methods(path: &str) -> Option<&'static [&'static str]> {
    ROUTES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, method)| std::slice::from_ref(method))
}

fn authorize(shard: &Shard, req: &Request) -> Result<(), Response> {
    let Some(token) = &shard.config.config.admin_token else {
        return Ok(());
    };
    let given = req.authorization.as_deref().and_then(bearer_token);
    match given {
        Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
        _ => {
            let r = Response::error(
                401,
                "missing or wrong bearer token (Authorization: Bearer ...)",
            );
            Err(r.with_header("WWW-Authenticate: Bearer"))
        }
    }
}

/// The token of `Bearer <token>`; the scheme name is case-insensitive
/// (RFC 9110 section 11.1), so `bearer` and `BEARER` count too.
fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Compares without an early exit, so the time taken does not reveal how
/// much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn metrics(shard: &Rc<Shard>) -> Response {
    // Every shard's counters and latency, without starting a new interval.
    let query = Query::Metrics {
        reset_latency: false,
    };
    let reports = shard.query(&shard.all_shards(), query).await;
    Response {
        status: 200,
        content_type: prom::CONTENT_TYPE,
        headers: String::new(),
        body: prom::encode(reports).into(),
    }
}

async fn latency_hgrm(shard: &Rc<Shard>, req: &Request) -> Response {
    let reset = req
        .query
        .split('&')
        .any(|kv| kv == "reset=true" || kv == "reset=1");
    let merged = interval_fanout(shard, reset).await;
    Response {
        status: 200,
        content_type: "text/plain; charset=utf-8",
        headers: String::new(),
        body: latency::hgrm(&merged).into(),
    }
}

async fn channels(shard: &Rc<Shard>) -> Response {
    let reports = shard.query(&shard.all_shards(), Query::Channels).await;
    let merged = merge_channels(&reports);
    let list: Vec<_> = merged
        .iter()
        .map(|(c, n)| json!({"channel": c, "subscribers": n}))
        .collect();
    Response::json(200, json!({ "channels": list }))
}

async fn stats(shard: &Rc<Shard>) -> Response {
    let reports = shard.query(&shard.all_shards(), Query::Stats).await;
    let shards: Vec<_> = reports
        .iter()
        .map(|r| {
            let c = &r.counters;
            let per_sec = |n: u64| (n as f64 / r.uptime_secs.max(0.001) * 10.0).round() / 10.0;
            json!({
                "shard": r.shard.0,
                "connections": r.connections,
                "subscriptions": r.subscriptions,
                "channels": r.channels,
                "outbox_bytes": r.outbox_bytes,
                "bus_queue_depth": r.bus_queued,
                "messages_received": c.messages_received,
                "messages_published": c.published,
                "messages_delivered": c.delivered,
                "bytes_received": c.bytes_in,
                "bytes_sent": c.bytes_out,
                "slow_consumer_disconnects": c.slow_consumers(),
                "received_per_second": per_sec(c.messages_received),
                "published_per_second": per_sec(c.published),
                "delivered_per_second": per_sec(c.delivered),
                "uptime_seconds": r.uptime_secs.round(),
            })
        })
        .collect();
    let connections: u64 = reports.iter().map(|r| r.connections).sum();
    Response::json(
        200,
        json!({ "rss_bytes": rss_bytes(), "connections": connections, "shards": shards }),
    )
}

/// Resident memory of the whole process (shards share one address space).
fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .unwrap_or(0);
    pages * crate::sys::page_size()
}

/// Body fields of the API; `present` keeps `"data":null` as a value.
#[derive(Deserialize)]
pub(super) struct Body<'a> {
    pub(super) channel: Option<String>,
    #[serde(borrow, default, deserialize_with = "message::present")]
    pub(super) data: Option<&'a RawValue>,
    pub(super) connection_id: Option<String>,
    pub(super) user: Option<String>,
}

pub(super) fn parse_body(req: &Request) -> Result<Body<'_>, Response> {
    let text =
        std::str::from_utf8(&req.body).map_err(|_| Response::error(400, "body is not UTF-8"))?;
    // Before serde, whose error for an array depends on its length.
    if text.trim_start().starts_with('[') {
        return Err(Response::error(
            400,
            "body must be a JSON object, not an array",
        ));
    }
    let body: Body<'_> = serde_json::from_str(text)
        .map_err(|e| Response::error(400, &format!("body must be a JSON object: {e}")))?;
    if let Some(data) = body.data {
        // Every client must get the value as sent, whatever it speaks.
        crate::wire::check_data(data.get())
            .map_err(|e| Response::error_with_code(400, &e.0, "INVALID_DATA"))?;
    }
    Ok(body)
}

async fn publish(shard: &Rc<Shard>, req: &Request) -> Response {
    let body = match parse_body(req) {
        Ok(body) => body,
        Err(r) => return r,
    };
    let Some(channel) = body.channel else {
        return Response::error(400, "missing field \"channel\"");
    };
    if let Err(msg) = message::validate_channel(&channel) {
        return Response::error(400, &msg);
    }
    let Some(data) = body.data else {
        return Response::error(400, "missing field \"data\"");
    };
    if shard.history_options(&channel).is_some() {
        let data = bytes::Bytes::copy_from_slice(data.get().as_bytes());
        return match shard.publish_history(&channel, data).await {
            Some((offset, epoch)) => Response::json(
                200,
                json!({ "channel": channel, "offset": offset, "epoch": epoch.as_str() }),
            ),
            None if shard.clustered() => unavailable(&format!("publish to {channel} failed")),
            None => Response::error(503, &format!("the history of {channel} did not answer")),
        };
    }
    let frame = message::message_frame(&channel, data);
    if shard.clustered() {
        return match shard.publish_to_cluster(&channel, frame).await {
            Ok(()) => Response::json(200, json!({ "channel": channel, "published": true })),
            Err(e) => unavailable(&format!("publish to {channel} failed: {e}")),
        };
    }
    let reached = shard.publish(&channel, frame);
    Response::json(200, json!({ "channel": channel, "shards": reached }))
}

/// 503 with the `UNAVAILABLE` code: Redis mode, and Redis did not take it.
pub(super) fn unavailable(message: &str) -> Response {
    Response::json(503, json!({ "error": message, "code": "UNAVAILABLE" }))
}

async fn broadcast(shard: &Rc<Shard>, req: &Request) -> Response {
    let body = match parse_body(req) {
        Ok(body) => body,
        Err(r) => return r,
    };
    let Some(data) = body.data else {
        return Response::error(400, "missing field \"data\"");
    };
    let frame = message::broadcast_frame(data);
    if shard.clustered() {
        let payload = crate::broker::envelope::broadcast(&frame);
        return match shard.publish_control(payload).await {
            Ok(()) => Response::json(200, json!({ "published": true })),
            Err(e) => unavailable(&format!("broadcast failed: {e}")),
        };
    }
    shard.broadcast(frame);
    Response::json(200, json!({ "shards": shard.shared.n_shards }))
}

async fn disconnect(shard: &Rc<Shard>, req: &Request) -> Response {
    let body = match parse_body(req) {
        Ok(body) => body,
        Err(r) => return r,
    };
    let Some(id) = body.connection_id else {
        return Response::error(400, "missing field \"connection_id\"");
    };
    // Redis mode names connections `NODE.SHARD-SEQ`; this process answers
    // for its own node (and for the bare `SHARD-SEQ`).
    let (node, local) = match id.split_once('.') {
        Some((node, local)) => (Some(node), local),
        None => (None, id.as_str()),
    };
    let parsed = local
        .split_once('-')
        .and_then(|(s, q)| Some((s.parse::<u16>().ok()?, q.parse::<u64>().ok()?)));
    let Some((shard_idx, seq)) = parsed else {
        return Response::error(
            400,
            "connection_id must look like \"<shard>-<sequence>\" (e.g. \"0-17\"), \
             or \"<node>.<shard>-<sequence>\" in Redis mode",
        );
    };
    if node.is_some_and(|n| n != shard.shared.node_id) {
        return Response::error(
            404,
            &format!(
                "no connection {id} in this process: it is node {}",
                shard.shared.node_id
            ),
        );
    }
    if shard_idx as usize >= shard.shared.n_shards {
        return Response::error(404, &format!("no connection {id}"));
    }
    let reports = shard
        .query(&[ShardId(shard_idx)], Query::Disconnect { seq })
        .await;
    if reports.iter().any(|r| r.found) {
        Response::json(200, json!({ "connection_id": id, "disconnected": true }))
    } else {
        Response::error(404, &format!("no connection {id}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(body: &str) -> Request {
        Request {
            method: "POST".into(),
            path: "/api/publish".into(),
            query: String::new(),
            authorization: None,
            body: body.as_bytes().to_vec(),
            keep_alive: false,
        }
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for (header, token) in [
            ("Bearer t", Some("t")),
            ("bearer t", Some("t")),
            ("BEARER  t ", Some("t")),
            ("Basic t", None),
            ("Bearert", None),
            ("t", None),
        ] {
            assert_eq!(bearer_token(header), token, "{header:?}");
        }
    }

    #[test]
    fn bodies_must_be_objects() {
        let req = post(r#"{"channel":"c","data":1}"#);
        assert!(parse_body(&req).is_ok());
        let req = post(r#"["c", 1, "0-1"]"#);
        let err = parse_body(&req).err().expect("an array is refused");
        assert_eq!(err.status, 400);
        assert!(err.body.contains("not an array"), "{}", err.body);
    }
}
