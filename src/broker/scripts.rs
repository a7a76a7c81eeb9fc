//! The Lua scripts that keep history channels in Redis (offset, stream
//! append with its bounds, and PUBLISH in one atomic step; position,
//! recovery and reads), their arguments, and the decoding of their replies.
//! No I/O.
//!
//! Layout per channel (see `keys.rs`): a hash `meta` with the epoch `e` and
//! the top offset `s`, and a stream whose entry ids are `OFFSET-0`, each
//! entry `t` (Redis time, ms, when appended) and `d` (the JSON data). The
//! stream expires `history_ttl` after the last publish and the hash
//! `--history-meta-ttl` after the last use, as the in-process store does;
//! a publication older than `history_ttl` is skipped by every read.

use bytes::Bytes;

use crate::history::{Epoch, HistoryError, HistoryPage, Publication, Recovery};
use crate::redis::Reply;

/// Appends one publication and publishes it. KEYS: stream, meta. ARGV:
/// pub/sub channel, data, history_size, history_ttl ms, meta ttl ms, an
/// epoch to use if the channel has none. Returns `{offset, epoch}`.
pub const PUBLISH: &str = r#"
local e = redis.call('hget', KEYS[2], 'e')
if not e then
  e = ARGV[6]
  redis.call('del', KEYS[1])
  redis.call('hset', KEYS[2], 'e', e, 's', 0)
end
local s = redis.call('hincrby', KEYS[2], 's', 1)
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('xadd', KEYS[1], 'MAXLEN', ARGV[3], s .. '-0', 't', now, 'd', ARGV[2])
redis.call('pexpire', KEYS[1], ARGV[4])
redis.call('pexpire', KEYS[2], ARGV[5])
redis.call('publish', ARGV[1], 'H' .. s .. ':' .. e .. ':' .. ARGV[2])
return {s, e}
"#;

/// Position, recovery and reads. KEYS: stream, meta. ARGV: an epoch to use
/// if the channel has none, meta ttl ms, history_ttl ms, mode (`position`,
/// `recover`, `read`, `reverse`), since offset (or empty), since epoch,
/// limit. Returns `{top, epoch, flag, offset, data, offset, data...}` where
/// flag is 1 when a recovery succeeded, -1 when a read's `since` names
/// another epoch, else 0.
pub const READ: &str = r#"
local e = redis.call('hget', KEYS[2], 'e')
local top = 0
if not e then
  e = ARGV[1]
  redis.call('del', KEYS[1])
  redis.call('hset', KEYS[2], 'e', e, 's', 0)
else
  top = tonumber(redis.call('hget', KEYS[2], 's')) or 0
end
redis.call('pexpire', KEYS[2], ARGV[2])
local mode = ARGV[4]
local out = {top, e, 0}
if mode == 'position' then return out end
local t = redis.call('time')
local min_t = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[3])
local since = tonumber(ARGV[5])
local limit = tonumber(ARGV[7])
local function offset_of(entry) return tonumber(string.match(entry[1], '^(%d+)')) end
if mode == 'recover' then
  if ARGV[6] ~= e or since > top or top - since > limit then return out end
  if since < top then
    local entries = redis.call('xrange', KEYS[1], (since + 1) .. '-0', '+', 'COUNT', top - since)
    if #entries ~= top - since then return {top, e, 0} end
    local expect = since + 1
    for _, entry in ipairs(entries) do
      local f = entry[2]
      if offset_of(entry) ~= expect or tonumber(f[2]) < min_t then return {top, e, 0} end
      table.insert(out, expect)
      table.insert(out, f[4])
      expect = expect + 1
    end
  end
  out[3] = 1
  return out
end
if since and ARGV[6] ~= e then return {top, e, -1} end
if limit == 0 then return out end
if mode == 'reverse' then
  local stop = '+'
  if since then
    if since <= 1 then return out end
    stop = (since - 1) .. '-0'
  end
  local entries = redis.call('xrevrange', KEYS[1], stop, '-', 'COUNT', limit)
  for _, entry in ipairs(entries) do
    local f = entry[2]
    if tonumber(f[2]) < min_t then break end
    table.insert(out, offset_of(entry))
    table.insert(out, f[4])
  end
  return out
end
local start = '-'
if since then start = (since + 1) .. '-0' end
while true do
  local entries = redis.call('xrange', KEYS[1], start, '+', 'COUNT', limit)
  if #entries == 0 then return out end
  for _, entry in ipairs(entries) do
    local f = entry[2]
    if tonumber(f[2]) >= min_t then
      table.insert(out, offset_of(entry))
      table.insert(out, f[4])
      if #out - 3 >= 2 * limit then return out end
    end
  end
  start = '(' .. entries[#entries][1]
end
"#;

/// What [`READ`] is asked.
#[derive(Debug, Clone)]
pub enum ReadMode<'a> {
    /// Only the top offset and epoch.
    Position,
    /// Everything after `offset` of `epoch`, if at most `limit` and all held.
    Recover {
        /// The client's last offset.
        offset: u64,
        /// Its epoch.
        epoch: &'a str,
        /// Most publications a recovery may return.
        limit: usize,
    },
    /// A page (see `HistoryStore::read`).
    Read {
        /// Only after (or, reversed, before) this position.
        since: Option<(u64, &'a str)>,
        /// Most publications.
        limit: usize,
        /// Newest first.
        reverse: bool,
    },
}

impl ReadMode<'_> {
    /// ARGV 4 to 7 of [`READ`].
    pub fn args(&self) -> [Bytes; 4] {
        let text = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let num = |n: u64| Bytes::from(n.to_string());
        match self {
            ReadMode::Position => [text("position"), Bytes::new(), Bytes::new(), num(0)],
            ReadMode::Recover {
                offset,
                epoch,
                limit,
            } => [
                text("recover"),
                num(*offset),
                text(epoch),
                num(*limit as u64),
            ],
            ReadMode::Read {
                since,
                limit,
                reverse,
            } => {
                let mode = text(if *reverse { "reverse" } else { "read" });
                let (offset, epoch) = match since {
                    Some((o, e)) => (num(*o), text(e)),
                    None => (Bytes::new(), Bytes::new()),
                };
                [mode, offset, epoch, num(*limit as u64)]
            }
        }
    }
}

/// A decoded [`READ`] reply.
#[derive(Debug, PartialEq, Eq)]
pub struct ReadReply {
    /// The channel's top offset.
    pub top: u64,
    /// Its epoch.
    pub epoch: Epoch,
    /// 1 recovered, -1 since names another epoch, else 0.
    pub flag: i64,
    /// The publications, in the order asked.
    pub publications: Vec<Publication>,
}

impl ReadReply {
    /// The answer to a recovering subscribe.
    pub fn recovery(self) -> Recovery {
        if self.flag == 1 {
            Recovery::Recovered(self.publications)
        } else {
            Recovery::NotRecovered
        }
    }

    /// The answer to a history read.
    pub fn page(self) -> Result<HistoryPage, HistoryError> {
        if self.flag == -1 {
            return Err(HistoryError::UnrecoverablePosition);
        }
        Ok(HistoryPage {
            publications: self.publications,
            top: self.top,
            epoch: self.epoch,
        })
    }
}

/// Decodes [`PUBLISH`]'s `{offset, epoch}`.
pub fn parse_publish(reply: Reply) -> Result<(u64, Epoch), String> {
    let Reply::Array(items) = reply else {
        return Err(format!("publish script answered {reply:?}"));
    };
    match items.as_slice() {
        [offset, epoch] => Ok((unsigned(offset)?, epoch_of(epoch)?)),
        _ => Err(format!("publish script answered {} items", items.len())),
    }
}

/// Decodes [`READ`]'s reply.
pub fn parse_read(reply: Reply) -> Result<ReadReply, String> {
    let Reply::Array(items) = reply else {
        return Err(format!("read script answered {reply:?}"));
    };
    let [top, epoch, flag, rest @ ..] = items.as_slice() else {
        return Err(format!("read script answered {} items", items.len()));
    };
    if rest.len() % 2 != 0 {
        return Err("read script answered an odd publication list".into());
    }
    let flag = match flag {
        Reply::Int(n) => *n,
        other => return Err(format!("read script flag {other:?}")),
    };
    let publications = rest
        .chunks_exact(2)
        .map(|pair| {
            Ok(Publication {
                offset: unsigned(&pair[0])?,
                payload: match &pair[1] {
                    Reply::Bulk(data) => data.clone(),
                    other => return Err(format!("read script data {other:?}")),
                },
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(ReadReply {
        top: unsigned(top)?,
        epoch: epoch_of(epoch)?,
        flag,
        publications,
    })
}

fn unsigned(reply: &Reply) -> Result<u64, String> {
    match reply {
        Reply::Int(n) => u64::try_from(*n).map_err(|_| format!("negative offset {n}")),
        other => Err(format!("expected an offset, got {other:?}")),
    }
}

fn epoch_of(reply: &Reply) -> Result<Epoch, String> {
    match reply {
        Reply::Bulk(b) => Epoch::parse(b).ok_or_else(|| format!("bad epoch {b:?}")),
        other => Err(format!("expected an epoch, got {other:?}")),
    }
}
