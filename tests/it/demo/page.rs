//! The check that the SDK file the binary serves is the pinned npm
//! package's (tests/browser/, installed by scripts/deps.sh).

use super::SDK;

/// The npm packages' directory.
const BROWSER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");

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
