//! The HTTP side of the port: /health, every refusal status of the upgrade
//! handshake, request-head limits, the handshake timeout, and the accept key.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;

use crate::harness::{
    exchange, get, upgrade_request, upgrade_request_with_key, Response, TestServer, RFC_ACCEPT,
    RFC_KEY, WAIT,
};

#[test]
fn health_reports_status_shards_and_open_websockets() {
    let server = TestServer::start(&["--shards", "1"]);
    let resp = exchange(&server.addr(), "GET /health HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(
        resp.header("content-type").as_deref(),
        Some("application/json"),
        "{resp:?}"
    );
    let health = resp.json();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["shards"], 1, "{health}");
    assert_eq!(health["connections"], 0, "{health}");

    let (_a, _) = server.ws_client();
    let (_b, _) = server.ws_client();
    let health = server.health();
    assert_eq!(health["connections"], 2, "{health}");
}

#[test]
fn unknown_path_is_404() {
    let server = TestServer::start(&["--shards", "1"]);
    let resp = exchange(&server.addr(), "GET /nope HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(resp.status, 404, "{resp:?}");
    assert_eq!(resp.json()["status"], 404, "{resp:?}");
}

#[test]
fn post_to_ws_is_405_with_allow_get() {
    let server = TestServer::start(&["--shards", "1"]);
    // The valid upgrade request, sent as a POST with an empty body.
    let req = upgrade_request("/ws")
        .replacen("GET ", "POST ", 1)
        .replacen("\r\n\r\n", "\r\nContent-Length: 0\r\n\r\n", 1);
    let resp = exchange(&server.addr(), &req);
    assert_eq!(resp.status, 405, "{resp:?}");
    assert_eq!(resp.header("allow").as_deref(), Some("GET"), "{resp:?}");
}

#[test]
fn plain_get_on_ws_without_upgrade_is_426() {
    let server = TestServer::start(&["--shards", "1"]);
    let resp = exchange(&server.addr(), "GET /ws HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(resp.status, 426, "{resp:?}");
    assert_eq!(
        resp.header("upgrade").as_deref(),
        Some("websocket"),
        "{resp:?}"
    );
}

#[test]
fn unsupported_websocket_version_is_426_naming_version_13() {
    let server = TestServer::start(&["--shards", "1"]);
    let req = raw_upgrade(&[
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 8",
        &key_line(),
    ]);
    let resp = exchange(&server.addr(), &req);
    assert_eq!(resp.status, 426, "{resp:?}");
    assert_eq!(
        resp.header("sec-websocket-version").as_deref(),
        Some("13"),
        "{resp:?}"
    );
}

#[test]
fn missing_or_invalid_websocket_key_is_400() {
    let server = TestServer::start(&["--shards", "1"]);
    let bad_keys: [&[&str]; 4] = [
        &[],
        &["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ"],
        &["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j!!=="],
        &["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==dGhl"],
    ];
    for key in bad_keys {
        let mut lines = vec![
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
        ];
        lines.extend_from_slice(key);
        let resp = exchange(&server.addr(), &raw_upgrade(&lines));
        assert_eq!(resp.status, 400, "key {key:?}: {resp:?}");
    }
}

#[test]
fn upgrade_without_connection_upgrade_is_400() {
    let server = TestServer::start(&["--shards", "1"]);
    let req = raw_upgrade(&[
        "Upgrade: websocket",
        "Connection: keep-alive",
        "Sec-WebSocket-Version: 13",
        &key_line(),
    ]);
    let resp = exchange(&server.addr(), &req);
    assert_eq!(resp.status, 400, "{resp:?}");
    let req = raw_upgrade(&[
        "Upgrade: websocket",
        "Sec-WebSocket-Version: 13",
        &key_line(),
    ]);
    let resp = exchange(&server.addr(), &req);
    assert_eq!(resp.status, 400, "{resp:?}");
}

#[test]
fn repeated_upgrade_and_connection_fields_combine_into_one_list() {
    // RFC 9110 section 5.3: a list-valued field sent as several lines means
    // the same as one line joining them with commas.
    let server = TestServer::start(&["--shards", "1"]);
    let key = key_line();
    let cases: [&[&str]; 4] = [
        &[
            "Upgrade: websocket",
            "Connection: keep-alive",
            "Connection: Upgrade",
        ],
        &["Upgrade: websocket", "Connection: keep-alive, Upgrade"],
        &["Upgrade: h2c", "Upgrade: websocket", "Connection: Upgrade"],
        &["Upgrade: h2c", "Connection: Upgrade", "Upgrade: WebSocket"],
    ];
    for lines in cases {
        let mut all = lines.to_vec();
        all.extend_from_slice(&["Sec-WebSocket-Version: 13", &key]);
        let mut s = TcpStream::connect(server.addr()).expect("tcp connect");
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(raw_upgrade(&all).as_bytes()).unwrap();
        let resp = read_head(&mut s);
        assert_eq!(resp.status, 101, "{lines:?}: {resp:?}");
        assert_eq!(
            resp.header("sec-websocket-accept").as_deref(),
            Some(RFC_ACCEPT),
            "{lines:?}"
        );
    }
}

#[test]
fn two_websocket_keys_are_400() {
    let server = TestServer::start(&["--shards", "1"]);
    let other = "x3JJHMbDL1EzLkh9GBhXDw==";
    for second in [other, RFC_KEY] {
        let second = format!("Sec-WebSocket-Key: {second}");
        let req = raw_upgrade(&[
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
            &key_line(),
            &second,
        ]);
        let resp = exchange(&server.addr(), &req);
        assert_eq!(resp.status, 400, "{second}: {resp:?}");
        assert!(resp.body.contains("Sec-WebSocket-Key"), "{resp:?}");
    }
}

#[test]
fn garbage_request_line_is_400() {
    let server = TestServer::start(&["--shards", "1"]);
    let resp = exchange(&server.addr(), "this is not http\r\n\r\n");
    assert_eq!(resp.status, 400, "{resp:?}");
    assert_eq!(resp.json()["status"], 400, "{resp:?}");
}

#[test]
fn request_head_over_default_8kib_is_431() {
    let server = TestServer::start(&["--shards", "1"]);
    let under = exchange(&server.addr(), &get_with_padding("/nope", 7 * 1024));
    assert_eq!(
        under.status, 404,
        "a 7 KiB head is within the default limit: {under:?}"
    );
    let over = exchange(&server.addr(), &get_with_padding("/nope", 9 * 1024));
    assert_eq!(over.status, 431, "{over:?}");
}

#[test]
fn request_head_over_configured_max_header_bytes_is_431() {
    let server = TestServer::start(&["--shards", "1", "--max-header-bytes", "1KiB"]);
    let under = exchange(&server.addr(), &get_with_padding("/nope", 900));
    assert_eq!(
        under.status, 404,
        "a 900-byte head is within 1 KiB: {under:?}"
    );
    let over = exchange(&server.addr(), &get_with_padding("/nope", 2048));
    assert_eq!(over.status, 431, "{over:?}");
}

#[test]
fn more_than_64_headers_is_431() {
    let server = TestServer::start(&["--shards", "1"]);
    let headers = |n: usize| (0..n).map(|i| format!("X-H{i}: v\r\n")).collect::<String>();
    // 63 extra headers plus Host make 64: still allowed.
    let at_limit = exchange(
        &server.addr(),
        &format!("GET /nope HTTP/1.1\r\nHost: t\r\n{}\r\n", headers(63)),
    );
    assert_eq!(at_limit.status, 404, "{at_limit:?}");
    let over = exchange(
        &server.addr(),
        &format!("GET /nope HTTP/1.1\r\nHost: t\r\n{}\r\n", headers(64)),
    );
    assert_eq!(over.status, 431, "{over:?}");
}

#[test]
fn incomplete_handshake_is_dropped_after_handshake_timeout() {
    let server = TestServer::start(&["--shards", "1", "--handshake-timeout", "300ms"]);
    let mut s = TcpStream::connect(server.addr()).expect("tcp connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n")
        .unwrap();
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Ok(n) => panic!(
            "expected the connection to be dropped, got {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => panic!("server did not drop the connection within {WAIT:?}: {e}"),
    }
    assert!(
        server
            .wait_for_log("handshake dropped: handshake timeout", WAIT)
            .is_some(),
        "{}",
        server.log_text()
    );
}

#[test]
fn successful_upgrade_returns_the_rfc_accept_key() {
    let server = TestServer::start(&["--shards", "1"]);
    let key = "x3JJHMbDL1EzLkh9GBhXDw==";
    for (key, accept) in [(RFC_KEY, RFC_ACCEPT), (key, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=")] {
        assert_eq!(
            tungstenite::handshake::derive_accept_key(key.as_bytes()),
            accept
        );
        let mut s = TcpStream::connect(server.addr()).expect("tcp connect");
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(upgrade_request_with_key("/ws", key).as_bytes())
            .unwrap();
        let resp = read_head(&mut s);
        assert_eq!(resp.status, 101, "{resp:?}");
        assert_eq!(
            resp.header("sec-websocket-accept").as_deref(),
            Some(accept),
            "{resp:?}"
        );
        assert_eq!(
            resp.header("upgrade")
                .map(|v| v.to_ascii_lowercase())
                .as_deref(),
            Some("websocket")
        );
        assert_eq!(
            resp.header("connection")
                .map(|v| v.to_ascii_lowercase())
                .as_deref(),
            Some("upgrade")
        );
    }
}

#[test]
fn request_head_in_two_parts_upgrades_once_the_rest_arrives() {
    // The server must read the first part, wait on its readiness, and
    // resume when the rest arrives. Ordering, not time: with one shard,
    // tasks run in the order their connections were accepted, so once a
    // second connection's /health is answered, the first connection's
    // handshake has read its partial head and is waiting.
    let server = TestServer::start(&["--shards", "1"]);
    let mut s = TcpStream::connect(server.addr()).expect("tcp connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_nodelay(true).unwrap();
    let req = upgrade_request("/ws");
    let (first, rest) = req.split_at(req.len() / 2);
    s.write_all(first.as_bytes()).unwrap();
    assert_eq!(get(&server.addr(), "/health").status, 200);
    s.write_all(rest.as_bytes()).unwrap();
    let resp = read_head(&mut s);
    assert_eq!(resp.status, 101, "{resp:?}");
    assert_eq!(
        resp.header("sec-websocket-accept").as_deref(),
        Some(RFC_ACCEPT)
    );
}

/// Reads a response head only (for a 101, after which the socket stays open).
fn read_head(s: &mut TcpStream) -> Response {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read response head");
        assert_eq!(
            n,
            1,
            "EOF inside the response head: {:?}",
            String::from_utf8_lossy(&out)
        );
        out.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&out[..out.len() - 4]);
    Response::parse(&head, "")
}

/// The key header line carrying [`RFC_KEY`].
fn key_line() -> String {
    format!("Sec-WebSocket-Key: {RFC_KEY}")
}

/// `GET /ws` with exactly the header lines given (plus Host).
fn raw_upgrade(lines: &[&str]) -> String {
    let mut req = "GET /ws HTTP/1.1\r\nHost: test\r\n".to_string();
    for line in lines {
        req.push_str(line);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req
}

/// A GET whose head is about `size` bytes, padded with one long header.
fn get_with_padding(path: &str, size: usize) -> String {
    let start = format!("GET {path} HTTP/1.1\r\nHost: test\r\nX-Pad: ");
    let pad = size.saturating_sub(start.len() + 4);
    format!("{start}{}\r\n\r\n", "a".repeat(pad))
}
