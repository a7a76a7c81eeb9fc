//! The messages of Centrifugo's client protocol v2 that corecast speaks,
//! written by hand from the protocol's published definitions
//! (`definitions/client.proto` of centrifugal/protocol): prost derives the
//! Protobuf form, serde the JSON form. Field numbers are the protocol's;
//! fields corecast never reads or sets are left out (prost skips unknown
//! fields, serde ignores unknown keys). `bytes` fields carry JSON: raw JSON
//! values in the JSON form (see [`raw_json`]), the JSON text in Protobuf.

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// True for a field's default value, which neither form sends.
fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// A client command: `id` and exactly one request (none at all is a pong).
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct Command {
    /// Matches the reply to the command (0 only for pongs and `send`).
    #[prost(uint32, tag = "1")]
    pub id: u32,
    /// `connect`
    #[prost(message, optional, tag = "4")]
    pub connect: Option<ConnectRequest>,
    /// `subscribe`
    #[prost(message, optional, tag = "5")]
    pub subscribe: Option<SubscribeRequest>,
    /// `unsubscribe`
    #[prost(message, optional, tag = "6")]
    pub unsubscribe: Option<ChannelRequest>,
    /// `publish`
    #[prost(message, optional, tag = "7")]
    pub publish: Option<PublishRequest>,
    /// `presence`
    #[prost(message, optional, tag = "8")]
    pub presence: Option<ChannelRequest>,
    /// `presence_stats`
    #[prost(message, optional, tag = "9")]
    pub presence_stats: Option<ChannelRequest>,
    /// `history`
    #[prost(message, optional, tag = "10")]
    pub history: Option<HistoryRequest>,
    /// `ping` (not part of protocol v2's flow; answered "not available").
    #[prost(message, optional, tag = "11")]
    pub ping: Option<Unsupported>,
    /// `send` (asynchronous message to the server: no handler here).
    #[prost(message, optional, tag = "12")]
    pub send: Option<Unsupported>,
    /// `rpc` (no RPC handler here).
    #[prost(message, optional, tag = "13")]
    pub rpc: Option<Unsupported>,
    /// `refresh`
    #[prost(message, optional, tag = "14")]
    pub refresh: Option<RefreshRequest>,
    /// `sub_refresh` (no subscription tokens here).
    #[prost(message, optional, tag = "15")]
    pub sub_refresh: Option<Unsupported>,
}

/// A request corecast does not serve; its fields are not read.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
pub struct Unsupported {}

/// `connect {token, data, name, version}`
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct ConnectRequest {
    /// The connection token (JWT), as `/ws`'s `connect` takes.
    #[prost(string, tag = "1")]
    pub token: String,
    /// Client name, for logs.
    #[prost(string, tag = "4")]
    pub name: String,
}

/// `subscribe {channel, token, recover, epoch, offset, ...}`
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct SubscribeRequest {
    /// Channel name.
    #[prost(string, tag = "1")]
    pub channel: String,
    /// Subscription token (not supported: refused).
    #[prost(string, tag = "2")]
    pub token: String,
    /// Recover from `epoch`/`offset`.
    #[prost(bool, tag = "3")]
    pub recover: bool,
    /// The epoch the client's offset belongs to.
    #[prost(string, tag = "6")]
    pub epoch: String,
    /// The last offset the client has.
    #[prost(uint64, tag = "7")]
    pub offset: u64,
    /// Delta compression asked for (not negotiated: always full data).
    #[prost(string, tag = "12")]
    pub delta: String,
}

/// A request naming only a channel: unsubscribe, presence, presence_stats.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct ChannelRequest {
    /// Channel name.
    #[prost(string, tag = "1")]
    pub channel: String,
}

/// `publish {channel, data}`
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct PublishRequest {
    /// Channel name.
    #[prost(string, tag = "1")]
    pub channel: String,
    /// The payload: JSON (raw in JSON, its text in Protobuf).
    #[prost(bytes = "bytes", tag = "2")]
    #[serde(with = "raw_json")]
    pub data: Bytes,
    /// 0: a plain publish (1, a map publish, is not supported).
    #[prost(int32, tag = "3")]
    #[serde(rename = "type")]
    pub kind: i32,
}

/// `history {channel, limit, since, reverse}`
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct HistoryRequest {
    /// Channel name.
    #[prost(string, tag = "1")]
    pub channel: String,
    /// Most publications wanted (0: only the position; negative: all).
    #[prost(int32, tag = "7")]
    pub limit: i32,
    /// Only publications after this position.
    #[prost(message, optional, tag = "8")]
    pub since: Option<StreamPosition>,
    /// Newest first.
    #[prost(bool, tag = "9")]
    pub reverse: bool,
}

/// An offset in a stream, with the epoch it belongs to.
#[derive(Clone, PartialEq, prost::Message, Deserialize, Serialize)]
#[serde(default)]
pub struct StreamPosition {
    /// Offset.
    #[prost(uint64, tag = "1")]
    pub offset: u64,
    /// Epoch.
    #[prost(string, tag = "2")]
    pub epoch: String,
}

/// `refresh {token}`
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(default)]
pub struct RefreshRequest {
    /// The new connection token.
    #[prost(string, tag = "1")]
    pub token: String,
}

/// A reply to a command (`id` > 0), a push (`id` 0, `push` set) or, empty,
/// a server ping.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Reply {
    /// The command's id; 0 for pushes and pings.
    #[prost(uint32, tag = "1")]
    #[serde(skip_serializing_if = "is_default")]
    pub id: u32,
    /// The command failed.
    #[prost(message, optional, tag = "2")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Error>,
    /// A push.
    #[prost(message, optional, tag = "4")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<Push>,
    /// `connect` result.
    #[prost(message, optional, tag = "5")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<ConnectResult>,
    /// `subscribe` result.
    #[prost(message, optional, tag = "6")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<SubscribeResult>,
    /// `unsubscribe` result (empty).
    #[prost(message, optional, tag = "7")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsubscribe: Option<Empty>,
    /// `publish` result (empty).
    #[prost(message, optional, tag = "8")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish: Option<Empty>,
    /// `presence` result.
    #[prost(message, optional, tag = "9")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence: Option<PresenceResult>,
    /// `presence_stats` result.
    #[prost(message, optional, tag = "10")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_stats: Option<PresenceStatsResult>,
    /// `history` result.
    #[prost(message, optional, tag = "11")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryResult>,
    /// `refresh` result.
    #[prost(message, optional, tag = "14")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<RefreshResult>,
}

/// An empty result.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Empty {}

/// `{code, message, temporary}`
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Error {
    /// One of Centrifugo's error codes (100-113).
    #[prost(uint32, tag = "1")]
    pub code: u32,
    /// Human text.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Retrying may succeed.
    #[prost(bool, tag = "3")]
    #[serde(skip_serializing_if = "is_default")]
    pub temporary: bool,
}

/// A push: one of `pub`, `join`, `leave`, `unsubscribe`, `disconnect` for
/// `channel`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Push {
    /// The channel (empty for a disconnect).
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "is_default")]
    pub channel: String,
    /// A publication.
    #[prost(message, optional, tag = "4")]
    #[serde(rename = "pub", skip_serializing_if = "Option::is_none")]
    pub publication: Option<Publication>,
    /// A subscriber joined.
    #[prost(message, optional, tag = "5")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join: Option<ClientEvent>,
    /// A subscriber left.
    #[prost(message, optional, tag = "6")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leave: Option<ClientEvent>,
    /// The server ended the subscription.
    #[prost(message, optional, tag = "7")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsubscribe: Option<Unsubscribe>,
    /// The server is closing the connection.
    #[prost(message, optional, tag = "11")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disconnect: Option<Disconnect>,
}

/// `{info}` of a join or leave.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct ClientEvent {
    /// Who joined or left.
    #[prost(message, optional, tag = "1")]
    pub info: Option<ClientInfo>,
}

/// One client: user, connection id, and the token's `info`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct ClientInfo {
    /// User id ("" for anonymous).
    #[prost(string, tag = "1")]
    pub user: String,
    /// Connection id.
    #[prost(string, tag = "2")]
    pub client: String,
    /// The connection token's `info` claim (JSON).
    #[prost(bytes = "bytes", tag = "3")]
    #[serde(with = "raw_json", skip_serializing_if = "Bytes::is_empty")]
    pub conn_info: Bytes,
}

/// A publication: data, and its offset in a history channel.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Publication {
    /// The payload (JSON).
    #[prost(bytes = "bytes", tag = "4")]
    #[serde(with = "raw_json")]
    pub data: Bytes,
    /// Offset in the channel's stream (0: none).
    #[prost(uint64, tag = "6")]
    #[serde(skip_serializing_if = "is_default")]
    pub offset: u64,
}

/// `{code, reason}` of a server-side unsubscribe (2000-2499: the
/// subscription is over; 2500-2999: the SDK subscribes again, recovering).
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Unsubscribe {
    /// An unsubscribe code.
    #[prost(uint32, tag = "2")]
    pub code: u32,
    /// Human text.
    #[prost(string, tag = "3")]
    pub reason: String,
}

/// `{code, reason, reconnect}`
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Disconnect {
    /// A disconnect code (3000-3999).
    #[prost(uint32, tag = "1")]
    pub code: u32,
    /// Human text.
    #[prost(string, tag = "2")]
    pub reason: String,
    /// Whether the client should reconnect.
    #[prost(bool, tag = "3")]
    pub reconnect: bool,
}

/// The answer to `connect`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct ConnectResult {
    /// Connection id.
    #[prost(string, tag = "1")]
    pub client: String,
    /// Server version.
    #[prost(string, tag = "2")]
    pub version: String,
    /// The token expires: refresh before `ttl` seconds.
    #[prost(bool, tag = "3")]
    #[serde(skip_serializing_if = "is_default")]
    pub expires: bool,
    /// Seconds until the token expires.
    #[prost(uint32, tag = "4")]
    #[serde(skip_serializing_if = "is_default")]
    pub ttl: u32,
    /// Seconds between server pings.
    #[prost(uint32, tag = "7")]
    #[serde(skip_serializing_if = "is_default")]
    pub ping: u32,
    /// The client answers pings with pongs.
    #[prost(bool, tag = "8")]
    #[serde(skip_serializing_if = "is_default")]
    pub pong: bool,
    /// Server-side subscriptions (the user's personal channel `#USER`):
    /// the protocol's `map<string, SubscribeResult>`, as the repeated
    /// entries it is on the wire, because prost leaves out a map value
    /// equal to its default and the SDK then reads an absent result.
    #[prost(message, repeated, tag = "6")]
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "entries_as_map"
    )]
    pub subs: Vec<SubscriptionEntry>,
}

/// One entry of [`ConnectResult::subs`]: channel -> subscribe result.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SubscriptionEntry {
    /// The channel.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Its subscribe result, always written (even when empty).
    #[prost(message, optional, tag = "2")]
    pub value: Option<SubscribeResult>,
}

/// Map entries as the JSON object they stand for.
fn entries_as_map<S: serde::Serializer>(
    entries: &[SubscriptionEntry],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(entries.len()))?;
    for entry in entries {
        map.serialize_entry(&entry.key, &entry.value.clone().unwrap_or_default())?;
    }
    map.end()
}

/// The answer to `refresh`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct RefreshResult {
    /// Connection id.
    #[prost(string, tag = "1")]
    pub client: String,
    /// Server version.
    #[prost(string, tag = "2")]
    pub version: String,
    /// The new token expires.
    #[prost(bool, tag = "3")]
    #[serde(skip_serializing_if = "is_default")]
    pub expires: bool,
    /// Seconds until it does.
    #[prost(uint32, tag = "4")]
    #[serde(skip_serializing_if = "is_default")]
    pub ttl: u32,
}

/// The answer to `subscribe`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct SubscribeResult {
    /// The channel keeps history: the client tracks its position.
    #[prost(bool, tag = "3")]
    #[serde(skip_serializing_if = "is_default")]
    pub recoverable: bool,
    /// The stream's epoch.
    #[prost(string, tag = "6")]
    #[serde(skip_serializing_if = "is_default")]
    pub epoch: String,
    /// Recovered publications, oldest first.
    #[prost(message, repeated, tag = "7")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub publications: Vec<Publication>,
    /// Every missed publication is in `publications`.
    #[prost(bool, tag = "8")]
    #[serde(skip_serializing_if = "is_default")]
    pub recovered: bool,
    /// The stream's top offset.
    #[prost(uint64, tag = "9")]
    #[serde(skip_serializing_if = "is_default")]
    pub offset: u64,
    /// The subscription is positioned (offset and epoch are meaningful).
    #[prost(bool, tag = "10")]
    #[serde(skip_serializing_if = "is_default")]
    pub positioned: bool,
    /// The client asked to recover.
    #[prost(bool, tag = "12")]
    #[serde(skip_serializing_if = "is_default")]
    pub was_recovering: bool,
}

/// The answer to `presence`: connection id -> client.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct PresenceResult {
    /// Every subscriber, by connection id.
    #[prost(map = "string, message", tag = "1")]
    pub presence: HashMap<String, ClientInfo>,
}

/// The answer to `presence_stats`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct PresenceStatsResult {
    /// Subscribed connections.
    #[prost(uint32, tag = "1")]
    pub num_clients: u32,
    /// Distinct users among them.
    #[prost(uint32, tag = "2")]
    pub num_users: u32,
}

/// The answer to `history`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct HistoryResult {
    /// The page.
    #[prost(message, repeated, tag = "1")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub publications: Vec<Publication>,
    /// The stream's epoch.
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "is_default")]
    pub epoch: String,
    /// The stream's top offset.
    #[prost(uint64, tag = "3")]
    #[serde(skip_serializing_if = "is_default")]
    pub offset: u64,
}

/// `bytes` fields in the JSON form: the JSON value itself, not base64 (as
/// Centrifugo's JSON protocol carries them). Empty bytes are `null` going
/// out; a value coming in is kept as its exact text.
pub mod raw_json {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::value::RawValue;

    /// Writes `bytes` (JSON text) as a raw JSON value.
    pub fn serialize<S: Serializer>(bytes: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        use serde::Serialize;
        let text = std::str::from_utf8(bytes).unwrap_or("null");
        let text = if text.is_empty() { "null" } else { text };
        match serde_json::from_str::<&RawValue>(text) {
            Ok(raw) => raw.serialize(s),
            // Only JSON is ever stored (publishes are checked), so this is
            // a bug elsewhere; null keeps the reply valid.
            Err(_) => s.serialize_unit(),
        }
    }

    /// Reads any JSON value as its text.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        Ok(Bytes::from(
            String::from(Box::<str>::from(raw)).into_bytes(),
        ))
    }
}
