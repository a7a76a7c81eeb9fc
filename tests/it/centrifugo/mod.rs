//! /connection/websocket: Centrifugo's client protocol v2. `sdk.rs` runs
//! the real `centrifuge` SDK (npm, pinned in tests/sdk/package-lock.json,
//! installed by scripts/deps.sh) in Node.js against the server, in JSON and
//! in Protobuf; `protocol.rs` checks the wire directly (codes, pings,
//! encodings, one conversion per encoding per publish).

mod protocol;
mod sdk;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::auth::{config_file, SECRET};
use crate::harness::TestServer;

/// `chat:` has presence and join/leave; `h:` keeps history (and presence).
const NAMESPACES: &str = r#"
[namespaces.default]
[namespaces.chat]
presence = true
join_leave = true
[namespaces.h]
history_size = 1000
history_ttl = "5m"
"#;

/// A server with the test secret, the namespaces above and `args` (two
/// shards unless `args` says otherwise).
pub fn server(args: &[&str]) -> TestServer {
    let file = config_file(NAMESPACES);
    let shards = if args.contains(&"--shards") {
        &[][..]
    } else {
        &["--shards", "2"][..]
    };
    let mut all = shards.to_vec();
    all.extend([
        "--jwt-hmac-secret",
        SECRET,
        "--config",
        file.to_str().unwrap(),
    ]);
    all.extend_from_slice(args);
    TestServer::start(&all)
}

/// The SDK package directory; panics with the fix when it is not installed.
fn sdk_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk");
    assert!(
        dir.join("node_modules/centrifuge/package.json").exists(),
        "the centrifuge SDK is not installed: run scripts/deps.sh (npm ci in tests/sdk)"
    );
    dir
}

/// Runs `node tests/sdk/SCENARIO.mjs ws://ADDR/connection/websocket
/// ENCODING SECRET EXTRA...` (each scenario bounds itself with a deadline)
/// and returns its JSON lines; panics with its output when it fails.
pub fn scenario(server: &TestServer, name: &str, encoding: &str, extra: &[&str]) -> Vec<Value> {
    let dir = sdk_dir();
    let url = format!("ws://{}/connection/websocket", server.addr());
    let output = Command::new("node")
        .current_dir(&dir)
        .arg(format!("{name}.mjs"))
        .args([url.as_str(), encoding, SECRET])
        .args(extra)
        .output()
        .expect("run node (scripts/deps.sh installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{name} ({encoding}) failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The line of `lines` for `step`.
pub fn step<'a>(lines: &'a [Value], step: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["step"] == step)
        .unwrap_or_else(|| panic!("no {step} line in {lines:?}"))
}
