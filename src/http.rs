//! The HTTP/1.1 side of the public port: read one request head (bounded in
//! size and time), then either upgrade to WebSocket or answer and close.
//!
//! Routes: `GET /ws`, `GET /connection/websocket` (Centrifugo's client
//! protocol; `Sec-WebSocket-Protocol: centrifuge-protobuf` selects its
//! Protobuf encoding) and `GET /echo` (upgrade), `GET /health` (JSON), and
//! with `--demo` the chat page under `/demo/` (`demo.rs`). Every refusal is
//! a specific status with a JSON body: 400, 404, 405, 426 (with
//! `Sec-WebSocket-Version: 13`), 431, 503. Parsing is httparse's.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::auth::Claims;
use crate::centrifugo;
use crate::config::Compression;
use crate::deflate::{self, Agreement};
use crate::demo;
use crate::proxy::{self, ClientAddr};
use crate::reactor::with_timeout;
use crate::shard::{unix_now, Shard};
use crate::wire::{Encoding, Wire};
use crate::ws;

/// Most headers one request may carry (431 above).
const MAX_HEADERS: usize = 64;
/// First read size for a request head (typical upgrades are 200-400 bytes);
/// it doubles up to `--max-header-bytes`.
const INITIAL_HEAD_BYTES: usize = 512;
/// After an error response, how long the client has to stop sending before
/// the socket is closed (reading its leftovers avoids a reset that could
/// destroy the response in flight).
const LINGER: Duration = Duration::from_secs(1);

/// Which WebSocket endpoint a connection upgraded to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/ws`: the JSON pub/sub protocol.
    Ws,
    /// `/echo`: every message sent back as is.
    Echo,
    /// `/connection/websocket`: Centrifugo's client protocol v2, in the
    /// encoding chosen at the upgrade.
    Centrifugo(crate::centrifugo::Encoding),
}

impl Route {
    /// The request path that leads here.
    pub fn path(self) -> &'static str {
        match self {
            Route::Ws => "/ws",
            Route::Echo => "/echo",
            Route::Centrifugo(_) => "/connection/websocket",
        }
    }

    /// True for the pub/sub routes (/ws and /connection/websocket).
    pub fn is_pubsub(self) -> bool {
        self != Route::Echo
    }
}

/// A completed upgrade.
#[derive(Debug)]
pub struct Upgrade {
    /// The endpoint.
    pub route: Route,
    /// Bytes the client sent after the request head (early frames).
    pub leftover: Vec<u8>,
    /// The verified claims of a `?token=` in the upgrade URL.
    pub claims: Option<Claims>,
    /// How the connection wants its frames: the encoding, and the
    /// permessage-deflate window when one was negotiated (`--compression
    /// on` and an acceptable offer).
    pub wire: Wire,
    /// Who the client is, for the `upgraded` log line; not kept after it.
    pub client: ClientAddr,
}

/// An HTTP answer, on either port (the admin listener's too).
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Content-Type.
    pub content_type: &'static str,
    /// Extra header lines, each ending in "\r\n".
    pub headers: String,
    /// The body: built per answer, or a file built into the binary.
    pub body: Cow<'static, str>,
}

impl Response {
    /// A JSON answer.
    pub fn json(status: u16, body: serde_json::Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            headers: String::new(),
            body: body.to_string().into(),
        }
    }

    /// A 200 whose JSON body was written by hand (raw client data inside
    /// it is kept byte for byte, which `serde_json::Value` would not).
    pub fn json_text(body: String) -> Response {
        Response {
            status: 200,
            content_type: "application/json",
            headers: String::new(),
            body: body.into(),
        }
    }

    /// A JSON error: `{"status":S,"error":REASON,"message":M}`.
    pub fn error(status: u16, message: &str) -> Response {
        let body =
            serde_json::json!({ "status": status, "error": reason(status), "message": message });
        Response::json(status, body)
    }

    /// [`Response::error`] with a machine-readable `code` too (the /ws
    /// protocol's error code for the same cause).
    pub fn error_with_code(status: u16, message: &str, code: &str) -> Response {
        let body = serde_json::json!({
            "status": status, "error": reason(status), "message": message, "code": code
        });
        Response::json(status, body)
    }

    /// The same answer with one more header line (without "\r\n").
    pub fn with_header(mut self, line: &str) -> Response {
        self.headers.push_str(line);
        self.headers.push_str("\r\n");
        self
    }

    /// Status line, headers and body, ready to write.
    pub fn to_bytes(&self, keep_alive: bool) -> Vec<u8> {
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n{}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len(),
            if keep_alive { "keep-alive" } else { "close" },
            self.headers
        );
        let mut out = head.into_bytes();
        out.extend_from_slice(self.body.as_bytes());
        out
    }
}

/// The reason phrase of every status corecast sends.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

pub(crate) enum HeadError {
    TooLarge,
    Malformed(String),
    Io(std::io::Error),
}

/// Reads and answers one request. `admitted` is false when the process is
/// at `--max-connections`: everything but /health then gets 503. `peer` is
/// the socket's remote address, used only in log lines (see `peer_addr`).
pub async fn handshake<S>(
    shard: &Shard,
    stream: &mut S,
    admitted: bool,
    peer: Option<IpAddr>,
) -> Option<Upgrade>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let direct = ClientAddr::direct(peer);
    let cfg = &shard.config.config;
    let head = with_timeout(
        cfg.handshake_timeout,
        read_head(stream, cfg.max_header_bytes),
    )
    .await;
    let (buf, head_len) = match head {
        Some(Ok(head)) => head,
        None => return fail(shard, direct, "handshake timeout"),
        Some(Err(HeadError::Io(e))) => return fail(shard, direct, &format!("read failed: {e}")),
        Some(Err(HeadError::TooLarge)) => {
            let msg = format!(
                "request head over {} bytes or {MAX_HEADERS} headers",
                cfg.max_header_bytes
            );
            respond(shard, stream, Response::error(431, &msg), direct).await;
            return None;
        }
        Some(Err(HeadError::Malformed(msg))) => {
            respond(shard, stream, Response::error(400, &msg), direct).await;
            return None;
        }
    };
    let (client, answer) = decide(shard, &buf[..head_len], admitted, peer);
    match answer {
        Err(response) => {
            respond(shard, stream, response, client).await;
            None
        }
        Ok((route, accept, claims, deflate, protocol)) => {
            // No extensions header at all when nothing was agreed: some
            // clients fail on an empty one.
            let extensions = deflate
                .map(|agreed| format!("Sec-WebSocket-Extensions: {agreed}\r\n"))
                .unwrap_or_default();
            // Likewise the protocol: named only when the client offered it.
            let protocol_line = protocol
                .map(|e| format!("Sec-WebSocket-Protocol: {}\r\n", e.subprotocol()))
                .unwrap_or_default();
            let head = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\n{protocol_line}{extensions}\r\n"
            );
            if let Err(e) = stream.write_all(head.as_bytes()).await {
                return fail(shard, client, &format!("write failed: {e}"));
            }
            Some(Upgrade {
                route,
                leftover: buf[head_len..].to_vec(),
                claims,
                wire: Wire::new(
                    match route {
                        Route::Centrifugo(encoding) => Encoding::from(encoding),
                        _ => protocol.unwrap_or_default(),
                    },
                    deflate.map(|agreed| agreed.window()),
                ),
                client,
            })
        }
    }
}

/// The peer address of an accepted socket, looked up (one `getpeername`)
/// only when debug lines are logged: they are its only reader, so a
/// server at `info` pays nothing for it.
pub(crate) fn peer_addr(socket: &std::net::TcpStream) -> Option<IpAddr> {
    if log::max_level() < log::LevelFilter::Debug {
        return None;
    }
    socket.peer_addr().ok().map(|addr| addr.ip())
}

fn fail(shard: &Shard, client: ClientAddr, why: &str) -> Option<Upgrade> {
    shard.metrics.on_handshake_failure(None);
    log::debug!("handshake dropped: {why} client={client}");
    None
}

pub(crate) async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    max: usize,
) -> Result<(Vec<u8>, usize), HeadError> {
    let mut buf = vec![0; INITIAL_HEAD_BYTES.min(max)];
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            if buf.len() >= max {
                return Err(HeadError::TooLarge);
            }
            buf.resize((buf.len() * 2).min(max), 0);
        }
        let n = stream
            .read(&mut buf[filled..])
            .await
            .map_err(HeadError::Io)?;
        if n == 0 {
            return Err(HeadError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::Request::new(&mut headers).parse(&buf[..filled]) {
            Ok(httparse::Status::Complete(len)) => {
                buf.truncate(filled);
                return Ok((buf, len));
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
            Err(e) => return Err(HeadError::Malformed(format!("malformed HTTP request: {e}"))),
        }
    }
}

/// The answer [`decide`] picked: an upgrade (route, accept key, the
/// claims of a `?token=`, the permessage-deflate agreement, the encoding
/// a /ws client chose with `Sec-WebSocket-Protocol`) or a response.
pub(crate) type Decision = Result<
    (
        Route,
        String,
        Option<Claims>,
        Option<Agreement>,
        Option<Encoding>,
    ),
    Response,
>;

/// Parses the complete head, works out who the client is (`peer`, or the
/// address a trusted proxy forwarded), and picks the answer: an upgrade
/// (after the origin and token checks) or a response. Synchronous on
/// purpose: the 64-entry header array lives on the stack here, not in
/// every handshaking task.
pub(crate) fn decide(
    shard: &Shard,
    head: &[u8],
    admitted: bool,
    peer: Option<IpAddr>,
) -> (ClientAddr, Decision) {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    // read_head already parsed these bytes to completion.
    let _ = req.parse(head);
    let client = client_addr(shard, &req, peer);
    (client, answer(shard, &req, admitted, client))
}

/// Who sent `req`: the peer, or, when the peer is in `--trusted-proxies`,
/// the client it forwarded for. A malformed header is a debug line and
/// the peer, never a refusal.
fn client_addr(shard: &Shard, req: &httparse::Request<'_, '_>, peer: Option<IpAddr>) -> ClientAddr {
    let direct = ClientAddr::direct(peer);
    let trusted = &shard.config.config.trusted_proxies;
    let Some(peer) = peer.filter(|_| !trusted.is_empty()) else {
        return direct;
    };
    // Not UTF-8 reads as "?", which no address parser takes: a malformed
    // field, not an absent one.
    let values = |name: &'static str| {
        req.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| std::str::from_utf8(h.value).unwrap_or("?"))
    };
    match proxy::client_addr(
        peer,
        trusted,
        values("x-forwarded-for"),
        values("x-real-ip"),
    ) {
        Ok(client) => client,
        Err(bad) => {
            log::debug!("ignoring malformed {} client={direct}", bad.header);
            direct
        }
    }
}

/// Routes and checks a parsed request (see [`decide`]).
fn answer(
    shard: &Shard,
    req: &httparse::Request<'_, '_>,
    admitted: bool,
    client: ClientAddr,
) -> Decision {
    let path = req.path.unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    let route = match path {
        "/ws" => Some(Route::Ws),
        "/echo" => Some(Route::Echo),
        "/connection/websocket" => {
            let protobuf = header_values(req, "sec-websocket-protocol")
                .flat_map(|v| v.split(','))
                .any(|p| p.trim() == centrifugo::PROTOBUF_SUBPROTOCOL);
            Some(Route::Centrifugo(if protobuf {
                centrifugo::Encoding::Protobuf
            } else {
                centrifugo::Encoding::Json
            }))
        }
        "/health" => None,
        _ => return Err(other_path(shard, req, path)),
    };
    if req.method != Some("GET") {
        return Err(Response::error(405, &format!("{path} takes GET")).with_header("Allow: GET"));
    }
    let Some(route) = route else {
        return Err(health(shard));
    };
    if !admitted {
        let msg = format!(
            "connection limit reached ({})",
            shard.config.max_connections
        );
        return Err(Response::error(503, &msg));
    }
    if shard.shutdown.is_set() {
        return Err(Response::error(503, "server is shutting down"));
    }
    if !has_token(req, "upgrade", "websocket") {
        return Err(
            Response::error(426, &format!("{path} needs a WebSocket upgrade request"))
                .with_header("Upgrade: websocket")
                .with_header("Sec-WebSocket-Version: 13"),
        );
    }
    if req.version != Some(1) {
        return Err(Response::error(400, "a WebSocket upgrade needs HTTP/1.1"));
    }
    if !has_token(req, "connection", "upgrade") {
        return Err(Response::error(400, "missing \"Connection: Upgrade\""));
    }
    if header(req, "sec-websocket-version").map(str::trim) != Some("13") {
        return Err(
            Response::error(426, "unsupported Sec-WebSocket-Version; only 13 is spoken")
                .with_header("Sec-WebSocket-Version: 13"),
        );
    }
    // RFC 6455 section 11.3.1: the key must not appear more than once, and
    // two keys leave no way to pick the accept value the client checks.
    let mut keys = header_values(req, "sec-websocket-key");
    match (keys.next().map(str::trim), keys.next()) {
        (_, Some(_)) => Err(Response::error(400, "more than one Sec-WebSocket-Key")),
        (Some(key), None) if is_valid_key(key) => {
            let claims = authenticate(shard, req, route, client)?;
            let deflate = match shard.config.config.compression {
                Compression::On => {
                    deflate::negotiate(header_values(req, "sec-websocket-extensions"))
                }
                Compression::Off => None,
            };
            // /echo echoes frames as they come: no protocol of its own.
            let protocol = match route {
                Route::Ws => {
                    Encoding::from_subprotocols(header_values(req, "sec-websocket-protocol"))
                }
                Route::Echo => None,
                // The SDK's Protobuf build asks for its subprotocol, which
                // the answer must name; its JSON build asks for none.
                Route::Centrifugo(centrifugo::Encoding::Protobuf) => {
                    Some(Encoding::CentrifugoProtobuf)
                }
                Route::Centrifugo(centrifugo::Encoding::Json) => None,
            };
            Ok((
                route,
                ws::accept_key(key.as_bytes()),
                claims,
                deflate,
                protocol,
            ))
        }
        _ => Err(Response::error(400, "missing or invalid Sec-WebSocket-Key")),
    }
}

/// A path that is no endpoint: with `--demo`, the demo's files and tokens
/// under `/demo/`; otherwise 404. Reached only after the endpoints' paths
/// missed, so they pay nothing for it.
fn other_path(shard: &Shard, req: &httparse::Request<'_, '_>, path: &str) -> Response {
    match shard.demo() {
        Some(demo) if demo::is_demo_path(path) => {
            let query = req
                .path
                .and_then(|target| target.split_once('?'))
                .map(|(_, q)| q);
            demo.answer(req.method, path, query, unix_now())
        }
        Some(_) => Response::error(
            404,
            &format!(
                "no route for {path}; try /ws, /connection/websocket, /echo, /health or the demo at /demo/"
            ),
        ),
        None => Response::error(
            404,
            &format!("no route for {path}; try /ws, /connection/websocket, /echo or /health"),
        ),
    }
}

/// The upgrade's `Origin` against `--allowed-origins` (403), then its
/// `?token=` (401 when invalid or expired, or anonymous under
/// `--require-auth`). Returns the token's claims, if it had one. /echo
/// takes no token.
fn authenticate(
    shard: &Shard,
    req: &httparse::Request<'_, '_>,
    route: Route,
    client: ClientAddr,
) -> Result<Option<Claims>, Response> {
    let cfg = &shard.config.config;
    let origin = header(req, "origin").map(str::trim);
    if !cfg.allowed_origins.allows(origin) {
        let origin = origin.unwrap_or_default();
        let shown: String = origin.chars().take(128).collect();
        return Err(Response::error(
            403,
            &format!("origin {shown:?} is not in --allowed-origins"),
        ));
    }
    if route != Route::Ws {
        return Ok(None);
    }
    let target = req.path.unwrap_or("/");
    let token = target
        .split_once('?')
        .and_then(|(_, query)| query_param(query, "token"));
    let Some(token) = token else {
        return Ok(None);
    };
    match shard.verify_token(&token) {
        Ok(claims) if claims.user.is_empty() && cfg.require_auth => Err(Response::error(
            401,
            "authentication required: the token has no sub (--require-auth)",
        )
        .with_header("WWW-Authenticate: Bearer")),
        Ok(claims) => Ok(Some(claims)),
        Err(e) => {
            log::debug!("upgrade token refused: {e} client={client}");
            Err(Response::error(401, &e.to_string()).with_header("WWW-Authenticate: Bearer"))
        }
    }
}

/// The value of `name` in a query string, percent-decoded; None when absent
/// or not valid UTF-8 once decoded.
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    let raw = query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))?;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'%' if i + 2 < bytes.len() => std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok()),
            _ => None,
        };
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Every value of header `name` (case-insensitive), in the order sent. A
/// value that is not UTF-8 reads as empty, which no caller accepts.
pub(crate) fn header_values<'a, 'h>(
    req: &'h httparse::Request<'_, 'a>,
    name: &'h str,
) -> impl Iterator<Item = &'a str> + 'h {
    req.headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| std::str::from_utf8(h.value).unwrap_or(""))
}

/// True when list-valued header `name` holds `token` (case-insensitive).
/// Repeated fields form one comma-separated list (RFC 9110 section 5.3), so
/// `Connection: keep-alive` plus `Connection: Upgrade` holds `upgrade`.
pub(crate) fn has_token(req: &httparse::Request<'_, '_>, name: &str, token: &str) -> bool {
    header_values(req, name)
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The first value of header `name` (case-insensitive), if present and
/// UTF-8. Only for fields where a repeat changes nothing that is checked.
pub(crate) fn header<'a>(req: &httparse::Request<'_, 'a>, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(h.value).ok())
}

/// A key is base64 of 16 bytes: 22 base64 characters and "==".
pub(crate) fn is_valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    b.len() == 24
        && b[22..] == *b"=="
        && b[..22]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

/// /health on either port: liveness and readiness. 200 once every shard
/// accepts; 503 while starting or draining.
pub fn health(shard: &Shard) -> Response {
    let shared = &shard.shared;
    let ready_shards = shared.ready_shards.load(Ordering::Relaxed);
    let draining = shard.shutdown.is_set();
    let ready = ready_shards >= shared.n_shards && !draining;
    let status = match (draining, ready) {
        (true, _) => "draining",
        (false, true) => "ok",
        (false, false) => "starting",
    };
    // Redis mode: the links of the shard answering (every shard has its
    // own to every instance, so an outage shows on each).
    let redis = shard.redis_health();
    let status = match &redis {
        Some(r) if status == "ok" && r["up"] == false => "degraded",
        _ => status,
    };
    let mut body = serde_json::json!({
        "status": status,
        "ready": ready,
        "shards": shared.n_shards,
        "shards_ready": ready_shards,
        "connections": shared.websockets.load(Ordering::Relaxed),
        "slow_consumer_closes": shared.slow_consumer_closes.load(Ordering::Relaxed),
    });
    if let Some(redis) = redis {
        body["redis"] = redis;
    }
    Response::json(if ready { 200 } else { 503 }, body)
}

/// Writes a final response, shuts our side, and lingers briefly reading
/// whatever the client still sends so the response is not lost to a reset.
async fn respond<S: AsyncRead + AsyncWrite + Unpin>(
    shard: &Shard,
    stream: &mut S,
    r: Response,
    client: ClientAddr,
) {
    if r.status != 200 {
        shard.metrics.on_handshake_failure(Some(r.status));
        log::debug!("http response status={} client={client}", r.status);
    }
    if stream.write_all(&r.to_bytes(false)).await.is_err() || stream.close().await.is_err() {
        return;
    }
    let mut sink = vec![0u8; 512]; // On the heap: only refused sockets pay for it.
    let drain = async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = with_timeout(LINGER, drain).await;
}

#[cfg(test)]
mod tests {
    use super::query_param;

    #[test]
    fn query_params_are_found_and_percent_decoded() {
        assert_eq!(
            query_param("a=1&token=x.y.z", "token").as_deref(),
            Some("x.y.z")
        );
        assert_eq!(
            query_param("token=a%2Eb+c", "token").as_deref(),
            Some("a.b c")
        );
        assert_eq!(
            query_param("tokens=1", "token"),
            None,
            "a longer name is another key"
        );
        assert_eq!(
            query_param("token", "token"),
            None,
            "a key without = has no value"
        );
        assert_eq!(
            query_param("token=%zz%4", "token").as_deref(),
            Some("%zz%4")
        );
        assert_eq!(
            query_param("token=%ff", "token"),
            None,
            "not UTF-8 once decoded"
        );
        assert_eq!(query_param("token=", "token").as_deref(), Some(""));
    }
}
