//! RESP2 values: [`Reply`], the [`Cmd`] encoder, the bounded [`decode`] of a read buffer and the pub/sub [`Push`] parse; no I/O.
//!
//! Decoding is redis-protocol's; in front of it sits [`scan`], a flat walk of
//! the frame's headers that enforces [`Limits`] before any frame is built: the
//! crate's decoder recurses once per nested array and would wait forever for
//! a bulk string that claims 2^60 bytes, so a hostile or broken peer could
//! overflow the stack or grow the read buffer without bound. The scan also
//! makes an incomplete frame cheap to retry: it skips bulk payloads in O(1).

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use redis_protocol::resp2::decode::decode_bytes_mut;
use redis_protocol::resp2::types::BytesFrame;

/// One decoded RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `$-1` or `*-1`.
    Nil,
    /// `:N`.
    Int(i64),
    /// `+OK` (bytes that are not UTF-8 are replaced, Redis sends ASCII).
    Simple(String),
    /// `$N` binary-safe string, a view into the read buffer (no copy).
    Bulk(Bytes),
    /// `*N`.
    Array(Vec<Reply>),
    /// `-ERR ...`: the server refused the command.
    Error(String),
}

impl Reply {
    /// The bytes of a bulk or simple string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Bulk(b) => Some(b),
            Reply::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// The value of an integer reply.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Reply::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The elements of an array reply.
    pub fn as_array(&self) -> Option<&[Reply]> {
        match self {
            Reply::Array(items) => Some(items),
            _ => None,
        }
    }

    /// Whether this is `Nil`.
    pub fn is_nil(&self) -> bool {
        matches!(self, Reply::Nil)
    }

    /// Appends this reply in RESP2 form (`Nil` as `$-1`); decoding the
    /// result gives this reply back. Used by tests and the fuzz oracle.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Reply::Nil => out.put_slice(b"$-1\r\n"),
            Reply::Int(n) => put_line(out, b':', n.to_string().as_bytes()),
            Reply::Simple(s) => put_line(out, b'+', s.as_bytes()),
            Reply::Error(s) => put_line(out, b'-', s.as_bytes()),
            Reply::Bulk(b) => put_bulk(out, b),
            Reply::Array(items) => {
                put_line(out, b'*', items.len().to_string().as_bytes());
                items.iter().for_each(|item| item.encode(out));
            }
        }
    }
}

/// A command being built: a RESP array of bulk strings. The arguments are
/// encoded as they are added; the array header, which needs the count, is
/// written in front when the command is queued ([`Cmd::encode_into`]).
#[derive(Clone, Debug)]
pub struct Cmd {
    /// Number of bulk strings in `body`, the command name included.
    n_args: usize,
    /// The encoded bulk strings.
    body: BytesMut,
}

impl Cmd {
    /// A command named `name` (`"PUBLISH"`), no arguments yet.
    pub fn new(name: &str) -> Cmd {
        let mut cmd = Cmd {
            n_args: 0,
            body: BytesMut::with_capacity(64),
        };
        cmd.push(name.as_bytes());
        cmd
    }

    /// Adds a binary-safe argument.
    pub fn arg(mut self, arg: impl AsRef<[u8]>) -> Cmd {
        self.push(arg.as_ref());
        self
    }

    /// Adds an integer argument (as its decimal text, as Redis expects).
    pub fn arg_int(mut self, n: i64) -> Cmd {
        self.push(n.to_string().as_bytes());
        self
    }

    /// Adds an argument through `&mut` (for loops).
    pub fn push(&mut self, arg: &[u8]) {
        put_bulk(&mut self.body, arg);
        self.n_args += 1;
    }

    /// Number of bulk strings, the command name included.
    pub fn n_args(&self) -> usize {
        self.n_args
    }

    /// Appends the whole command (header and arguments) to `out`.
    pub fn encode_into(&self, out: &mut BytesMut) {
        put_line(out, b'*', self.n_args.to_string().as_bytes());
        out.put_slice(&self.body);
    }
}

/// Bounds on one reply, checked before it is built.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest encoded reply in bytes (headers included). A longer one is a
    /// protocol error, so the read buffer never holds more than this plus
    /// one read.
    pub max_bytes: usize,
    /// Deepest array nesting; a top-level array is depth 1. At most
    /// [`MAX_DEPTH_CAP`].
    pub max_depth: usize,
}

/// [`Limits::max_depth`] bound: the scan keeps its array counters on the stack.
pub const MAX_DEPTH_CAP: usize = 32;

impl Default for Limits {
    /// 64 MiB and depth 8: corecast's replies are publications, history pages
    /// and presence maps (XRANGE is depth 3, XREAD 4); Redis itself caps a
    /// bulk string at 512 MiB, far more than a shard should buffer.
    fn default() -> Limits {
        Limits {
            max_bytes: 64 << 20,
            max_depth: 8,
        }
    }
}

/// A peer sent bytes that are not RESP2 or exceed [`Limits`]; the
/// connection cannot be resynchronised and must be dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// Takes the first complete reply off the front of `buf` under the default
/// [`Limits`]: `Ok(None)` when more bytes are needed (nothing is consumed).
pub fn decode(buf: &mut BytesMut) -> Result<Option<Reply>, ProtocolError> {
    decode_with(buf, &Limits::default())
}

/// [`decode`] with explicit limits.
pub fn decode_with(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Reply>, ProtocolError> {
    let Some(len) = scan(buf, limits)? else {
        return Ok(None);
    };
    match decode_bytes_mut(buf) {
        Ok(Some((frame, amt, _))) if amt == len => Ok(Some(from_frame(frame))),
        Ok(Some((_, amt, _))) => Err(ProtocolError(format!(
            "decoder disagrees with scan: {amt} bytes, scan said {len}"
        ))),
        Ok(None) => Err(ProtocolError(format!(
            "decoder wants more than the {len} bytes scan found"
        ))),
        Err(e) => Err(ProtocolError(format!("bad reply: {e:?}"))),
    }
}

/// Length of the first complete reply in `buf`, `None` if incomplete, or
/// the first broken rule. Iterative: one counter per open array.
pub fn scan(buf: &[u8], limits: &Limits) -> Result<Option<usize>, ProtocolError> {
    let max_depth = limits.max_depth.min(MAX_DEPTH_CAP);
    let mut open = [0i64; MAX_DEPTH_CAP];
    let mut depth = 0;
    let mut pos = 0;
    loop {
        let Some(kind) = buf.get(pos).copied() else {
            return Ok(None);
        };
        let Some(line_len) = find_crlf(&buf[pos + 1..]) else {
            return too_big_or_incomplete(buf.len(), limits);
        };
        let line = &buf[pos + 1..pos + 1 + line_len];
        pos += line_len + 3;
        match kind {
            b'+' | b'-' => {}
            b':' => {
                number(line)?;
            }
            b'$' => match number(line)? {
                -1 => {}
                n if n < 0 || n as u64 > limits.max_bytes as u64 => {
                    return Err(ProtocolError(format!("bulk length {n} out of range")))
                }
                n => {
                    pos += n as usize + 2;
                    if pos > buf.len() {
                        return too_big_or_incomplete(pos, limits);
                    }
                    if &buf[pos - 2..pos] != b"\r\n" {
                        return Err(ProtocolError("bulk string not ended by CRLF".into()));
                    }
                }
            },
            b'*' => match number(line)? {
                -1 => {}
                n if n < 0 || n as u64 > limits.max_bytes as u64 / 3 => {
                    return Err(ProtocolError(format!("array length {n} out of range")))
                }
                _ if depth == max_depth => {
                    return Err(ProtocolError(format!(
                        "arrays nested deeper than {max_depth}"
                    )))
                }
                // An empty array is complete at once, but still one level deep.
                0 => {}
                n => {
                    open[depth] = n;
                    depth += 1;
                    continue;
                }
            },
            other => {
                return Err(ProtocolError(format!(
                    "unknown reply type byte {other:#04x}"
                )))
            }
        }
        if pos > limits.max_bytes {
            return too_big_or_incomplete(pos, limits);
        }
        // One element is complete: count it against every array it ends.
        loop {
            if depth == 0 {
                return Ok(Some(pos));
            }
            open[depth - 1] -= 1;
            if open[depth - 1] > 0 {
                break;
            }
            depth -= 1;
        }
    }
}

/// A message a `SUBSCRIBE`d connection receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Push {
    /// `["message", channel, payload]`.
    Message {
        /// The channel published to.
        channel: Bytes,
        /// The published bytes.
        payload: Bytes,
    },
    /// `["subscribe", channel, n]`: one channel of a SUBSCRIBE confirmed.
    Subscribed(Bytes),
    /// `["unsubscribe", channel, n]`: one channel of an UNSUBSCRIBE confirmed.
    Unsubscribed(Bytes),
    /// `["pong", ""]`: the answer to a PING in subscribe mode.
    Pong,
}

/// Reads a reply received in subscribe mode; anything else (an error
/// reply, a pattern message we never asked for) is returned as it came.
pub fn parse_push(reply: Reply) -> Result<Push, Reply> {
    let Reply::Array(items) = reply else {
        return Err(reply);
    };
    let push = match items.as_slice() {
        [Reply::Bulk(kind), Reply::Bulk(channel), Reply::Bulk(payload)]
            if kind[..] == *b"message" =>
        {
            Push::Message {
                channel: channel.clone(),
                payload: payload.clone(),
            }
        }
        [Reply::Bulk(kind), Reply::Bulk(channel), Reply::Int(_)] if kind[..] == *b"subscribe" => {
            Push::Subscribed(channel.clone())
        }
        [Reply::Bulk(kind), Reply::Bulk(channel), Reply::Int(_)] if kind[..] == *b"unsubscribe" => {
            Push::Unsubscribed(channel.clone())
        }
        [Reply::Bulk(kind), Reply::Bulk(_)] if kind[..] == *b"pong" => Push::Pong,
        _ => return Err(Reply::Array(items)),
    };
    Ok(push)
}

fn from_frame(frame: BytesFrame) -> Reply {
    match frame {
        BytesFrame::Null => Reply::Nil,
        BytesFrame::Integer(n) => Reply::Int(n),
        BytesFrame::SimpleString(s) => Reply::Simple(String::from_utf8_lossy(&s).into_owned()),
        BytesFrame::Error(s) => Reply::Error(s.to_string()),
        BytesFrame::BulkString(b) => Reply::Bulk(b),
        BytesFrame::Array(items) => Reply::Array(items.into_iter().map(from_frame).collect()),
    }
}

fn too_big_or_incomplete(need: usize, limits: &Limits) -> Result<Option<usize>, ProtocolError> {
    if need > limits.max_bytes {
        return Err(ProtocolError(format!(
            "reply longer than {} bytes",
            limits.max_bytes
        )));
    }
    Ok(None)
}

/// Parses a header number the way redis-protocol does (`str::parse`), so
/// the scan and the decoder accept the same frames.
fn number(line: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ProtocolError(format!("bad number {:?}", String::from_utf8_lossy(line))))
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}

fn put_line(out: &mut BytesMut, kind: u8, line: &[u8]) {
    out.put_u8(kind);
    out.put_slice(line);
    out.put_slice(b"\r\n");
}

fn put_bulk(out: &mut BytesMut, bytes: &[u8]) {
    put_line(out, b'$', bytes.len().to_string().as_bytes());
    out.put_slice(bytes);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Vec<Result<Reply, ProtocolError>> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        loop {
            match decode(&mut buf) {
                Ok(Some(reply)) => out.push(Ok(reply)),
                Ok(None) => return out,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }

    #[test]
    fn cmd_encodes_an_array_of_bulk_strings() {
        let mut out = BytesMut::new();
        Cmd::new("PUBLISH")
            .arg(b"ch")
            .arg_int(-7)
            .encode_into(&mut out);
        assert_eq!(&out[..], b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$2\r\n-7\r\n");
    }

    #[test]
    fn replies_decode_and_incomplete_waits() {
        let wire = b"+OK\r\n:-3\r\n$-1\r\n*2\r\n$1\r\na\r\n*0\r\n-ERR no\r\n";
        let got = decode_all(wire);
        let want = vec![
            Reply::Simple("OK".into()),
            Reply::Int(-3),
            Reply::Nil,
            Reply::Array(vec![
                Reply::Bulk(Bytes::from_static(b"a")),
                Reply::Array(vec![]),
            ]),
            Reply::Error("ERR no".into()),
        ];
        assert_eq!(got, want.into_iter().map(Ok).collect::<Vec<_>>());
        assert!(decode_all(b"*2\r\n$1\r\na\r\n").is_empty());
        assert!(decode_all(b"$5\r\nab").is_empty());
    }

    #[test]
    fn limits_refuse_deep_and_long_replies() {
        let deep = b"*1\r\n".repeat(9);
        assert!(decode_all(&deep)[0].is_err());
        assert!(decode_all(&b"*1\r\n".repeat(8)).is_empty());
        assert!(decode_all(b"$1152921504606846976\r\n")[0].is_err());
        let small = Limits {
            max_bytes: 16,
            max_depth: 2,
        };
        let mut buf = BytesMut::from(&b"+0123456789abcdef"[..]);
        assert!(decode_with(&mut buf, &small).is_err());
    }

    #[test]
    fn pushes_parse() {
        let mut buf = BytesMut::from(
            &b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n*2\r\n$4\r\npong\r\n$0\r\n\r\n"[..],
        );
        let mut next = || parse_push(decode(&mut buf).unwrap().unwrap());
        assert_eq!(
            next(),
            Ok(Push::Message {
                channel: Bytes::from_static(b"c"),
                payload: Bytes::from_static(b"hi")
            })
        );
        assert_eq!(next(), Ok(Push::Subscribed(Bytes::from_static(b"c"))));
        assert_eq!(next(), Ok(Push::Pong));
    }
}
