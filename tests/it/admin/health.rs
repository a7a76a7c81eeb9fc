//! /health on the admin port: ready, and draining during shutdown.

use crate::harness::{get, RawClient, TestServer, WAIT};

// ---- /health ----

#[test]
fn admin_health_reports_every_shard_ready() {
    let server = TestServer::start(&["--shards", "2"]);
    let response = get(server.admin_addr(), "/health");
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.header("content-type").as_deref(),
        Some("application/json")
    );
    let health = response.json();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["ready"], true, "{health}");
    assert_eq!(health["shards"], 2, "{health}");
    assert_eq!(health["shards_ready"], health["shards"], "{health}");
}

#[test]
fn admin_health_is_503_draining_while_a_client_holds_up_shutdown() {
    let server = TestServer::start(&["--shards", "1", "--shutdown-timeout", "5s"]);
    // Never answers the server's close, so the drain lasts the whole timeout.
    let _silent = RawClient::connect(&server.addr(), "/ws");
    server.signal(libc::SIGTERM);
    assert!(
        server
            .wait_for_log("draining connections=1", WAIT)
            .is_some(),
        "{}",
        server.log_text()
    );
    let response = get(server.admin_addr(), "/health");
    assert_eq!(response.status, 503, "{}", response.body);
    let health = response.json();
    assert_eq!(health["status"], "draining", "{health}");
    assert_eq!(health["ready"], false, "{health}");
}
