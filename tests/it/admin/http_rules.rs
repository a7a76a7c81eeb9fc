//! The admin port's HTTP rules: routes and methods, body limits, keep-alive, bearer token.

use crate::harness::{get, post, HttpConn, TestServer};

#[test]
fn unknown_admin_route_is_404_and_wrong_method_is_405_with_allow() {
    let server = TestServer::start(&["--shards", "1"]);
    let addr = server.admin_addr();
    let missing = get(addr, "/nope");
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_eq!(missing.json()["status"], 404);
    assert_eq!(get(addr, "/api/nope").status, 404);

    let wrong = get(addr, "/api/publish");
    assert_eq!(wrong.status, 405, "{}", wrong.body);
    assert_eq!(wrong.header("allow").as_deref(), Some("POST"));
    let wrong = post(addr, "/metrics", "{}");
    assert_eq!(wrong.status, 405, "{}", wrong.body);
    assert_eq!(wrong.header("allow").as_deref(), Some("GET"));
}

#[test]
fn api_body_over_max_api_body_is_413_and_a_body_at_the_limit_is_accepted() {
    let server = TestServer::start(&["--shards", "1", "--max-api-body", "1KiB"]);
    let addr = server.admin_addr();
    let fill = |n: usize| {
        let shell = r#"{"channel":"c","data":""}"#.len();
        format!(r#"{{"channel":"c","data":"{}"}}"#, "x".repeat(n - shell))
    };
    let at_limit = fill(1024);
    assert_eq!(at_limit.len(), 1024);
    let response = post(addr, "/api/publish", &at_limit);
    assert_eq!(response.status, 200, "{}", response.body);

    // Only the head: the server must refuse on Content-Length alone.
    let mut conn = HttpConn::open(addr);
    conn.write_raw(b"POST /api/publish HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.status, 413, "{}", response.body);
    assert!(
        response.body.contains("--max-api-body"),
        "{}",
        response.body
    );
    assert!(conn.closed_by_peer(), "the connection ends after a 413");
}

#[test]
fn chunked_request_body_is_411() {
    let server = TestServer::start(&["--shards", "1"]);
    let mut conn = HttpConn::open(server.admin_addr());
    let body = r#"{"channel":"c","data":1}"#;
    conn.write_raw(
        format!(
            "POST /api/publish HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let response = conn.read_response();
    assert_eq!(response.status, 411, "{}", response.body);
    assert!(conn.closed_by_peer(), "the connection ends after a 411");
}

#[test]
fn conflicting_content_lengths_are_400_and_identical_ones_count_once() {
    let server = TestServer::start(&["--shards", "1"]);
    let body = r#"{"channel":"c","data":1}"#;
    let n = body.len();
    for lengths in [
        format!("Content-Length: {n}\r\nContent-Length: {}", n + 1),
        format!("Content-Length: {}\r\nContent-Length: {n}", n - 1),
        format!("Content-Length: {n}, {}", n + 1),
    ] {
        let mut conn = HttpConn::open(server.admin_addr());
        conn.write_raw(
            format!("POST /api/publish HTTP/1.1\r\nHost: t\r\n{lengths}\r\n\r\n{body}").as_bytes(),
        );
        let response = conn.read_response();
        assert_eq!(response.status, 400, "{lengths:?}: {}", response.body);
        assert!(
            response.body.contains("Content-Length"),
            "{}",
            response.body
        );
        assert!(
            conn.closed_by_peer(),
            "{lengths:?}: the connection ends after a 400"
        );
    }
    // RFC 9110 section 8.6: repeats of one value are that value. The next
    // request on the same connection proves the body was framed by it.
    for lengths in [
        format!("Content-Length: {n}\r\nContent-Length: {n}"),
        format!("Content-Length: {n}, {n}"),
    ] {
        let mut conn = HttpConn::open(server.admin_addr());
        conn.write_raw(
            format!("POST /api/publish HTTP/1.1\r\nHost: t\r\n{lengths}\r\n\r\n{body}").as_bytes(),
        );
        let response = conn.read_response();
        assert_eq!(response.status, 200, "{lengths:?}: {}", response.body);
        assert_eq!(conn.request("GET", "/health", &[], "").status, 200);
    }
}

#[test]
fn connection_close_counts_in_any_connection_field() {
    let server = TestServer::start(&["--shards", "1"]);
    let mut conn = HttpConn::open(server.admin_addr());
    conn.write_raw(
        b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
    );
    let response = conn.read_response();
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.header("connection").as_deref(), Some("close"));
    assert!(
        conn.closed_by_peer(),
        "Connection: close ends the connection"
    );
}

#[test]
fn keep_alive_answers_requests_in_turn_until_connection_close() {
    let server = TestServer::start(&["--shards", "2"]);
    let mut conn = HttpConn::open(server.admin_addr());
    let health = conn.request("GET", "/health", &[], "");
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.header("connection").as_deref(), Some("keep-alive"));
    let published = conn.request("POST", "/api/publish", &[], r#"{"channel":"k","data":1}"#);
    assert_eq!(published.status, 200, "{}", published.body);
    let metrics = conn.request("GET", "/metrics", &[], "");
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.ends_with("# EOF\n"), "{}", metrics.body);
    // Two requests in one write are answered in order.
    conn.write_raw(
        b"GET /api/channels HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert!(conn.read_response().body.contains("channels"));
    assert!(conn.read_response().body.contains("shards_ready"));

    let last = conn.request("GET", "/health", &[("Connection", "close")], "");
    assert_eq!(last.status, 200);
    assert_eq!(last.header("connection").as_deref(), Some("close"));
    assert!(
        conn.closed_by_peer(),
        "Connection: close ends the connection"
    );
}

#[test]
fn admin_token_guards_api_routes_but_not_metrics_or_health() {
    let server = TestServer::start(&["--shards", "1", "--admin-token", "s3cret"]);
    let addr = server.admin_addr();
    let ask = |auth: Option<&str>| {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        HttpConn::open(addr).request("GET", "/api/stats", &headers, "")
    };
    let none = ask(None);
    assert_eq!(none.status, 401, "{}", none.body);
    assert_eq!(none.header("www-authenticate").as_deref(), Some("Bearer"));
    for wrong in [
        "Bearer wrong",
        "Bearer s3cre",
        "Bearer s3cret2",
        "Basic s3cret",
        "s3cret",
    ] {
        let response = ask(Some(wrong));
        assert_eq!(response.status, 401, "{wrong}: {}", response.body);
        assert_eq!(
            response.header("www-authenticate").as_deref(),
            Some("Bearer"),
            "{wrong}"
        );
    }
    // RFC 9110 section 11.1: the auth scheme is case-insensitive.
    for right in [
        "Bearer s3cret",
        "bearer s3cret",
        "BEARER s3cret",
        "beaRer   s3cret",
    ] {
        let response = ask(Some(right));
        assert_eq!(response.status, 200, "{right}: {}", response.body);
    }
    let publish = HttpConn::open(addr).request(
        "POST",
        "/api/publish",
        &[("Authorization", "Bearer s3cret")],
        r#"{"channel":"c","data":1}"#,
    );
    assert_eq!(publish.status, 200, "{}", publish.body);
    let unauthorised = post(addr, "/api/publish", r#"{"channel":"c","data":1}"#);
    assert_eq!(unauthorised.status, 401);

    assert_eq!(get(addr, "/metrics").status, 200);
    assert_eq!(get(addr, "/health").status, 200);
    assert_eq!(get(addr, "/latency").status, 200);
}
