//! `http_head`: `read_head` on a client's request head, whole and cut, and
//! the answer the router gives it (upgrade, `--demo` page or response).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::future::block_on;
use futures_lite::AsyncRead;

use super::{cuts, whole_cuts, DEMO_KEY, SHARD};
use crate::demo;
use crate::http::{self, HeadError, Response, Route};
use crate::ws;

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
pub(super) fn check_response(response: &Response) {
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
