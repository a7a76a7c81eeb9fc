//! Admin routes about who is connected: `/api/user/send`,
//! `/api/user/disconnect`, `/api/presence`, `/api/presence_stats`.

use std::rc::Rc;
use std::sync::Arc;

use serde_json::json;

use super::api::{parse_body, Body};
use super::Request;
use crate::http::{query_param, Response};
use crate::message;
use crate::shard::{Query, Shard};

/// The body's `user`, checked by the rules a token's `sub` follows.
fn user_field(user: Option<String>) -> Result<String, Response> {
    let user = user.ok_or_else(|| Response::error(400, "missing field \"user\""))?;
    if user.is_empty() {
        return Err(Response::error(400, "user must not be empty"));
    }
    crate::auth::validate_user(&user)
        .map_err(|why| Response::error(400, &format!("user: {why}")))?;
    Ok(user)
}

/// The body and its checked `user`.
fn user_body(req: &Request) -> Result<(Body<'_>, String), Response> {
    let mut body = parse_body(req)?;
    let user = user_field(body.user.take())?;
    Ok((body, user))
}

/// `POST /api/user/send {"user":U,"data":ANY}`: delivers
/// `{"type":"message","channel":"#U","data":ANY}` to every connection of U.
pub(super) async fn send(shard: &Rc<Shard>, req: &Request) -> Response {
    let (body, user) = match user_body(req) {
        Ok(parsed) => parsed,
        Err(r) => return r,
    };
    let Some(data) = body.data else {
        return Response::error(400, "missing field \"data\"");
    };
    let channel = format!("#{user}");
    let frame = message::message_frame(&channel, data);
    if shard.clustered() {
        // Every process delivers it to the user's connections it holds.
        return match shard.publish_to_cluster(&channel, frame).await {
            Ok(()) => Response::json(200, json!({ "user": user, "published": true })),
            Err(e) => super::api::unavailable(&format!("user send failed: {e}")),
        };
    }
    shard.metrics.bump(|c| c.published += 1);
    let query = Query::UserSend {
        user: Arc::from(user.as_str()),
        frame,
    };
    let reports = shard.query(&shard.all_shards(), query).await;
    let shards = reports.iter().filter(|r| r.n_user_conns > 0).count();
    let connections: u64 = reports.iter().map(|r| r.n_user_conns).sum();
    Response::json(
        200,
        json!({ "user": user, "shards": shards, "connections": connections }),
    )
}

/// `POST /api/user/disconnect {"user":U}`: closes all of U's connections with 4000.
pub(super) async fn disconnect(shard: &Rc<Shard>, req: &Request) -> Response {
    let (_, user) = match user_body(req) {
        Ok(parsed) => parsed,
        Err(r) => return r,
    };
    if shard.clustered() {
        let payload = crate::broker::envelope::user_disconnect(&user);
        return match shard.publish_control(payload).await {
            Ok(()) => Response::json(200, json!({ "user": user, "published": true })),
            Err(e) => super::api::unavailable(&format!("user disconnect failed: {e}")),
        };
    }
    let query = Query::UserDisconnect {
        user: Arc::from(user.as_str()),
    };
    let reports = shard.query(&shard.all_shards(), query).await;
    let connections: u64 = reports.iter().map(|r| r.n_user_conns).sum();
    Response::json(200, json!({ "user": user, "disconnected": connections }))
}

/// `GET /api/presence?channel=C` and `GET /api/presence_stats?channel=C`:
/// the same answers a client gets, without the `type`, for any channel
/// (the API is trusted; presence need not be on in the namespace).
pub(super) async fn presence(shard: &Rc<Shard>, req: &Request, stats: bool) -> Response {
    let Some(channel) = query_param(&req.query, "channel") else {
        return Response::error(400, "missing query parameter channel (?channel=NAME)");
    };
    if let Err(msg) = message::validate_channel(&channel) {
        return Response::error(400, &msg);
    }
    let presence = shard.gather_presence(&channel, stats).await;
    if stats {
        return Response::json(
            200,
            json!({ "channel": channel, "clients": presence.n_clients, "users": presence.n_users }),
        );
    }
    let mut body = String::from(r#"{"channel":"#);
    body.push_str(&serde_json::Value::from(channel.as_str()).to_string());
    body.push_str(r#","clients":["#);
    message::push_joined(&mut body, &presence.clients);
    body.push(']');
    if presence.truncated {
        body.push_str(r#","truncated":true"#);
    }
    body.push('}');
    Response::json_text(body)
}
