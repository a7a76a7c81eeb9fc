//! The demo page itself, in real headless Chromium (Debian's, driven by
//! playwright-core from tests/browser/, both installed by scripts/deps.sh),
//! against a real `corecast --demo`; and the check that the SDK file the
//! binary serves is the pinned npm package's.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::SDK;
use crate::harness::TestServer;

/// Where chat.mjs and its npm packages live (deps.sh runs npm ci there).
const BROWSER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
/// Debian's Chromium (the `chromium` package).
const CHROMIUM: &str = "/usr/bin/chromium";
/// The whole browser run's bound (it takes a few seconds; chat.mjs bounds
/// itself at 90 s, so this only catches a node that never exits).
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Panics naming what scripts/deps.sh installs, when it is missing.
fn require_browser_tools() {
    let installed = [
        (CHROMIUM.to_string(), "Debian's chromium"),
        (
            format!("{BROWSER_DIR}/node_modules/playwright-core/package.json"),
            "tests/browser's npm packages",
        ),
    ];
    for (path, what) in installed {
        assert!(
            Path::new(&path).exists(),
            "{what} is not installed ({path} is missing): run scripts/deps.sh"
        );
    }
}

#[test]
fn two_browsers_chat_and_recover_after_going_offline() {
    require_browser_tools();
    let server = TestServer::start(&["--demo", "--shards", "2"]);
    let mut node = Command::new("node");
    node.current_dir(BROWSER_DIR)
        .arg("chat.mjs")
        .arg(format!("http://{}", server.addr()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // scripts/demo-screenshot.sh sets this to retake docs/demo.png.
    if let Ok(path) = std::env::var("DEMO_SCREENSHOT") {
        node.arg("--screenshot").arg(path);
    }
    let (status, output) = run_bounded(node, RUN_LIMIT);
    assert!(
        status == Some(0) && output.contains(", 0 failed"),
        "chat.mjs exited {status:?}:\n{output}\n--- server log ---\n{}",
        server.log_text()
    );
    for check in [
        "each sees the other in presence",
        "bob sees her leave",
        "recovers the 3 missed messages",
        "exactly once, in order",
        "gets the history",
        "see her leave",
        "1 missed message recovered",
    ] {
        assert!(output.contains(check), "no {check:?} in:\n{output}");
    }
}

#[test]
fn the_served_sdk_is_the_locked_npm_package_build() {
    let package = format!("{BROWSER_DIR}/node_modules/centrifuge");
    let installed = std::fs::read_to_string(format!("{package}/dist/centrifuge.js"))
        .unwrap_or_else(|e| panic!("{package}/dist/centrifuge.js: {e}: run scripts/deps.sh"));
    // The lockfile's pin is what npm ci installed (deps.sh stamps it).
    let lock = std::fs::read_to_string(format!("{BROWSER_DIR}/package-lock.json")).unwrap();
    let lock: serde_json::Value = serde_json::from_str(&lock).expect("lockfile is JSON");
    let meta = std::fs::read_to_string(format!("{package}/package.json")).unwrap();
    let meta: serde_json::Value = serde_json::from_str(&meta).expect("package.json is JSON");
    let locked = lock["packages"]["node_modules/centrifuge"]["version"]
        .as_str()
        .expect("the lockfile pins centrifuge");
    assert_eq!(
        meta["version"], locked,
        "installed centrifuge differs from the lockfile: run scripts/deps.sh"
    );
    assert!(
        SDK == installed,
        "demo/centrifuge.js is not centrifuge {locked}'s dist/centrifuge.js: run scripts/demo-sdk.sh"
    );
}

/// Runs `cmd` to its end or `limit` (then kills it); its exit code and its
/// stdout followed by its stderr.
fn run_bounded(mut cmd: Command, limit: Duration) -> (Option<i32>, String) {
    let mut child = cmd
        .spawn()
        .expect("spawn node (scripts/deps.sh installs it)");
    let pid = child.id();
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    // stderr on its own thread, so neither pipe can fill while the other
    // is read.
    let errors = std::thread::spawn(move || {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        err
    });
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let err = errors.join().unwrap_or_default();
        let status = child.wait().ok().and_then(|s| s.code());
        let _ = tx.send((status, format!("{out}{err}")));
    });
    match rx.recv_timeout(limit) {
        Ok(done) => done,
        Err(_) => {
            // SAFETY: kill(2) on our own child's pid; no memory involved.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            let (_, output) = rx.recv().unwrap_or_default();
            (None, format!("killed after {limit:?}\n{output}"))
        }
    }
}
