//! `--encoding centrifugo` / `centrifugo-protobuf`: connections to /ws go to
//! `/connection/websocket` instead and speak Centrifugo's client protocol
//! (what the `centrifuge` SDKs speak), and the driver translates at its edge
//! so the workloads keep speaking corecast's /ws JSON: the connect command
//! (with the connection's token) goes first, a workload's `subscribe` and
//! `publish` become Centrifugo commands, and replies and pushes come back
//! as the /ws messages the workloads expect (`pub` push → `message`,
//! subscribe result → `subscribed` with `offset`/`epoch`). Server pings are
//! answered here. The translation costs the bench CPU per message, on the
//! bench's cores, not the server's.

use std::io::Write;

use prost::Message as _;
use serde_json::Value;

/// The path of Centrifugo's bidirectional WebSocket endpoint.
pub const PATH: &str = "/connection/websocket";

/// The upgrade header the SDK's Protobuf build sends.
pub const PROTOBUF_OFFER: &str = "Sec-WebSocket-Protocol: centrifuge-protobuf";

/// Which of the protocol's two encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// Newline-separated JSON objects in text frames.
    Json,
    /// Varint-length-delimited Protobuf messages in binary frames.
    Protobuf,
}

/// True when an upgrade response head chose the Protobuf encoding.
pub fn agreed_protobuf(head: &[u8]) -> bool {
    String::from_utf8_lossy(head)
        .to_ascii_lowercase()
        .contains("\r\nsec-websocket-protocol: centrifuge-protobuf")
}

/// One connection's protocol state: its encoding, the token its connect
/// command carries, and the next command id.
#[derive(Debug)]
pub struct Session {
    /// The encoding.
    pub proto: Proto,
    token: Option<Box<str>>,
    next_id: u32,
}

impl Session {
    /// A session that will connect with `token` (anonymous without one).
    pub fn new(proto: Proto, token: Option<&str>) -> Session {
        Session {
            proto,
            token: token.map(Into::into),
            next_id: CONNECT_ID + 1,
        }
    }

    /// The WebSocket opcode of this encoding's frames.
    pub fn opcode(&self) -> u8 {
        match self.proto {
            Proto::Json => crate::ws::OP_TEXT,
            Proto::Protobuf => crate::ws::OP_BINARY,
        }
    }

    /// The connect command, the connection's first.
    pub fn connect(&self) -> Vec<u8> {
        let token = self.token.as_deref().unwrap_or_default();
        match self.proto {
            Proto::Json => serde_json::to_vec(&serde_json::json!({
                "id": CONNECT_ID,
                "connect": {"token": token, "name": "corecast-bench"}
            }))
            .expect("serializable"),
            Proto::Protobuf => pb::Command {
                id: CONNECT_ID,
                connect: Some(pb::ConnectRequest {
                    token: token.to_string(),
                    name: "corecast-bench".into(),
                }),
                ..Default::default()
            }
            .encode_length_delimited_to_vec(),
        }
    }

    /// The pong that answers a server ping.
    pub fn pong(&self) -> &'static [u8] {
        match self.proto {
            Proto::Json => b"{}",
            Proto::Protobuf => &[0],
        }
    }

    /// A workload's /ws request (JSON text) as a Centrifugo command.
    /// `subscribe` and `publish` have a form; anything else is an error.
    pub fn command(&mut self, text: &[u8]) -> Result<Vec<u8>, String> {
        let v: Value =
            serde_json::from_slice(text).map_err(|e| format!("bench sent non-JSON: {e}"))?;
        let channel = v["channel"].as_str().unwrap_or_default().to_string();
        // Every Centrifugo command has an id and gets a reply; a /ws request
        // without one gets none, so its id is marked to drop the result.
        let unasked = if v.get("id").is_some() { 0 } else { UNASKED };
        let id = self.next_id | unasked;
        self.next_id = (self.next_id + 1) % UNASKED;
        self.next_id = self.next_id.max(CONNECT_ID + 1);
        let kind = v["type"].as_str().unwrap_or_default();
        Ok(match (self.proto, kind) {
            (Proto::Json, "subscribe") => serde_json::to_vec(
                &serde_json::json!({"id": id, "subscribe": {"channel": channel}}),
            )
            .expect("serializable"),
            (Proto::Json, "publish") => serde_json::to_vec(
                &serde_json::json!({"id": id, "publish": {"channel": channel, "data": v["data"]}}),
            )
            .expect("serializable"),
            (Proto::Protobuf, "subscribe") => pb::Command {
                id,
                subscribe: Some(pb::SubscribeRequest { channel }),
                ..Default::default()
            }
            .encode_length_delimited_to_vec(),
            (Proto::Protobuf, "publish") => pb::Command {
                id,
                publish: Some(pb::PublishRequest {
                    channel,
                    data: serde_json::to_vec(&v["data"]).expect("serializable"),
                }),
                ..Default::default()
            }
            .encode_length_delimited_to_vec(),
            (_, other) => return Err(format!("no Centrifugo command for a /ws {other:?}")),
        })
    }

    /// One frame from the server as /ws messages, each appended to `out`
    /// as JSON text; returns how many server pings it held (each wants a
    /// pong).
    pub fn replies(&self, frame: &[u8], out: &mut Vec<Vec<u8>>) -> Result<usize, String> {
        let mut pings = 0;
        match self.proto {
            Proto::Json => {
                for line in frame.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    if let Some(m) = json_pub_fast(line) {
                        out.push(m);
                        continue;
                    }
                    let v: Value = serde_json::from_slice(line)
                        .map_err(|e| format!("protocol: a reply that is not JSON: {e}"))?;
                    match native_of_json(&v) {
                        Some(m) => out.push(m),
                        None if v.as_object().is_some_and(|o| o.is_empty()) => pings += 1,
                        None => {}
                    }
                }
            }
            Proto::Protobuf => {
                let mut rest = frame;
                while !rest.is_empty() {
                    let reply = pb::Reply::decode_length_delimited(&mut rest)
                        .map_err(|e| format!("protocol: a reply that is not Protobuf: {e}"))?;
                    if reply == pb::Reply::default() {
                        pings += 1;
                    } else if let Some(m) = native_of_protobuf(reply) {
                        out.push(m);
                    }
                }
            }
        }
        Ok(pings)
    }
}

/// The connect command's id; its result is the bench's own business.
const CONNECT_ID: u32 = 1;
/// The id bit of a command whose /ws request had no `id`: its result is
/// dropped (errors still reach the workload).
const UNASKED: u32 = 1 << 31;

/// The usual delivery, `{"push":{"channel":C,"pub":{"data":D[,"offset":N]}}}`
/// as the server writes it, turned into a /ws `message` without parsing
/// `D`; `None` for anything else (the general path handles it). Keeps the
/// bench's cost per delivery near that of /ws JSON.
fn json_pub_fast(line: &[u8]) -> Option<Vec<u8>> {
    const HEAD: &[u8] = br#"{"push":{"channel":"#;
    const PUB: &[u8] = br#","pub":{"data":"#;
    let rest = line.strip_prefix(HEAD)?.strip_suffix(b"}}}")?;
    let at = rest.windows(PUB.len()).position(|w| w == PUB)?;
    let (channel, data) = (&rest[..at], &rest[at + PUB.len()..]);
    if channel.len() < 2 || channel.contains(&b'\\') {
        return None;
    }
    let mut out = Vec::with_capacity(line.len() + 8);
    out.extend_from_slice(br#"{"type":"message","channel":"#);
    out.extend_from_slice(channel);
    out.extend_from_slice(br#","data":"#);
    out.extend_from_slice(data);
    out.push(b'}');
    Some(out)
}

/// A Centrifugo JSON reply or push as the /ws message a workload expects;
/// `None` for a ping and the connect result.
fn native_of_json(v: &Value) -> Option<Vec<u8>> {
    if let Some(e) = v.get("error") {
        return Some(error(
            e["code"].as_u64().unwrap_or(0),
            e["message"].as_str(),
        ));
    }
    if let Some(push) = v.get("push") {
        let channel = push["channel"].as_str().unwrap_or_default();
        if let Some(p) = push.get("pub") {
            let data = serde_json::to_vec(&p["data"]).expect("serializable");
            return Some(message(channel, &data, p["offset"].as_u64()));
        }
        for kind in ["join", "leave"] {
            if push.get(kind).is_some() {
                return Some(
                    format!(r#"{{"type":"{kind}","channel":{}}}"#, quote(channel)).into_bytes(),
                );
            }
        }
        let u = &push["unsubscribe"];
        return Some(error(u["code"].as_u64().unwrap_or(0), u["reason"].as_str()));
    }
    if let Some(s) = v.get("subscribe") {
        let offset = s["offset"].as_u64().unwrap_or(0);
        let positioned = s["recoverable"].as_bool() == Some(true) || s.get("offset").is_some();
        return Some(subscribed(
            positioned.then_some(offset),
            s["epoch"].as_str(),
        ));
    }
    let asked = v["id"]
        .as_u64()
        .is_some_and(|id| id & u64::from(UNASKED) == 0);
    (asked && v.get("publish").is_some()).then(|| br#"{"type":"published"}"#.to_vec())
}

/// A Centrifugo Protobuf reply or push as the /ws message a workload
/// expects; `None` for the connect result.
fn native_of_protobuf(reply: pb::Reply) -> Option<Vec<u8>> {
    if let Some(e) = reply.error {
        return Some(error(u64::from(e.code), Some(&e.message)));
    }
    if let Some(push) = reply.push {
        if let Some(p) = push.publication {
            return Some(message(&push.channel, &p.data, Some(p.offset)));
        }
        if let Some(u) = push.unsubscribe {
            return Some(error(u64::from(u.code), Some(&u.reason)));
        }
        let kind = if push.join.is_some() { "join" } else { "leave" };
        return Some(
            format!(r#"{{"type":"{kind}","channel":{}}}"#, quote(&push.channel)).into_bytes(),
        );
    }
    if let Some(s) = reply.subscribe {
        let positioned = s.recoverable || s.positioned;
        return Some(subscribed(positioned.then_some(s.offset), Some(&s.epoch)));
    }
    let asked = reply.id & UNASKED == 0;
    (asked && reply.publish.is_some()).then(|| br#"{"type":"published"}"#.to_vec())
}

/// `{"type":"message","channel":C,"data":D[,"offset":O]}`, `data` copied as
/// it came (JSON text).
fn message(channel: &str, data: &[u8], offset: Option<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + channel.len() + data.len());
    out.extend_from_slice(br#"{"type":"message","channel":"#);
    out.extend_from_slice(quote(channel).as_bytes());
    out.extend_from_slice(br#","data":"#);
    out.extend_from_slice(data);
    if let Some(offset) = offset.filter(|o| *o > 0) {
        // Writing to a Vec cannot fail.
        let _ = write!(out, r#","offset":{offset}"#);
    }
    out.push(b'}');
    out
}

fn subscribed(offset: Option<u64>, epoch: Option<&str>) -> Vec<u8> {
    let mut v = serde_json::json!({"type": "subscribed"});
    if let Some(offset) = offset {
        v["offset"] = offset.into();
        v["epoch"] = epoch.unwrap_or_default().into();
    }
    serde_json::to_vec(&v).expect("serializable")
}

fn error(code: u64, message: Option<&str>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": "error",
        "code": format!("CENTRIFUGO_{code}"),
        "message": message.unwrap_or_default(),
    }))
    .expect("serializable")
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// The few messages of Centrifugo's client protocol the bench sends and
/// reads, with the field numbers of its `client.proto` (the server's
/// `src/centrifugo/proto.rs` has all of them).
mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Command {
        #[prost(uint32, tag = "1")]
        pub id: u32,
        #[prost(message, optional, tag = "4")]
        pub connect: Option<ConnectRequest>,
        #[prost(message, optional, tag = "5")]
        pub subscribe: Option<SubscribeRequest>,
        #[prost(message, optional, tag = "7")]
        pub publish: Option<PublishRequest>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ConnectRequest {
        #[prost(string, tag = "1")]
        pub token: String,
        #[prost(string, tag = "4")]
        pub name: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SubscribeRequest {
        #[prost(string, tag = "1")]
        pub channel: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PublishRequest {
        #[prost(string, tag = "1")]
        pub channel: String,
        #[prost(bytes = "vec", tag = "2")]
        pub data: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Reply {
        #[prost(uint32, tag = "1")]
        pub id: u32,
        #[prost(message, optional, tag = "2")]
        pub error: Option<Error>,
        #[prost(message, optional, tag = "4")]
        pub push: Option<Push>,
        #[prost(message, optional, tag = "6")]
        pub subscribe: Option<SubscribeResult>,
        #[prost(message, optional, tag = "8")]
        pub publish: Option<Empty>,
        /// The connect result, skipped but counted as "not a ping".
        #[prost(message, optional, tag = "5")]
        pub connect: Option<Empty>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Empty {}

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Error {
        #[prost(uint32, tag = "1")]
        pub code: u32,
        #[prost(string, tag = "2")]
        pub message: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Push {
        #[prost(string, tag = "2")]
        pub channel: String,
        #[prost(message, optional, tag = "4")]
        pub publication: Option<Publication>,
        #[prost(message, optional, tag = "5")]
        pub join: Option<Empty>,
        #[prost(message, optional, tag = "6")]
        pub leave: Option<Empty>,
        #[prost(message, optional, tag = "7")]
        pub unsubscribe: Option<Unsubscribe>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Publication {
        #[prost(bytes = "vec", tag = "4")]
        pub data: Vec<u8>,
        #[prost(uint64, tag = "6")]
        pub offset: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Unsubscribe {
        #[prost(uint32, tag = "2")]
        pub code: u32,
        #[prost(string, tag = "3")]
        pub reason: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SubscribeResult {
        #[prost(bool, tag = "3")]
        pub recoverable: bool,
        #[prost(string, tag = "6")]
        pub epoch: String,
        #[prost(uint64, tag = "9")]
        pub offset: u64,
        #[prost(bool, tag = "10")]
        pub positioned: bool,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_requests_and_replies_translate_both_ways() {
        let mut s = Session::new(Proto::Json, Some("T"));
        let connect: Value = serde_json::from_slice(&s.connect()).unwrap();
        assert_eq!(connect["connect"]["token"], "T");
        let cmd = s
            .command(br#"{"type":"publish","channel":"c","data":{"p":1}}"#)
            .unwrap();
        let cmd: Value = serde_json::from_slice(&cmd).unwrap();
        let unasked = 2 | u64::from(UNASKED);
        assert_eq!(
            cmd,
            serde_json::json!({"id": unasked, "publish": {"channel": "c", "data": {"p": 1}}})
        );
        let mut out = Vec::new();
        let result = format!(r#"{{"id":{unasked},"publish":{{}}}}"#);
        s.replies(result.as_bytes(), &mut out).unwrap();
        assert!(out.is_empty(), "a publish without an id gets no reply");
        let frame = concat!(
            r#"{"id":1,"connect":{"client":"0-1"}}"#,
            "\n{}\n",
            r#"{"push":{"channel":"c","pub":{"data":{"p":1},"offset":7}}}"#,
            "\n",
            r#"{"id":2,"subscribe":{"recoverable":true,"epoch":"e","offset":3}}"#,
        );
        let mut out = Vec::new();
        assert_eq!(
            s.replies(frame.as_bytes(), &mut out).unwrap(),
            1,
            "one ping"
        );
        let out: Vec<String> = out
            .into_iter()
            .map(|m| String::from_utf8(m).unwrap())
            .collect();
        assert_eq!(
            out,
            [
                r#"{"type":"message","channel":"c","data":{"p":1},"offset":7}"#,
                r#"{"epoch":"e","offset":3,"type":"subscribed"}"#,
            ]
        );
        assert!(s.command(br#"{"type":"heartbeat"}"#).is_err());
        let line = br#"{"push":{"channel":"c","pub":{"data":"x}}}"}}}"#;
        let general = native_of_json(&serde_json::from_slice(line).unwrap()).unwrap();
        assert_eq!(
            json_pub_fast(line).unwrap(),
            general,
            "the fast path agrees"
        );
        assert_eq!(
            general,
            br#"{"type":"message","channel":"c","data":"x}}}"}"#
        );
    }

    #[test]
    fn protobuf_replies_translate() {
        let s = Session::new(Proto::Protobuf, None);
        let mut frame = Vec::new();
        let push = pb::Reply {
            push: Some(pb::Push {
                channel: "c".into(),
                publication: Some(pb::Publication {
                    data: br#"{"p":1}"#.to_vec(),
                    offset: 0,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        frame.push(0); // A ping.
        push.encode_length_delimited(&mut frame).unwrap();
        let mut out = Vec::new();
        assert_eq!(s.replies(&frame, &mut out).unwrap(), 1);
        assert_eq!(
            out,
            [br#"{"type":"message","channel":"c","data":{"p":1}}"#.to_vec()]
        );
    }
}
