//! permessage-deflate (RFC 7692), without per-connection state: the
//! handshake's offer negotiation ([`negotiate`], pure) and the per-shard
//! codec ([`Deflater`], [`Inflater`]).
//!
//! The server always answers `server_no_context_takeover` and
//! `client_no_context_takeover`, so every message is compressed and
//! decompressed from an empty window: one compressor per window size and
//! one decompressor per shard, reset after each message, serve every
//! connection, and a connection's only state is its window in its
//! `ConnState`'s `Wire`. It also makes every compressed copy of a publish
//! with one window the same bytes, which is what lets a publish be
//! compressed once per shard per window size and shared.
//! Nothing here does I/O or knows frames: `ws.rs` puts the compressed
//! payload in a frame with RSV1 set and takes it out again.

mod codec;
mod negotiate;

pub use codec::{Deflater, InflateError, Inflater, SERVER_WINDOW_BITS};
pub use negotiate::{negotiate, Agreement};
