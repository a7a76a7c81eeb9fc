//! `ws_json`: one /ws text message through `message::parse`, its
//! re-serialization and the replies made from it.

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::ws::{redecode, Seen};
use crate::message::{self, Command, ErrorCode, Request, RequestError};

/// `ws_json`: one /ws text message. Parsing never panics; a parsed request
/// re-serializes to JSON that parses to the same request, and its replies
/// are valid JSON carrying its channel, data and id verbatim; an error has a
/// parse-time code (INVALID_JSON for text that is not JSON, never for JSON
/// serde_json reads) and its reply carries the code, the message and the id.
pub fn check_ws_json(data: &[u8]) {
    // The decoder refuses non-UTF-8 text (1007) before the parser sees it.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match message::parse(text) {
        Ok(request) => check_request(&request),
        Err(err) => check_request_error(text, &err),
    }
}

/// A server reply to a /ws request, as a client reads it.
#[derive(Deserialize)]
struct Reply<'a> {
    #[serde(rename = "type")]
    kind: String,
    channel: Option<String>,
    #[serde(borrow, default, deserialize_with = "message::present")]
    data: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "message::present")]
    id: Option<&'a RawValue>,
    code: Option<String>,
    message: Option<String>,
}

/// A request as plain strings: type, channel, raw data (or, for connect
/// and refresh, the token as a JSON string), raw id.
type Summary = (&'static str, Option<String>, Option<String>, Option<String>);

fn summary(request: &Request<'_>) -> Summary {
    let id = request.id.map(|id| id.get().to_string());
    match &request.command {
        // `recover` is checked by the integration tests.
        Command::Subscribe { channel, .. } => ("subscribe", Some(channel.clone()), None, id),
        Command::Unsubscribe { channel } => ("unsubscribe", Some(channel.clone()), None, id),
        Command::Publish { channel, data } => {
            let data = Some(data.get().to_string());
            ("publish", Some(channel.clone()), data, id)
        }
        Command::Heartbeat => ("heartbeat", None, None, id),
        Command::Connect { token } => ("connect", None, Some(json_string(token)), id),
        Command::Refresh { token } => ("refresh", None, Some(json_string(token)), id),
        Command::Presence { channel } => ("presence", Some(channel.clone()), None, id),
        Command::History { channel, .. } => ("history", Some(channel.clone()), None, id),
        Command::PresenceStats { channel } => ("presence_stats", Some(channel.clone()), None, id),
    }
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

fn check_request(request: &Request<'_>) {
    let (kind, channel, data, id) = summary(request);
    if let Some(id) = &id {
        let first = id.as_bytes()[0];
        assert!(
            first == b'"' || first == b'-' || first.is_ascii_digit(),
            "id {id}"
        );
    }
    // Re-serialize and parse again: the same request.
    let mut json = format!(r#"{{"type":"{kind}""#);
    if let Some(channel) = &channel {
        message::validate_channel(channel).expect("parse accepted an invalid channel");
        json.push_str(r#","channel":"#);
        json.push_str(&serde_json::Value::from(channel.as_str()).to_string());
    }
    let data_name = if matches!(kind, "connect" | "refresh") {
        "token"
    } else {
        "data"
    };
    for (name, raw) in [(data_name, &data), ("id", &id)] {
        if let Some(raw) = raw {
            json.push_str(&format!(r#","{name}":{raw}"#));
        }
    }
    json.push('}');
    let again = message::parse(&json).expect("re-serialized request parses");
    assert_eq!(
        summary(&again),
        (kind, channel.clone(), data.clone(), id.clone())
    );
    // The replies a client gets carry the fields verbatim.
    let frame = match &request.command {
        Command::Subscribe { channel, .. } => {
            message::channel_reply("subscribed", channel, request.id)
        }
        Command::Unsubscribe { channel } => {
            message::channel_reply("unsubscribed", channel, request.id)
        }
        Command::Publish { channel, data } => {
            let text = server_text(&message::message_frame(channel, data));
            let reply: Reply<'_> = serde_json::from_str(&text).expect("message frame is JSON");
            assert_eq!(reply.kind, "message");
            assert_eq!(reply.data.map(|d| d.get()), Some(data.get()));
            assert_eq!(reply.channel.as_deref(), Some(channel.as_str()));
            message::channel_reply("published", channel, request.id)
        }
        Command::Heartbeat => message::heartbeat(request.id),
        // Their replies depend on the server's state (keys, presence):
        // the integration tests check them.
        Command::Connect { .. }
        | Command::Refresh { .. }
        | Command::Presence { .. }
        | Command::PresenceStats { .. }
        | Command::History { .. } => return,
    };
    let text = server_text(&frame);
    let reply: Reply<'_> = serde_json::from_str(&text).expect("reply is JSON");
    assert_eq!(reply.channel, channel, "{text}");
    assert_eq!(reply.id.map(|i| i.get().to_string()), id, "{text}");
}

fn check_request_error(text: &str, err: &RequestError<'_>) {
    // Text that is not JSON by the grammar is INVALID_JSON. Grammatical
    // JSON that serde_json cannot hold (1e999 as a whole message, a lone
    // surrogate in a key) may be either; JSON it reads never is.
    if serde_json::from_str::<IgnoredAny>(text).is_err() {
        assert_eq!(err.code, ErrorCode::InvalidJson, "not JSON");
    } else if err.code == ErrorCode::InvalidJson {
        let value = serde_json::from_str::<serde_json::Value>(text);
        assert!(value.is_err(), "INVALID_JSON for JSON: {value:?}");
    }
    let parse_time = [
        ErrorCode::InvalidJson,
        ErrorCode::UnknownMessageType,
        ErrorCode::InvalidMessage,
        ErrorCode::InvalidChannel,
        ErrorCode::InvalidData,
    ];
    if err.code == ErrorCode::InvalidData {
        let fields: std::collections::HashMap<String, Box<RawValue>> =
            serde_json::from_str(text).expect("INVALID_DATA for a JSON object");
        let data = fields
            .get("data")
            .expect("INVALID_DATA for a request with data");
        assert!(crate::wire::check_data(data.get()).is_err());
    }
    assert!(parse_time.contains(&err.code), "{:?}", err.code);
    let reply_text = server_text(&message::error(err));
    let reply: Reply<'_> = serde_json::from_str(&reply_text).expect("error reply is JSON");
    assert_eq!(reply.kind, "error");
    assert_eq!(reply.code.as_deref(), Some(err.code.as_str()));
    assert_eq!(reply.message.as_deref(), Some(err.message.as_str()));
    assert_eq!(reply.id.map(|i| i.get()), err.id.map(|i| i.get()));
}

/// The text of one server text frame, decoded as a client would.
fn server_text(frame: &[u8]) -> String {
    match redecode(frame, usize::MAX).as_slice() {
        [Seen::Text(text)] => text.clone(),
        other => panic!("expected one text message, got {other:?}"),
    }
}
