//! What a client that sends but never reads can make the server hold.

use std::io::Write;

use super::status_kib;
use crate::harness::{encode_client_frame, RawClient, TestServer};

/// Empty pings the flooding client sends.
const PINGS: usize = 3_000_000;

/// `--max-outbound-bytes` for the flood test (the default).
const LIMIT_KIB: u64 = 1024;

#[test]
fn a_ping_flood_that_reads_nothing_is_bounded_in_memory_and_cut_off() {
    let server = TestServer::start(&["--close-timeout", "30s"]);
    let mut client = RawClient::connect(&server.addr(), "/ws");
    let rss_before = status_kib(&server, "VmRSS:");
    let ping = encode_client_frame(0x89, b"", true);
    let chunk: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 10_000)
        .collect();
    client
        .stream
        .set_write_timeout(Some(crate::harness::WAIT))
        .unwrap();
    let mut sent = 0;
    while sent < PINGS {
        // The server stops reading or resets once it has cut us off.
        if client.stream.write_all(&chunk).is_err() {
            break;
        }
        sent += 10_000;
    }
    assert_eq!(client.expect_close(), 1008, "cut off as a slow consumer");
    let peak = status_kib(&server, "VmHWM:");
    let grew = peak.saturating_sub(rss_before);
    assert!(
        grew <= 2 * LIMIT_KIB,
        "server RSS grew {grew} KiB for one client (limit {LIMIT_KIB} KiB), sent {sent} pings"
    );
    let health = crate::harness::get(server.admin_addr(), "/health").json();
    assert_eq!(health["slow_consumer_closes"], 1, "{health}");
}
