//! Clients that vanish or misbehave: every resource they held is released
//! at once, and what they can make the server hold is bounded.

mod hangup;
mod outbound;

use std::time::Duration;

use crate::harness::{get, TestServer};

/// How soon a connection whose client has gone must be released.
const RELEASE_WITHIN: Duration = Duration::from_secs(1);

/// Upgraded connections the server holds, from the admin port's /health
/// (the public port's /health would count its own request).
fn websockets(server: &TestServer) -> u64 {
    let response = get(server.admin_addr(), "/health");
    assert_eq!(response.status, 200, "{response:?}");
    response.json()["connections"]
        .as_u64()
        .expect("connections")
}

/// Open file descriptors of the server process.
fn open_fds(server: &TestServer) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .expect("/proc/<pid>/fd")
        .count()
}

/// A `/proc/<pid>/status` field in KiB (VmRSS, VmHWM).
fn status_kib(server: &TestServer, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}
