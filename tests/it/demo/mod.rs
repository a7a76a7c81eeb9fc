//! `--demo`: the chat page's files and tokens on the public port (off by
//! default), the built-in `chat` namespace, the flags it refuses to run
//! beside; `page.rs` runs the page itself in headless Chromium.

mod page;

use serde_json::json;

use crate::auth::{ask, config_file, ws_with_token, SECRET};
use crate::harness::{get, startup_error_line, TestServer};

/// The committed page files, as the binary embeds them.
const PAGE: &str = include_str!("../../../demo/index.html");
const APP: &str = include_str!("../../../demo/app.js");
const CSS: &str = include_str!("../../../demo/style.css");
const SDK: &str = include_str!("../../../demo/centrifuge.js");

fn demo_server() -> TestServer {
    TestServer::start(&["--demo", "--shards", "2"])
}

/// A token from the server's `/demo/token` for `user`.
fn demo_token(server: &TestServer, user: &str) -> String {
    let r = get(&server.addr(), &format!("/demo/token?user={user}"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    let body = r.json();
    assert_eq!(body["user"], user, "{body}");
    body["token"].as_str().expect("a token").to_string()
}

#[test]
fn without_demo_there_is_no_demo() {
    let server = TestServer::start(&["--shards", "1"]);
    for path in ["/demo", "/demo/", "/demo/app.js", "/demo/token?user=alice"] {
        let r = get(&server.addr(), path);
        assert_eq!(r.status, 404, "{path}: {r:?}");
        assert!(!r.body.contains("the demo"), "{path}: {r:?}");
    }
}

#[test]
fn demo_serves_the_page_files_with_their_types() {
    let server = demo_server();
    let addr = server.addr();
    for (path, content_type, body) in [
        ("/demo/", "text/html; charset=utf-8", PAGE),
        ("/demo/index.html", "text/html; charset=utf-8", PAGE),
        ("/demo/app.js", "text/javascript; charset=utf-8", APP),
        ("/demo/style.css", "text/css; charset=utf-8", CSS),
        ("/demo/centrifuge.js", "text/javascript; charset=utf-8", SDK),
    ] {
        let r = get(&addr, path);
        assert_eq!(r.status, 200, "{path}: {}", r.head);
        assert_eq!(r.header("content-type").as_deref(), Some(content_type));
        assert_eq!(
            r.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert!(r.body == body, "{path}: the body is not the committed file");
    }
    let csp = get(&addr, "/demo/").header("content-security-policy");
    assert!(csp.is_some_and(|p| p.contains("default-src 'self'")));
    let moved = get(&addr, "/demo");
    assert_eq!(moved.status, 301, "{moved:?}");
    assert_eq!(moved.header("location").as_deref(), Some("/demo/"));
    assert_eq!(get(&addr, "/demo/missing.js").status, 404);
    assert_eq!(get(&addr, "/demo/../Cargo.toml").status, 404);
    let posted = crate::harness::post(&addr, "/demo/token?user=alice", "");
    assert_eq!(posted.status, 405, "{posted:?}");
    // The endpoints are unchanged.
    assert_eq!(get(&addr, "/health").status, 200);
    assert_eq!(get(&addr, "/nope").status, 404);
}

#[test]
fn demo_tokens_sign_in_and_bad_names_are_refused() {
    let server = demo_server();
    let (_alice, hello) = ws_with_token(&server, &demo_token(&server, "alice"));
    assert_eq!(hello["user"], "alice", "{hello}");
    for query in ["", "?user=", "?user=a%20b", "?user=%23alice", "?name=x"] {
        let r = get(&server.addr(), &format!("/demo/token{query}"));
        assert_eq!(r.status, 400, "{query}: {r:?}");
        assert!(r.json()["message"].as_str().unwrap().contains("?user=NAME"));
    }
    let long = "n".repeat(33);
    assert_eq!(
        get(&server.addr(), &format!("/demo/token?user={long}")).status,
        400
    );
    // A token signed with another key (here the one the auth tests use) is
    // refused: the demo's key is its own.
    let foreign = crate::auth::token_for("mallory");
    let (status, _) = crate::auth::upgrade_answer(&server, &format!("/ws?token={foreign}"), "");
    assert_eq!(status, 401);
}

#[test]
fn each_start_makes_a_new_key() {
    let first = demo_server();
    let token = demo_token(&first, "alice");
    let second = demo_server();
    let (status, body) = crate::auth::upgrade_answer(&second, &format!("/ws?token={token}"), "");
    assert_eq!(status, 401, "{body}");
}

#[test]
fn the_chat_namespace_has_presence_join_leave_and_history_for_users_only() {
    let server = demo_server();
    let joined = |c: &mut crate::harness::Client, user: &str| {
        let join = c.recv_json();
        assert_eq!(
            (&join["type"], &join["user"]),
            (&json!("join"), &json!(user)),
            "{join}"
        );
    };
    let (mut alice, _) = ws_with_token(&server, &demo_token(&server, "alice"));
    alice.subscribe("chat:lobby");
    joined(&mut alice, "alice");
    let (mut bob, _) = ws_with_token(&server, &demo_token(&server, "bob"));
    bob.subscribe("chat:lobby");
    joined(&mut bob, "bob");
    joined(&mut alice, "bob");
    let presence = ask(
        &mut alice,
        json!({"type": "presence", "channel": "chat:lobby"}),
    );
    assert_eq!(
        presence["clients"].as_array().map(Vec::len),
        Some(2),
        "{presence}"
    );
    let own = ask(
        &mut bob,
        json!({"type": "publish", "channel": "chat:lobby", "data": {"text": "hi"}, "id": 1}),
    );
    assert_eq!(own["offset"], 1, "history numbers the publication: {own}");
    assert_eq!(bob.recv_json()["type"], "published");
    // Anonymous connections may not use it.
    let (mut anonymous, _) = server.ws_client();
    let refused = ask(
        &mut anonymous,
        json!({"type": "subscribe", "channel": "chat:lobby"}),
    );
    assert_eq!(refused["code"], "PERMISSION_DENIED", "{refused}");
    // Other prefixes keep the default options, as without --demo.
    anonymous.subscribe("news:today");
}

#[test]
fn a_chat_namespace_in_the_file_wins_over_the_built_in_one() {
    let file = config_file("demo = true\n[namespaces.chat]\npresence = false\n");
    let server = TestServer::start(&["--shards", "1", "--config", file.to_str().unwrap()]);
    let (mut alice, _) = ws_with_token(&server, &demo_token(&server, "alice"));
    alice.subscribe("chat:lobby");
    let reply = ask(
        &mut alice,
        json!({"type": "presence", "channel": "chat:lobby"}),
    );
    assert_eq!(reply["code"], "PRESENCE_DISABLED", "{reply}");
}

#[test]
fn demo_refuses_to_run_beside_a_real_token_key() {
    let key = crate::auth::key_path("ec256.pub.pem");
    for extra in [
        ["--jwt-hmac-secret", SECRET],
        ["--jwt-public-key", key.as_str()],
    ] {
        let mut args = vec!["--demo", "--shards", "1"];
        args.extend_from_slice(&extra);
        let (status, log) = match TestServer::try_start(&args) {
            Ok(_) => panic!("--demo started with {}", extra[0]),
            Err(failure) => failure,
        };
        assert_eq!(status.and_then(|s| s.code()), Some(1), "{log}");
        let line = startup_error_line(&log);
        assert!(line.contains("--demo cannot be combined"), "{line}");
    }
}
