//! corecast: a thread-per-core WebSocket pub/sub server.
//!
//! Codemap (docs/ARCHITECTURE.md has the full map and the invariants):
//! - [`config`]: flags, config file and namespaces; [`server`]: startup, one pinned glommio
//!   executor per shard; [`shutdown`]: signals -> drain.
//! - [`listener`]: SO_REUSEPORT sockets and accept loops; [`http`]: request
//!   head, upgrade or error status; [`connection`]: one client's task;
//!   [`reactor`]: the shard's epoll set, readiness rules, wake-ups and timeouts.
//! - [`ws`]: RFC 6455 codec (the only tungstenite user); [`deflate`]:
//!   permessage-deflate negotiation and the per-shard codec; [`message`]: the
//!   /ws JSON protocol; [`centrifugo`]: Centrifugo's client protocol v2
//!   (JSON and Protobuf) at /connection/websocket, a codec with no I/O;
//!   [`wire`]: a connection's encoding and compression, and the conversion
//!   of native JSON messages to other encodings; [`outbox`]: per-connection
//!   frame queue.
//! - [`shard`]: per-core state and the publish path; [`topics`]: channel
//!   table; [`bus`]: cross-shard mesh (the only glommio channel user).
//! - [`origin`]: allowed browser origins (`--allowed-origins`); [`proxy`]:
//!   trusted proxies and the client address they forward (`--trusted-proxies`).
//! - [`auth`]: token (JWT) verification, keys to claims; no I/O. [`demo`]:
//!   `--demo`'s chat page (built into the binary) and its token minting.
//! - [`history`]: per-shard channel history (offsets, epochs, recovery); no
//!   I/O (`shard/streams.rs` routes history channels to their home shard).
//! - [`redis`]: Redis client for `--redis` scale-out (command pipeline and
//!   pub/sub over glommio sockets; RESP in `redis::resp`, no I/O).
//! - [`metrics`], [`sys`], [`error`]: support.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod admin;
pub mod auth;
pub mod broker;
pub mod bus;
pub mod centrifugo;
pub mod config;
pub mod connection;
pub mod deflate;
pub mod demo;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod history;
pub mod http;
pub mod latency;
pub mod listener;
pub mod message;
pub mod metrics;
pub mod origin;
pub mod outbox;
pub mod prom;
pub mod proxy;
pub mod reactor;
pub mod redis;
pub mod server;
pub mod shard;
pub mod shutdown;
pub mod sys;
pub mod topics;
pub mod wire;
pub mod ws;

pub use config::Config;
pub use error::StartupError;
