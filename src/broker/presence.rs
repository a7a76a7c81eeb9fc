//! Cluster-wide presence in Redis: the scripts that add, remove and list a
//! channel's present clients, and the decoding of their replies. No I/O.
//!
//! Per channel, a hash (field: the connection's cluster-wide id, value: its
//! client object as a presence reply shows it) and a sorted set of the same
//! fields by expiry time (ms). Each process refreshes its own entries every
//! third of `--redis-presence-ttl`, so a crashed process's clients leave
//! the lists within that ttl; every read drops expired entries first.

use crate::redis::Reply;

/// Adds or refreshes entries. KEYS: hash, zset. ARGV: ttl ms, then field,
/// value pairs. Uses Redis time, so processes need not agree on clocks.
pub const ADD: &str = r#"
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('hset', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('zadd', KEYS[2], now + ttl, ARGV[i])
end
redis.call('pexpire', KEYS[1], ttl)
redis.call('pexpire', KEYS[2], ttl)
return 1
"#;

/// Lists a channel's present clients. KEYS: hash, zset. ARGV: limit, and
/// `stats` (1: count distinct users instead of listing). Returns
/// `{clients, users_or_0, value...}`.
pub const GET: &str = r#"
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('zrangebyscore', KEYS[2], '-inf', now)
for _, field in ipairs(expired) do
  redis.call('hdel', KEYS[1], field)
  redis.call('zrem', KEYS[2], field)
end
local n = redis.call('hlen', KEYS[1])
if ARGV[2] == '1' then
  local users = {}
  local distinct = 0
  for _, v in ipairs(redis.call('hvals', KEYS[1])) do
    local ok, client = pcall(cjson.decode, v)
    if ok and type(client) == 'table' and type(client.user) == 'string' and client.user ~= '' and not users[client.user] then
      users[client.user] = true
      distinct = distinct + 1
    end
  end
  return {n, distinct}
end
local out = {n, 0}
local limit = tonumber(ARGV[1])
local cursor = '0'
repeat
  local page = redis.call('hscan', KEYS[1], cursor, 'COUNT', 100)
  cursor = page[1]
  for i = 2, #page[2], 2 do
    if #out - 2 >= limit then return out end
    table.insert(out, page[2][i])
  end
until cursor == '0'
return out
"#;

/// A decoded [`GET`] reply.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PresenceReply {
    /// Present clients in all.
    pub n_clients: u64,
    /// Distinct users (stats only).
    pub n_users: u64,
    /// Client objects (JSON), at most the limit.
    pub clients: Vec<String>,
}

/// Decodes [`GET`]'s reply.
pub fn parse_get(reply: Reply) -> Result<PresenceReply, String> {
    let Reply::Array(items) = reply else {
        return Err(format!("presence script answered {reply:?}"));
    };
    let [n, users, rest @ ..] = items.as_slice() else {
        return Err(format!("presence script answered {} items", items.len()));
    };
    let count = |r: &Reply| match r {
        Reply::Int(n) if *n >= 0 => Ok(*n as u64),
        other => Err(format!("presence count {other:?}")),
    };
    let clients =
        rest.iter()
            .map(|r| match r {
                Reply::Bulk(b) => String::from_utf8(b.to_vec())
                    .map_err(|_| "presence entry not UTF-8".to_string()),
                other => Err(format!("presence entry {other:?}")),
            })
            .collect::<Result<Vec<_>, _>>()?;
    Ok(PresenceReply {
        n_clients: count(n)?,
        n_users: count(users)?,
        clients,
    })
}
