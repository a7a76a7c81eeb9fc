//! Test harness: runs the real `corecast` binary on a free port and talks to
//! it over real sockets.
//!
//! The server runs as a child process, not on threads of the test binary,
//! because what is tested is process-wide: signals (graceful shutdown),
//! resource limits and exit codes. The harness learns the port from the
//! server's own `listening` log line (a signal, never a sleep) and keeps
//! draining its stderr so the server never blocks on a full pipe.

#![allow(dead_code)] // Each test module uses a different part of the harness.

mod client;
mod http;
mod nginx;
mod raw;
pub mod redis;
mod server;

pub use client::{clients_on_both_shards, connection_id, Client, Pool};
pub use http::{exchange, get, post, HttpConn, Response};
pub use nginx::{servers_behind_nginx, Nginx};
pub use raw::{
    encode_client_frame, upgrade_request, upgrade_request_with_key, RawClient, RawFrame,
    RFC_ACCEPT, RFC_KEY,
};
pub use redis::RedisServer;
pub use server::{bare_command, command, log_field, startup_error_line, TestServer};

use std::time::Duration;

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);
