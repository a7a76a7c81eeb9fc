//! Admin routes of history channels: `GET /api/history`,
//! `POST /api/history/remove`.

use std::rc::Rc;

use serde_json::json;

use super::api::parse_body;
use super::Request;
use crate::http::{query_param, Response};
use crate::message::{self, Position};
use crate::shard::Shard;

/// The channel named in `value`, checked, and keeping history.
fn history_channel(shard: &Shard, value: Option<String>) -> Result<String, Response> {
    let channel = value.ok_or_else(|| Response::error(400, "missing channel"))?;
    message::validate_channel(&channel).map_err(|msg| Response::error(400, &msg))?;
    if shard.history_options(&channel).is_none() {
        return Err(Response::error(
            404,
            &format!(
                "{channel} keeps no history (its namespace has no history_size and history_ttl)"
            ),
        ));
    }
    Ok(channel)
}

/// `GET /api/history?channel=C[&limit=N][&since=O&epoch=E][&reverse=true]`:
/// `{"channel":C,"publications":[{"data":..,"offset":..}],"offset":TOP,"epoch":E}`.
pub(super) async fn read(shard: &Rc<Shard>, req: &Request) -> Response {
    let channel = match history_channel(shard, query_param(&req.query, "channel")) {
        Ok(channel) => channel,
        Err(r) => return r,
    };
    let number = |name: &str| -> Result<Option<u64>, Response> {
        query_param(&req.query, name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    Response::error(400, &format!("{name} must be a non-negative integer"))
                })
            })
            .transpose()
    };
    let (limit, since) = match (number("limit"), number("since")) {
        (Ok(limit), Ok(since)) => (limit, since),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let since = since.map(|offset| Position {
        offset,
        epoch: query_param(&req.query, "epoch").unwrap_or_default(),
    });
    let reverse = query_param(&req.query, "reverse").is_some_and(|v| v == "true" || v == "1");
    let limit = usize::try_from(limit.unwrap_or(0)).unwrap_or(usize::MAX);
    match shard.read_history(&channel, since, limit, reverse).await {
        Some(Ok(page)) => {
            let mut body = String::from(r#"{"channel":"#);
            body.push_str(&serde_json::Value::from(channel.as_str()).to_string());
            body.push(',');
            message::push_page(&mut body, &page);
            body.push('}');
            Response::json_text(body)
        }
        Some(Err(e)) => Response::error(409, &format!("{e}: since names another epoch")),
        None => Response::error(503, &format!("the history of {channel} did not answer")),
    }
}

/// `POST /api/history/remove {"channel":C}`: drops the history; the next
/// publication starts a new epoch.
pub(super) async fn remove(shard: &Rc<Shard>, req: &Request) -> Response {
    let body = match parse_body(req) {
        Ok(body) => body,
        Err(r) => return r,
    };
    let channel = match history_channel(shard, body.channel) {
        Ok(channel) => channel,
        Err(r) => return r,
    };
    if shard.remove_history(&channel).await {
        Response::json(200, json!({ "channel": channel, "removed": true }))
    } else {
        Response::error(503, &format!("the history of {channel} did not answer"))
    }
}
