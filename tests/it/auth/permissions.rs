//! Namespace rules answered with PERMISSION_DENIED (never a close):
//! private channels, server-only publishing, anonymous access, another
//! user's personal channel, and unknown namespaces.

use serde_json::json;

use super::*;
use crate::harness::TestServer;

const NAMESPACES: &str = r#"
[namespaces.default]
[namespaces.secret]
private = true
[namespaces.news]
client_publish = false
[namespaces.members]
anonymous = false
"#;

fn server() -> TestServer {
    let file = config_file(NAMESPACES);
    auth_server(&["--config", file.to_str().unwrap()])
}

fn denied(reply: &serde_json::Value, code: &str) {
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], code, "{reply}");
}

#[test]
fn private_channels_need_a_grant_from_the_token() {
    let server = server();
    let token = hs256(json!({
        "sub": "alice", "exp": now() + 600,
        "channels": ["secret:plans"]
    }));
    let (mut alice, _) = ws_with_token(&server, &token);
    alice.subscribe("secret:plans");
    let reply = ask(
        &mut alice,
        json!({"type": "subscribe", "channel": "secret:other"}),
    );
    denied(&reply, "PERMISSION_DENIED");
    let (mut bob, _) = ws_with_token(&server, &token_for("bob"));
    denied(
        &ask(
            &mut bob,
            json!({"type": "subscribe", "channel": "secret:plans", "id": 3}),
        ),
        "PERMISSION_DENIED",
    );
    // A denial is an answer, not a close.
    bob.assert_heartbeat_next();
    // `ns:*` grants the whole namespace.
    let all = hs256(json!({"sub": "carol", "exp": now() + 600, "channels": ["secret:*"]}));
    let (mut carol, _) = ws_with_token(&server, &all);
    carol.subscribe("secret:anything");
    carol.subscribe("secret:plans");
}

#[test]
fn server_only_namespaces_refuse_client_publishes() {
    let server = server();
    let (mut c, _) = ws_with_token(&server, &token_for("alice"));
    c.subscribe("news:today");
    let reply = ask(
        &mut c,
        json!({"type": "publish", "channel": "news:today", "data": 1}),
    );
    denied(&reply, "PERMISSION_DENIED");
    // The server API still publishes there.
    let r = crate::harness::post(
        server.admin_addr(),
        "/api/publish",
        r#"{"channel":"news:today","data":"hi"}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(c.recv_json()["data"], "hi");
}

#[test]
fn anonymous_connections_are_kept_out_where_the_namespace_says() {
    let server = server();
    let (mut anon, _) = server.ws_client();
    for request in [
        json!({"type": "subscribe", "channel": "members:lobby"}),
        json!({"type": "publish", "channel": "members:lobby", "data": 1}),
    ] {
        denied(&ask(&mut anon, request), "PERMISSION_DENIED");
    }
    anon.subscribe("open");
    let (mut member, _) = ws_with_token(&server, &token_for("m"));
    member.subscribe("members:lobby");
}

#[test]
fn personal_channels_belong_to_their_user() {
    let server = server();
    let (mut alice, _) = ws_with_token(&server, &token_for("alice"));
    denied(
        &ask(&mut alice, json!({"type": "subscribe", "channel": "#bob"})),
        "PERMISSION_DENIED",
    );
    alice.subscribe("#alice");
    let (mut anon, _) = server.ws_client();
    denied(
        &ask(&mut anon, json!({"type": "subscribe", "channel": "#alice"})),
        "PERMISSION_DENIED",
    );
}

#[test]
fn unknown_namespaces_are_an_error_once_namespaces_are_configured() {
    let server = server();
    let (mut c, _) = ws_with_token(&server, &token_for("alice"));
    denied(
        &ask(&mut c, json!({"type": "subscribe", "channel": "nope:x"})),
        "UNKNOWN_NAMESPACE",
    );
    // Without a config, a colon is just part of a channel name.
    let plain = auth_server(&[]);
    let (mut c, _) = plain.ws_client();
    c.subscribe("nope:x");
}
