//! The admin listener: plain HTTP/1.1 with keep-alive, served by the shards
//! themselves (no extra runtime). `/metrics`, `/health`, `/latency`, and the
//! server API under `/api/` (see `api.rs`); `report.rs` logs latency
//! intervals.
//!
//! Requests are parsed by httparse; bodies need a Content-Length and are
//! bounded by `--max-api-body`. Every answer is JSON except /metrics
//! (OpenMetrics) and /latency (.hgrm text).

use std::rc::Rc;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use crate::http::Response;
use crate::reactor::with_timeout;
use crate::shard::Shard;

pub(crate) mod api;
mod history;
mod report;
mod users;

pub use report::report_latency_forever;

/// Admin connections one shard serves at once; more are closed unanswered.
const MAX_ADMIN_CONNECTIONS: usize = 256;
/// Most headers in an admin request.
const MAX_HEADERS: usize = 32;
/// Largest admin request head.
pub(crate) const MAX_HEAD_BYTES: usize = 16 * 1024;

/// One parsed admin request.
#[derive(Debug)]
pub struct Request {
    /// Method, e.g. "GET".
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// The query string (after '?'), possibly empty.
    pub query: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The body (Content-Length bytes).
    pub body: Vec<u8>,
    /// False when the client asked to close after this request.
    pub(crate) keep_alive: bool,
}

/// Serves one admin connection until it closes, errs, idles past the
/// handshake timeout, or asks to close.
pub async fn serve(shard: Rc<Shard>, mut stream: TcpStream) {
    if shard.n_admin.get() >= MAX_ADMIN_CONNECTIONS {
        log::debug!("admin connection refused: {MAX_ADMIN_CONNECTIONS} already open on this shard");
        return;
    }
    shard.n_admin.set(shard.n_admin.get() + 1);
    let idle = shard.config.config.handshake_timeout;
    let mut buf = Vec::new();
    loop {
        let read = read_request(&mut stream, &mut buf, shard.config.config.max_api_body);
        let Some(request) = with_timeout(idle, read).await else {
            break;
        };
        let (response, keep_alive) = match request {
            Ok(request) => (api::route(&shard, &request).await, request.keep_alive),
            Err(Some(response)) => (response, false),
            Err(None) => break,
        };
        if write_response(&mut stream, &response, keep_alive)
            .await
            .is_err()
            || !keep_alive
        {
            break;
        }
    }
    shard.n_admin.set(shard.n_admin.get() - 1);
}

/// Reads one request (head and body) from `buf` plus the socket. Err(Some)
/// is an answer to send before closing; Err(None) means the peer is gone.
async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    max_body: usize,
) -> Result<Request, Option<Response>> {
    loop {
        if let Some((head_len, mut request, content_length)) = parse_head(buf, max_body)? {
            while buf.len() < head_len + content_length {
                fill(stream, buf).await?;
            }
            request.body = buf[head_len..head_len + content_length].to_vec();
            buf.drain(..head_len + content_length);
            return Ok(request);
        }
        if buf.len() >= MAX_HEAD_BYTES {
            return Err(Some(Response::error(431, "request head too large")));
        }
        fill(stream, buf).await?;
    }
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), Option<Response>> {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => Err(None),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
    }
}

/// Ok(None) while the head is incomplete; Ok(Some(head length, request
/// without body, body length)) once it is whole.
pub(crate) fn parse_head(
    buf: &[u8],
    max_body: usize,
) -> Result<Option<(usize, Request, usize)>, Option<Response>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Partial) => return Ok(None),
        // The limit holds however TCP split the head: a head that became
        // whole in the read that crossed the limit is refused too.
        Ok(httparse::Status::Complete(n)) if n > MAX_HEAD_BYTES => {
            return Err(Some(Response::error(431, "request head too large")))
        }
        Ok(httparse::Status::Complete(n)) => n,
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Some(Response::error(431, "too many headers")))
        }
        Err(e) => {
            return Err(Some(Response::error(
                400,
                &format!("malformed HTTP request: {e}"),
            )))
        }
    };
    let header = |name: &str| crate::http::header(&req, name).map(str::trim);
    if header("transfer-encoding").is_some() {
        return Err(Some(Response::error(
            411,
            "send the body with a Content-Length",
        )));
    }
    let content_length = content_length(&req).map_err(Some)?;
    if content_length > max_body {
        return Err(Some(Response::error(
            413,
            &format!("body of {content_length} bytes exceeds --max-api-body {max_body}"),
        )));
    }
    let target = req.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let close = crate::http::has_token(&req, "connection", "close");
    let request = Request {
        method: req.method.unwrap_or("").to_string(),
        path: path.to_string(),
        query: query.to_string(),
        authorization: header("authorization").map(str::to_string),
        body: Vec::new(),
        keep_alive: req.version == Some(1) && !close,
    };
    Ok(Some((head_len, request, content_length)))
}

/// The body length: 0 without a Content-Length. Repeats of one value, as
/// separate fields or a list ("42, 42"), are that value, as RFC 9110
/// section 8.6 allows; differing or malformed values are a 400, since the
/// body's end would be a guess (RFC 9112 section 6.3).
fn content_length(req: &httparse::Request<'_, '_>) -> Result<usize, Response> {
    let mut length = None;
    for item in crate::http::header_values(req, "content-length").flat_map(|v| v.split(',')) {
        let item = item.trim();
        let n = match item.parse::<usize>() {
            Ok(n) if item.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(Response::error(400, "invalid Content-Length")),
        };
        if length.is_some_and(|l| l != n) {
            return Err(Response::error(400, "conflicting Content-Length values"));
        }
        length = Some(n);
    }
    Ok(length.unwrap_or(0))
}

async fn write_response(
    stream: &mut TcpStream,
    r: &Response,
    keep_alive: bool,
) -> std::io::Result<()> {
    stream.write_all(&r.to_bytes(keep_alive)).await?;
    if !keep_alive {
        stream.close().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_with_padding(pad: usize) -> Vec<u8> {
        let mut head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
        head.extend(std::iter::repeat_n(b'a', pad));
        head.extend_from_slice(b"\r\n\r\n");
        head
    }

    #[test]
    fn a_whole_head_over_the_limit_is_431_however_it_arrived() {
        let refused = parse_head(&head_with_padding(MAX_HEAD_BYTES + 2000), 1024);
        match refused {
            Err(Some(response)) => assert_eq!(response.status, 431),
            other => panic!("an 18 KiB head was not refused: {:?}", other.is_ok()),
        }
        let served = parse_head(&head_with_padding(MAX_HEAD_BYTES - 200), 1024);
        assert!(
            matches!(served, Ok(Some(_))),
            "a head under the limit is served"
        );
    }
}
