//! Entry points for the fuzz targets in fuzz/: thin wrappers over the pure parsers; not a stable API.
//!
//! Each `check_*` function takes the fuzzer's bytes, runs one parser the way
//! the server does and panics when an invariant breaks (libFuzzer reports a
//! panic as a crash). fuzz/fuzz_targets/*.rs only call these; the tests at
//! the bottom replay fuzz/corpus/ and fuzz/regressions/ through the same
//! functions, so `cargo test` keeps every reproducer fixed. Nothing here does
//! I/O or runs an executor: byte streams are in memory, and the routers answer
//! from a one-shard [`Shard`] whose bus has no links. The first input bytes
//! pick the knobs (size limits, where the stream is cut), so the fuzzer
//! explores those too.
//!
//! Every `expect` here is an oracle, not error handling: a panic is how a
//! target reports a broken invariant, and none of this runs in the server
//! (only fuzz/ and `cargo test` call it). The few on setup (the one-shard
//! `Shard`, fixed flags) run on constant input.
//!
//! One file per target family, named after the code under test; this one
//! re-exports their `check_*` and keeps what they share: the cuts, the
//! one-shard `Shard` and the replay tests.

mod admin;
mod broker;
mod centrifugo;
mod config;
mod deflate;
mod forwarded;
mod http;
mod lz77;
mod message;
mod msgpack;
mod resp;
mod token;
mod ws;

pub use admin::check_admin_request;
pub use broker::check_redis_message;
pub use centrifugo::{check_centrifugo_json, check_centrifugo_protobuf};
pub use config::check_config_file;
pub use deflate::{check_deflate_offer, check_inflate};
pub use forwarded::check_forwarded;
pub use http::check_http_head;
pub use lz77::max_match_distance;
pub use message::check_ws_json;
pub use msgpack::check_msgpack_request;
pub use resp::check_resp_reply;
pub use token::check_jwt_token;
pub use ws::check_ws_decoder;

use std::rc::Rc;
use std::sync::Arc;

use clap::Parser;
use futures_lite::future::block_on;

use crate::bus::{self, Bus};
use crate::demo::{self, Demo};
use crate::reactor::EpollSet;
use crate::shard::{Shard, ShardId, Shared};

/// The admin token of the fuzzing shard (seeds send it).
pub const ADMIN_TOKEN: &str = "fuzz-token";

/// The key the routers' `--demo` signs its tokens with.
const DEMO_KEY: [u8; demo::KEY_BYTES] = *b"fuzz-demo-key-0123456789abcdef01";

/// Chunk lengths cutting `len` bytes at points chosen by `seed`: mostly
/// 1-16 bytes (cutting headers and UTF-8 sequences), sometimes up to 4 KiB.
fn cuts(seed: u8, len: usize) -> Vec<usize> {
    let mut state = u32::from(seed).wrapping_mul(0x9E37_79B9) | 1;
    let mut out = Vec::new();
    let mut left = len;
    while left > 0 {
        // xorshift32: the same seed always gives the same cuts.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let span = if state % 8 == 0 { 4096 } else { 16 };
        let n = (1 + (state >> 3) as usize % span).min(left);
        out.push(n);
        left -= n;
    }
    out
}

/// `len` bytes in chunks of at most `size` (how a socket read delivers them).
fn whole_cuts(len: usize, size: usize) -> Vec<usize> {
    let size = size.max(1);
    (0..len)
        .step_by(size)
        .map(|at| size.min(len - at))
        .collect()
}

thread_local! {
    /// What the routers answer from: one shard, no bus links, never shut
    /// down, with [`ADMIN_TOKEN`]. Built once per fuzzing thread.
    static SHARD: Rc<Shard> = one_shard();
}

fn one_shard() -> Rc<Shard> {
    let args = [
        "corecast",
        "--shards",
        "1",
        "--admin-token",
        ADMIN_TOKEN,
        "--demo",
    ];
    let config = crate::Config::try_parse_from(args).expect("fixed flags parse");
    let resolved = config.resolve(&[0], 1024).expect("one shard on CPU 0");
    let end = bus::mesh(1, 1).pop().expect("a one-shard mesh has one end");
    // One shard has no links to connect, so this spawns no glommio task and
    // completes on its first poll, with no executor.
    let (bus, _) = block_on(Bus::connect(ShardId(0), end));
    let epoll = EpollSet::new().expect("epoll_create1");
    // The demo's files and tokens, but no verifier: /ws tokens are
    // refused as on a server without keys.
    let shared = Shared {
        n_shards: 1,
        demo: Some(Demo::new(&DEMO_KEY)),
        ..Shared::default()
    };
    let shard = Shard::new(
        ShardId(0),
        Arc::new(resolved),
        Arc::new(shared),
        Rc::new(bus),
        epoll,
    );
    Rc::new(shard)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `check` on every file of fuzz/corpus/TARGET (the seeds) and
    /// fuzz/regressions/TARGET (crash reproducers), naming each on stderr so
    /// a failure says which file.
    fn replay(target: &str, check: fn(&[u8])) {
        let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut n_files = 0;
        for dir in ["corpus", "regressions"] {
            // A target has a regressions folder only once it found something.
            let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("readable directory").path();
                eprintln!("replaying {}", path.display());
                check(&std::fs::read(&path).expect("readable file"));
                n_files += 1;
            }
        }
        assert!(n_files > 0, "no seeds for {target}");
    }

    #[test]
    fn ws_decoder_seeds_and_regressions_hold() {
        replay("ws_decoder", check_ws_decoder);
    }

    #[test]
    fn http_head_seeds_and_regressions_hold() {
        replay("http_head", check_http_head);
    }

    #[test]
    fn ws_json_seeds_and_regressions_hold() {
        replay("ws_json", check_ws_json);
    }

    #[test]
    fn admin_request_seeds_and_regressions_hold() {
        replay("admin_request", check_admin_request);
    }

    #[test]
    fn config_file_seeds_and_regressions_hold() {
        replay("config_file", check_config_file);
    }

    #[test]
    fn jwt_token_seeds_and_regressions_hold() {
        replay("jwt_token", check_jwt_token);
    }

    #[test]
    fn resp_reply_seeds_and_regressions_hold() {
        replay("resp_reply", check_resp_reply);
    }

    #[test]
    fn deflate_offer_seeds_and_regressions_hold() {
        replay("deflate_offer", check_deflate_offer);
    }

    #[test]
    fn inflate_seeds_and_regressions_hold() {
        replay("inflate", check_inflate);
    }

    #[test]
    fn forwarded_seeds_and_regressions_hold() {
        replay("forwarded", check_forwarded);
    }

    #[test]
    fn msgpack_request_seeds_and_regressions_hold() {
        replay("msgpack_request", check_msgpack_request);
    }

    #[test]
    fn redis_message_seeds_and_regressions_hold() {
        replay("redis_message", check_redis_message);
    }

    #[test]
    fn centrifugo_json_seeds_and_regressions_hold() {
        replay("centrifugo_json", check_centrifugo_json);
    }

    #[test]
    fn centrifugo_protobuf_seeds_and_regressions_hold() {
        replay("centrifugo_protobuf", check_centrifugo_protobuf);
    }
}
