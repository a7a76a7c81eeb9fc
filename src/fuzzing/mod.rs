//! Entry points for the fuzz targets in fuzz/: thin wrappers over the pure parsers; not a stable API.
//!
//! Each `check_*` function takes the fuzzer's bytes, runs one parser the way
//! the server does and panics when an invariant breaks (libFuzzer reports a
//! panic as a crash). fuzz/fuzz_targets/*.rs only call these; the tests at
//! the bottom replay fuzz/corpus/ and fuzz/regressions/ through the same
//! functions, so `cargo test` keeps every reproducer fixed. Nothing here does
//! I/O or runs an executor: byte streams are in memory, and the routers answer
//! from a one-shard [`Shard`] whose bus has no links. The first input bytes
//! pick the knobs (size limits, where the stream is cut), so the fuzzer
//! explores those too.
//!
//! Every `expect` here is an oracle, not error handling: a panic is how a
//! target reports a broken invariant, and none of this runs in the server
//! (only fuzz/ and `cargo test` call it). The few on setup (the one-shard
//! `Shard`, fixed flags) run on constant input.

mod config;

pub use config::check_config_file;

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use clap::Parser;
use futures_lite::future::{block_on, poll_once};
use futures_lite::AsyncRead;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::admin::{self, api};
use crate::bus::{self, Bus};
use crate::demo::{self, Demo};
use crate::error::CloseReason;
use crate::http::{self, HeadError, Response, Route};
use crate::message::{self, Command, ErrorCode, Request, RequestError};
use crate::reactor::EpollSet;
use crate::shard::{Shard, ShardId, Shared};
use crate::ws::{self, Decoder, Event, Kind};

mod broker;
mod centrifugo;
mod deflate;
mod forwarded;
mod lz77;
mod msgpack;
mod resp;
mod token;
pub use broker::check_redis_message;
pub use centrifugo::{check_centrifugo_json, check_centrifugo_protobuf};
pub use deflate::{check_deflate_offer, check_inflate};
pub use forwarded::check_forwarded;
pub use lz77::max_match_distance;
pub use msgpack::check_msgpack_request;
pub use resp::check_resp_reply;
pub use token::check_jwt_token;

/// `ws_decoder`: one byte of mode (bit 0: raw bytes or frames built from a
/// spec; bits 1-3: pause the decoder every N events), one for
/// `--max-message-size`, one seeding the cuts, then the stream. The stream
/// decoded whole and decoded in cuts (with pauses) gives the same events,
/// error and held bytes; the held bytes never exceed the limit (at least
/// 125, for control frames) plus one header; consumed frames are masked
/// (checked by a header walker of our own); every event re-encodes with the
/// server's encoders to a frame that decodes to the same event.
pub fn check_ws_decoder(data: &[u8]) {
    let Some((&[mode, max_sel, seed], rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let max = match max_sel % 4 {
        0 => 1 + usize::from(max_sel >> 2),
        1 => 125,
        2 => 4096,
        _ => 1 << 20,
    };
    let stream = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        client_frames(rest)
    };
    let pause_every = usize::from((mode >> 1) & 7);
    let whole = decode_in_cuts(&stream, &[stream.len()], max, 0);
    let split = decode_in_cuts(&stream, &cuts(seed, stream.len()), max, pause_every);
    assert_eq!(whole, split, "cut stream differs (max={max})");
    check_frame_walk(&stream, &whole);
    let reason = String::from_utf8_lossy(rest);
    for seen in &whole.events {
        check_reencodes(seen, max, &reason);
    }
}

/// `http_head`: one byte for `--max-header-bytes`, one seeding the cuts, one
/// of flags (bit 0: under the connection limit), then the bytes a client
/// sends. `read_head` gives the same head or error whole and cut; a head
/// always gets an upgrade for /ws or /echo or a well-formed response (404
/// exactly for unknown paths), the same on every call.
pub fn check_http_head(data: &[u8]) {
    let Some((&[max_sel, seed, flags], rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let max = 256 + usize::from(max_sel) * 32;
    let (whole, left_whole) = read_head_cut(rest, whole_cuts(rest.len(), rest.len()), max);
    let (split, left_split) = read_head_cut(rest, cuts(seed, rest.len()), max);
    assert_eq!(whole, split, "cut request head differs (max={max})");
    match whole {
        Head::Complete(head) => {
            assert!(head.len() <= max && head.ends_with(b"\n"), "head {head:?}");
            for left in [left_whole, left_split] {
                assert!(
                    rest[head.len()..].starts_with(&left),
                    "leftover is not what followed"
                );
            }
            check_decide(&head, flags & 1 == 1);
        }
        Head::TooLarge => check_response(&Response::error(431, "too large")),
        Head::Malformed(msg) => check_response(&Response::error(400, &msg)),
        Head::Eof => {}
    }
}

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

/// `admin_request`: one byte for `--max-api-body`, one seeding the cuts,
/// then what an admin client sends on one keep-alive connection. The read
/// loop gives the same requests and refusals whole and cut; each request is
/// within its limits, each refusal and each answer of the router is a
/// well-formed response with an expected status (401 exactly when the token
/// is wrong on /api/, 404 exactly for unknown paths).
pub fn check_admin_request(data: &[u8]) {
    let Some((&[max_sel, seed], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let max_body = usize::from(max_sel) * 8;
    let whole = read_admin_requests(rest, &whole_cuts(rest.len(), ADMIN_FILL_BYTES), max_body);
    let split = read_admin_requests(rest, &cuts(seed, rest.len()), max_body);
    let summary = |reads: &[AdminRead]| reads.iter().map(admin_summary).collect::<Vec<_>>();
    assert_eq!(summary(&whole), summary(&split), "cut admin stream differs");
    for read in &whole {
        match read {
            Ok(req) => check_admin_route(req, max_body),
            Err(Some(refusal)) => {
                assert!(
                    [400, 411, 413, 431].contains(&refusal.status),
                    "{refusal:?}"
                );
                check_response(refusal);
            }
            Err(None) => {}
        }
    }
}

// ---- ws_decoder ----

/// Longest client frame header: 2 bytes, an 8-byte length and the mask.
const MAX_CLIENT_HEADER: usize = 14;
/// Mask key for re-encoded frames; any key will do.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// An owned [`Event`], so runs can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    Close(u16),
}

/// What one decoder run produced; `held` is None after an error (the
/// connection drops its decoder then, so nothing is held).
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    events: Vec<Seen>,
    error: Option<CloseReason>,
    held: Option<usize>,
}

/// Feeds `stream` in chunks of `cut_lens`, keeping undecoded bytes in
/// `Decoder::partial` as `Connection::on_bytes` does, and resuming at once
/// when the callback paused (the connection resumes after a subscribe).
fn decode_in_cuts(stream: &[u8], cut_lens: &[usize], max: usize, pause_every: usize) -> Decoded {
    let mut dec = Decoder::default();
    let mut out = Decoded {
        events: Vec::new(),
        error: None,
        held: None,
    };
    let mut fed = 0;
    for &len in cut_lens {
        let mut chunk = stream[fed..fed + len].to_vec();
        fed += len;
        let mut paused = if dec.partial.is_empty() {
            let (consumed, paused) = decode_step(&mut dec, &mut chunk, max, pause_every, &mut out);
            if out.error.is_none() {
                dec.partial.extend_from_slice(&chunk[consumed..]);
            }
            paused
        } else {
            dec.partial.extend_from_slice(&chunk);
            drain_held(&mut dec, max, pause_every, &mut out)
        };
        while paused && out.error.is_none() {
            paused = drain_held(&mut dec, max, pause_every, &mut out);
        }
        if out.error.is_some() {
            return out;
        }
        // Only an incomplete frame is held, and its header passed the limit:
        // the message limit for data, 125 bytes for control frames (which
        // exceeds a --max-message-size under 125).
        assert!(
            dec.partial.len() <= max.max(125) + MAX_CLIENT_HEADER,
            "decoder holds {} bytes with a {max}-byte limit",
            dec.partial.len()
        );
        dec.shrink();
    }
    out.held = Some(dec.partial.len());
    out
}

/// Decodes the held bytes and keeps the rest, as `drain_backlog` does.
fn drain_held(dec: &mut Decoder, max: usize, pause_every: usize, out: &mut Decoded) -> bool {
    let mut buf = std::mem::take(&mut dec.partial);
    let (consumed, paused) = decode_step(dec, &mut buf, max, pause_every, out);
    if out.error.is_none() {
        buf.drain(..consumed);
        dec.partial = buf;
    }
    paused
}

/// One `Decoder::decode` call; returns (consumed, paused) and records events
/// and any error in `out`.
fn decode_step(
    dec: &mut Decoder,
    buf: &mut [u8],
    max: usize,
    pause_every: usize,
    out: &mut Decoded,
) -> (usize, bool) {
    let mut paused = false;
    let events = &mut out.events;
    let result = dec.decode(buf, max, None, |event| {
        check_event(&event, max);
        events.push(Seen::from(&event));
        paused = pause_every != 0 && events.len().is_multiple_of(pause_every);
        !paused
    });
    match result {
        Ok(consumed) => (consumed, paused),
        Err(reason) => {
            out.error = Some(reason);
            (0, false)
        }
    }
}

/// Bounds every event must respect (RFC 6455 5.5 and 7.4.1, and the limit).
fn check_event(event: &Event<'_>, max: usize) {
    match *event {
        Event::Text(text) => assert!(text.len() <= max, "text over the limit"),
        Event::Binary(bytes) => assert!(bytes.len() <= max, "binary over the limit"),
        Event::Ping(payload) => assert!(payload.len() <= 125, "ping payload over 125"),
        Event::Pong => {}
        Event::Close(code) => assert!(
            matches!(code, 1000..=1003 | 1005 | 1007..=1011 | 3000..=4999),
            "close code {code} may not be received"
        ),
    }
}

impl From<&Event<'_>> for Seen {
    fn from(event: &Event<'_>) -> Seen {
        match *event {
            Event::Text(text) => Seen::Text(text.to_string()),
            Event::Binary(bytes) => Seen::Binary(bytes.to_vec()),
            Event::Ping(payload) => Seen::Ping(payload.to_vec()),
            Event::Pong => Seen::Pong,
            Event::Close(code) => Seen::Close(code),
        }
    }
}

/// Checks the decoder's verdict against a header walk of our own (RFC 6455
/// 5.2, not tungstenite's parser): after a clean run, the consumed bytes are
/// whole frames, each masked with clear RSV bits, and what is held is one
/// incomplete, masked frame. So an unmasked frame is never accepted.
fn check_frame_walk(stream: &[u8], decoded: &Decoded) {
    let Some(held) = decoded.held else {
        return;
    };
    let consumed = stream.len() - held;
    let mut pos = 0;
    while pos < consumed {
        let h = frame_header(&stream[pos..]).expect("consumed a partial header");
        assert!(h.masked && h.rsv == 0, "accepted frame at {pos}: {h:?}");
        pos += h.len + usize::try_from(h.payload).expect("consumed a huge frame");
        assert!(pos <= consumed, "consumed half a frame");
    }
    if let Some(h) = frame_header(&stream[pos..]) {
        assert!(h.masked && h.rsv == 0, "held a refusable frame: {h:?}");
        let complete = (h.len as u64).saturating_add(h.payload) <= held as u64;
        assert!(!complete, "held a complete frame");
    }
}

/// A frame header as RFC 6455 5.2 lays it out.
#[derive(Debug)]
struct FrameHead {
    /// Header bytes, mask included.
    len: usize,
    payload: u64,
    masked: bool,
    rsv: u8,
}

/// The header at the start of `bytes`, if all of it is there.
fn frame_header(bytes: &[u8]) -> Option<FrameHead> {
    let (&[b0, b1], rest) = bytes.split_first_chunk::<2>()?;
    let (ext, payload) = match b1 & 0x7f {
        126 => (2, u64::from(u16::from_be_bytes(*rest.first_chunk::<2>()?))),
        127 => (8, u64::from_be_bytes(*rest.first_chunk::<8>()?)),
        n => (0, u64::from(n)),
    };
    let masked = b1 & 0x80 != 0;
    let len = 2 + ext + if masked { 4 } else { 0 };
    (bytes.len() >= len).then_some(FrameHead {
        len,
        payload,
        masked,
        rsv: b0 & 0x70,
    })
}

/// Re-encodes an event with the server's encoders and decodes the result
/// (masked, as a client would send it): it must give the same event back.
fn check_reencodes(seen: &Seen, max: usize, reason: &str) {
    match seen {
        Seen::Text(text) => {
            let frame = ws::encode(Kind::Text, text.as_bytes());
            assert_eq!(redecode(&frame, max), std::slice::from_ref(seen));
        }
        Seen::Binary(bytes) => {
            let frame = ws::encode(Kind::Binary, bytes);
            assert_eq!(redecode(&frame, max), std::slice::from_ref(seen));
        }
        Seen::Ping(payload) => {
            let frame = ws::pong(payload);
            assert_eq!(frame[..2], [0x8A, payload.len() as u8], "pong header");
            assert_eq!(frame[2..], payload[..], "pong echoes the ping");
            assert_eq!(redecode(&frame, max), [Seen::Pong]);
        }
        Seen::Pong => {}
        Seen::Close(code) => {
            for reason in ["", reason] {
                let frame = ws::close(*code, reason);
                assert_eq!(redecode(&frame, max), [Seen::Close(*code)], "{frame:?}");
            }
        }
    }
}

/// Decodes one server frame as the server would if a client sent it: the
/// frame must be final and unmasked with clear RSV bits, and decode whole.
fn redecode(frame: &[u8], max: usize) -> Vec<Seen> {
    assert_eq!(frame[0] & 0xF0, 0x80, "server frame: FIN set, RSV clear");
    assert_eq!(frame[1] & 0x80, 0, "server frames are not masked");
    let mut bytes = masked(frame);
    let mut dec = Decoder::default();
    let mut seen = Vec::new();
    let result = dec.decode(&mut bytes, max, None, |e| {
        seen.push(Seen::from(&e));
        true
    });
    assert_eq!(result, Ok(bytes.len()), "re-encoded frame {frame:?}");
    seen
}

/// The client form of a server frame: mask bit, key, masked payload.
fn masked(frame: &[u8]) -> Vec<u8> {
    let header = 2 + match frame[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&frame[..header]);
    out[1] |= 0x80;
    out.extend_from_slice(&MASK);
    let payload = frame[header..].iter().enumerate();
    out.extend(payload.map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// Builds client frames from a spec, so the fuzzer reaches deep decoder
/// states without finding masks and lengths by chance. Per frame: the first
/// header byte as is; a control byte (bit 7: leave unmasked, bit 6: length
/// times 1100, which reaches the 16- and 64-bit length forms, bits 0-5:
/// length); then the payload, repeated to length when the spec runs short.
fn client_frames(mut spec: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let [first, ctl, tail @ ..] = spec {
        let mut len = usize::from(ctl & 0x3f);
        if ctl & 0x40 != 0 {
            len *= 1100;
        }
        let take = len.min(tail.len());
        let payload: Vec<u8> = tail[..take].iter().copied().cycle().take(len).collect();
        let payload = if payload.len() < len {
            vec![0; len]
        } else {
            payload
        };
        spec = &tail[take..];
        let masked = ctl & 0x80 == 0;
        out.push(*first);
        let mask_bit = if masked { 0x80 } else { 0 };
        match len {
            0..=125 => out.push(mask_bit | len as u8),
            126..=0xFFFF => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        if masked {
            let key = [*first, *ctl, 0xa5, first ^ ctl];
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            out.extend_from_slice(&payload);
        }
    }
    out
}

// ---- cuts ----

/// Chunk lengths cutting `len` bytes at points chosen by `seed`: mostly
/// 1-16 bytes (cutting headers and UTF-8 sequences), sometimes up to 4 KiB.
fn cuts(seed: u8, len: usize) -> Vec<usize> {
    let mut state = u32::from(seed).wrapping_mul(0x9E37_79B9) | 1;
    let mut out = Vec::new();
    let mut left = len;
    while left > 0 {
        // xorshift32: the same seed always gives the same cuts.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let span = if state % 8 == 0 { 4096 } else { 16 };
        let n = (1 + (state >> 3) as usize % span).min(left);
        out.push(n);
        left -= n;
    }
    out
}

/// `len` bytes in chunks of at most `size` (how a socket read delivers them).
fn whole_cuts(len: usize, size: usize) -> Vec<usize> {
    let size = size.max(1);
    (0..len)
        .step_by(size)
        .map(|at| size.min(len - at))
        .collect()
}

// ---- http_head ----

/// How many headers the oracle parses with (http.rs allows 64; read_head
/// has already refused more).
const ORACLE_HEADERS: usize = 64;

/// An owned outcome of `read_head`.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    Complete(Vec<u8>),
    TooLarge,
    Malformed(String),
    Eof,
}

/// Runs `read_head` over an in-memory stream cut into `cut_lens`; returns
/// the outcome and the bytes read past the head.
fn read_head_cut(stream: &[u8], cut_lens: Vec<usize>, max: usize) -> (Head, Vec<u8>) {
    let mut reader = CutReader {
        data: stream,
        cut_lens,
        next: 0,
    };
    match block_on(http::read_head(&mut reader, max)) {
        Ok((buf, head_len)) => (
            Head::Complete(buf[..head_len].to_vec()),
            buf[head_len..].to_vec(),
        ),
        Err(HeadError::TooLarge) => (Head::TooLarge, Vec::new()),
        Err(HeadError::Malformed(msg)) => (Head::Malformed(msg), Vec::new()),
        Err(HeadError::Io(_)) => (Head::Eof, Vec::new()),
    }
}

/// An `AsyncRead` over bytes, handing out at most one cut per read, then EOF.
struct CutReader<'a> {
    data: &'a [u8],
    cut_lens: Vec<usize>,
    next: usize,
}

impl AsyncRead for CutReader<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let Some(want) = this.cut_lens.get(this.next).copied() else {
            return Poll::Ready(Ok(0));
        };
        let n = want.min(buf.len());
        buf[..n].copy_from_slice(&this.data[..n]);
        this.data = &this.data[n..];
        if n == want {
            this.next += 1;
        } else {
            this.cut_lens[this.next] -= n;
        }
        Poll::Ready(Ok(n))
    }
}

/// Routes a complete head and checks the answer against the head itself.
fn check_decide(head: &[u8], admitted: bool) {
    SHARD.with(|shard| {
        let (_, answer) = http::decide(shard, head, admitted, None);
        let (_, again) = http::decide(shard, head, admitted, None);
        let mut headers = [httparse::EMPTY_HEADER; ORACLE_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let parsed = req.parse(head);
        assert!(
            matches!(parsed, Ok(httparse::Status::Complete(n)) if n == head.len()),
            "read_head's head does not parse whole"
        );
        let target = req.path.unwrap_or("/");
        if let Some((_, query)) = target.split_once('?') {
            check_query_param(query);
        }
        let path = target.split('?').next().unwrap_or(target);
        let known = matches!(path, "/ws" | "/echo" | "/connection/websocket" | "/health");
        match (answer, again) {
            (Ok((route, accept, _, deflate, protocol)), Ok(again)) => {
                assert_eq!(
                    (route, &accept, deflate, protocol),
                    (again.0, &again.1, again.3, again.4),
                    "decide is not deterministic"
                );
                assert!(
                    protocol.is_none()
                        || route == Route::Ws
                        || route == Route::Centrifugo(crate::centrifugo::Encoding::Protobuf),
                    "a subprotocol on {route:?}"
                );
                let want = match path {
                    "/ws" => Route::Ws,
                    "/connection/websocket" => {
                        let protobuf = http::header_values(&req, "sec-websocket-protocol")
                            .flat_map(|v| v.split(','))
                            .any(|p| p.trim() == "centrifuge-protobuf");
                        Route::Centrifugo(if protobuf {
                            crate::centrifugo::Encoding::Protobuf
                        } else {
                            crate::centrifugo::Encoding::Json
                        })
                    }
                    _ => Route::Echo,
                };
                assert!(
                    known && path != "/health" && route == want,
                    "{path} -> {route:?}"
                );
                assert!(admitted && req.method == Some("GET") && req.version == Some(1));
                let key = http::header(&req, "sec-websocket-key").map(str::trim);
                let key = key.expect("upgrade without a key");
                assert!(http::is_valid_key(key), "upgrade with key {key:?}");
                assert_eq!(accept, ws::accept_key(key.as_bytes()));
            }
            (Err(response), Err(again)) if demo::is_demo_path(path) => {
                // A token's `iat` and `exp` follow the clock: same status.
                assert_eq!(response.status, again.status, "demo answer changed");
                check_demo_answer(&req, path, &response);
                check_response(&response);
            }
            (Err(response), Err(again)) => {
                assert_eq!(
                    (response.status, &response.body),
                    (again.status, &again.body)
                );
                assert_eq!(
                    response.status == 404,
                    !known,
                    "{path} -> {}",
                    response.status
                );
                // 401: a `?token=` this verifier-less shard cannot accept.
                let expected = [200, 400, 401, 404, 405, 426, 503];
                assert!(expected.contains(&response.status), "{response:?}");
                check_response(&response);
            }
            (first, second) => panic!("decide changed its mind: {first:?} then {second:?}"),
        }
    });
}

/// A `--demo` answer: a page file, a token that verifies with the demo key
/// for exactly the `?user=` asked, a redirect, or an error that fits the
/// request.
fn check_demo_answer(req: &httparse::Request<'_, '_>, path: &str, response: &Response) {
    let get = req.method == Some("GET");
    let query = req.path.and_then(|t| t.split_once('?')).map(|(_, q)| q);
    let user = query.and_then(|q| http::query_param(q, "user"));
    match response.status {
        200 if path == "/demo/token" => {
            let user = user.expect("a token without ?user=");
            assert!(get && demo::check_name(&user).is_ok(), "token for {user:?}");
            let body: serde_json::Value =
                serde_json::from_str(&response.body).expect("token answer is JSON");
            let token = body["token"].as_str().expect("token answer has a token");
            let verifier = crate::auth::Verifier::new(Some(DEMO_KEY.as_slice()), None)
                .expect("fixed demo key");
            let claims = verifier
                .verify(token, crate::shard::unix_now())
                .expect("a minted token verifies with the demo key");
            assert_eq!(*claims.user, *user, "token for another user");
            assert_eq!(body["user"], user.as_str());
        }
        200 => assert!(get && !response.body.is_empty() && path != "/demo"),
        301 => assert!(get && path == "/demo"),
        400 => assert!(
            get && path == "/demo/token"
                && user.as_deref().is_none_or(|u| demo::check_name(u).is_err()),
            "refused {user:?}"
        ),
        404 => assert!(get && path != "/demo" && path != "/demo/token"),
        405 => assert!(!get),
        status => panic!("demo answered {status} to {path}"),
    }
}

/// `?token=` extraction: never panics, and a value without escapes is
/// returned as written.
fn check_query_param(query: &str) {
    let value = http::query_param(query, "token");
    let raw = query.split('&').find_map(|kv| kv.strip_prefix("token="));
    if let (None, Some(raw)) = (&value, raw) {
        // Only a percent escape can make a present value undecodable.
        assert!(raw.contains('%'), "{query:?}");
    }
    if let Some(raw) = raw.filter(|r| !r.contains('%') && !r.contains('+')) {
        assert_eq!(value.as_deref(), Some(raw), "{query:?}");
    }
}

/// Header names corecast may send; anything else is an injected header.
const RESPONSE_HEADERS: [&str; 11] = [
    "content-type",
    "content-length",
    "connection",
    "allow",
    "upgrade",
    "sec-websocket-version",
    "www-authenticate",
    // --demo's page, files and redirect.
    "location",
    "cache-control",
    "x-content-type-options",
    "content-security-policy",
];

/// A response serializes to one well-formed HTTP response whose
/// Content-Length is its body's, with no header but ours; a JSON response
/// body is JSON, and an error body repeats the status.
fn check_response(response: &Response) {
    for keep_alive in [false, true] {
        let bytes = response.to_bytes(keep_alive);
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut parsed = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(head_len)) = parsed.parse(&bytes) else {
            panic!(
                "not an HTTP response: {:?}",
                String::from_utf8_lossy(&bytes)
            );
        };
        assert_eq!(parsed.code, Some(response.status));
        for h in parsed.headers.iter() {
            let name = h.name.to_ascii_lowercase();
            assert!(RESPONSE_HEADERS.contains(&name.as_str()), "header {name}");
        }
        let length = parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| String::from_utf8_lossy(h.value).into_owned());
        assert_eq!(length, Some((bytes.len() - head_len).to_string()));
    }
    if response.content_type == "application/json" {
        let body: serde_json::Value =
            serde_json::from_str(&response.body).expect("JSON response body is JSON");
        // /health's 503 is a status report, not an error body.
        if body.get("error").is_some() {
            assert_eq!(body["status"], response.status, "{}", response.body);
        }
    }
}

// ---- ws_json ----

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

// ---- admin_request ----

/// The admin token of the fuzzing shard (seeds send it).
pub const ADMIN_TOKEN: &str = "fuzz-token";

/// The key the routers' `--demo` signs its tokens with.
const DEMO_KEY: [u8; demo::KEY_BYTES] = *b"fuzz-demo-key-0123456789abcdef01";
/// Bytes one admin socket read delivers (admin::fill's buffer).
const ADMIN_FILL_BYTES: usize = 4096;

/// One read of the admin loop: a request, a refusal, or the peer gone.
type AdminRead = Result<admin::Request, Option<Response>>;

/// The admin connection loop over an in-memory stream, mirroring
/// `admin::serve` and `read_request` (which are tied to a glommio socket):
/// requests until one is refused, asks to close, or the bytes run out.
fn read_admin_requests(stream: &[u8], cut_lens: &[usize], max_body: usize) -> Vec<AdminRead> {
    let at = Cell::new(0);
    let mut chunks = cut_lens.iter().map(|&n| {
        let start = at.replace(at.get() + n);
        &stream[start..start + n]
    });
    let mut buf = Vec::new();
    let mut out = Vec::new();
    loop {
        let read = read_admin_request(&mut buf, &mut chunks, max_body);
        let again = matches!(&read, Ok(request) if request.keep_alive);
        out.push(read);
        if !again {
            return out;
        }
    }
}

fn read_admin_request<'a>(
    buf: &mut Vec<u8>,
    chunks: &mut impl Iterator<Item = &'a [u8]>,
    max_body: usize,
) -> AdminRead {
    let mut fill = |buf: &mut Vec<u8>| {
        let chunk = chunks.next().ok_or(None)?;
        buf.extend_from_slice(chunk);
        Ok::<(), Option<Response>>(())
    };
    loop {
        if let Some((head_len, mut request, content_length)) = admin::parse_head(buf, max_body)? {
            while buf.len() < head_len + content_length {
                fill(buf)?;
            }
            request.body = buf[head_len..head_len + content_length].to_vec();
            buf.drain(..head_len + content_length);
            return Ok(request);
        }
        if buf.len() >= admin::MAX_HEAD_BYTES {
            return Err(Some(Response::error(431, "request head too large")));
        }
        fill(buf)?;
    }
}

/// Comparable form of one admin read.
fn admin_summary(read: &AdminRead) -> String {
    match read {
        Ok(r) => format!(
            "{} {} ? {} auth={:?} keep_alive={} body={:?}",
            r.method, r.path, r.query, r.authorization, r.keep_alive, r.body
        ),
        Err(Some(response)) => format!("refused {} {}", response.status, response.body),
        Err(None) => "gone".to_string(),
    }
}

/// Routes one admin request, when that needs no other shard, and checks it.
fn check_admin_route(req: &admin::Request, max_body: usize) {
    assert!(
        !req.path.contains('?') && req.body.len() <= max_body,
        "{req:?}"
    );
    let route = api::ROUTES.iter().find(|(path, _)| *path == req.path);
    // RFC 9110 11.1: `Bearer` is case-insensitive, then one or more spaces.
    let token = req.authorization.as_deref().and_then(|v| {
        let (scheme, rest) = v.trim_start().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    });
    let authorized = token == Some(ADMIN_TOKEN);
    let refused_at_once = match route {
        None => true,
        Some((path, method)) => (path.starts_with("/api/") && !authorized) || req.method != *method,
    };
    const ANSWER_AT_ONCE: [&str; 3] = ["/health", "/api/publish", "/api/broadcast"];
    // The other routes answer after a cross-shard query, which may wait on a
    // glommio timer; an executor is out of reach here, so they are routed
    // only when refused before any query (unknown, unauthorized, wrong method).
    if !refused_at_once && !ANSWER_AT_ONCE.contains(&req.path.as_str()) {
        return;
    }
    let response = SHARD.with(|shard| block_on(poll_once(api::route(shard, req))));
    let response = response.expect("a route without cross-shard queries answers at once");
    check_response(&response);
    assert_eq!(
        response.status == 404,
        route.is_none(),
        "{} -> {}",
        req.path,
        response.status
    );
    if let Some((path, _)) = route {
        if path.starts_with("/api/") {
            assert_eq!(
                response.status == 401,
                !authorized,
                "{req:?} -> {response:?}"
            );
        }
    }
    assert!(
        [200, 400, 401, 404, 405, 503].contains(&response.status),
        "{response:?}"
    );
}

// ---- the shard ----

thread_local! {
    /// What the routers answer from: one shard, no bus links, never shut
    /// down, with [`ADMIN_TOKEN`]. Built once per fuzzing thread.
    static SHARD: Rc<Shard> = one_shard();
}

fn one_shard() -> Rc<Shard> {
    let args = [
        "corecast",
        "--shards",
        "1",
        "--admin-token",
        ADMIN_TOKEN,
        "--demo",
    ];
    let config = crate::Config::try_parse_from(args).expect("fixed flags parse");
    let resolved = config.resolve(&[0], 1024).expect("one shard on CPU 0");
    let end = bus::mesh(1, 1).pop().expect("a one-shard mesh has one end");
    // One shard has no links to connect, so this spawns no glommio task and
    // completes on its first poll, with no executor.
    let (bus, _) = block_on(Bus::connect(ShardId(0), end));
    let epoll = EpollSet::new().expect("epoll_create1");
    // The demo's files and tokens, but no verifier: /ws tokens are
    // refused as on a server without keys.
    let shared = Shared {
        n_shards: 1,
        demo: Some(Demo::new(&DEMO_KEY)),
        ..Shared::default()
    };
    let shard = Shard::new(
        ShardId(0),
        Arc::new(resolved),
        Arc::new(shared),
        Rc::new(bus),
        epoll,
    );
    Rc::new(shard)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `check` on every file of fuzz/corpus/TARGET (the seeds) and
    /// fuzz/regressions/TARGET (crash reproducers), naming each on stderr so
    /// a failure says which file.
    fn replay(target: &str, check: fn(&[u8])) {
        let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut n_files = 0;
        for dir in ["corpus", "regressions"] {
            // A target has a regressions folder only once it found something.
            let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("readable directory").path();
                eprintln!("replaying {}", path.display());
                check(&std::fs::read(&path).expect("readable file"));
                n_files += 1;
            }
        }
        assert!(n_files > 0, "no seeds for {target}");
    }

    #[test]
    fn ws_decoder_seeds_and_regressions_hold() {
        replay("ws_decoder", check_ws_decoder);
    }

    #[test]
    fn http_head_seeds_and_regressions_hold() {
        replay("http_head", check_http_head);
    }

    #[test]
    fn ws_json_seeds_and_regressions_hold() {
        replay("ws_json", check_ws_json);
    }

    #[test]
    fn admin_request_seeds_and_regressions_hold() {
        replay("admin_request", check_admin_request);
    }

    #[test]
    fn config_file_seeds_and_regressions_hold() {
        replay("config_file", check_config_file);
    }

    #[test]
    fn jwt_token_seeds_and_regressions_hold() {
        replay("jwt_token", check_jwt_token);
    }

    #[test]
    fn resp_reply_seeds_and_regressions_hold() {
        replay("resp_reply", check_resp_reply);
    }

    #[test]
    fn deflate_offer_seeds_and_regressions_hold() {
        replay("deflate_offer", check_deflate_offer);
    }

    #[test]
    fn inflate_seeds_and_regressions_hold() {
        replay("inflate", check_inflate);
    }

    #[test]
    fn forwarded_seeds_and_regressions_hold() {
        replay("forwarded", check_forwarded);
    }

    #[test]
    fn msgpack_request_seeds_and_regressions_hold() {
        replay("msgpack_request", check_msgpack_request);
    }

    #[test]
    fn redis_message_seeds_and_regressions_hold() {
        replay("redis_message", check_redis_message);
    }

    #[test]
    fn centrifugo_json_seeds_and_regressions_hold() {
        replay("centrifugo_json", check_centrifugo_json);
    }

    #[test]
    fn centrifugo_protobuf_seeds_and_regressions_hold() {
        replay("centrifugo_protobuf", check_centrifugo_protobuf);
    }
}
