//! Tokens in the upgrade URL and in `connect`: which are accepted, what a
//! refused one gets (401 at upgrade, 4001/4002 after it), expiry while
//! connected, `refresh`, and `--require-auth`.

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;

use super::*;
use crate::harness::TestServer;

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(&std::fs::read(key_path("rsa2048.pem")).unwrap()).unwrap()
}

fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_pem(&std::fs::read(key_path("ec256.pem")).unwrap()).unwrap()
}

#[test]
fn a_valid_url_token_names_the_user_in_the_greeting() {
    let server = auth_server(&[]);
    let exp = now() + 600;
    let (_client, hello) = ws_with_token(&server, &hs256(json!({"sub": "alice", "exp": exp})));
    assert_eq!(hello["user"], "alice", "{hello}");
    assert_eq!(hello["expires_at"], exp, "{hello}");
}

#[test]
fn an_anonymous_connection_has_no_user_in_the_greeting() {
    let server = auth_server(&[]);
    let (_client, hello) = server.ws_client();
    assert!(hello.get("user").is_none(), "{hello}");
}

#[test]
fn bad_url_tokens_get_401_at_upgrade() {
    let server = auth_server(&[]);
    let other_secret = EncodingKey::from_secret(b"another secret entirely").unwrap();
    let cases = [
        ("expired", hs256(json!({"sub": "a", "exp": now() - 600}))),
        (
            "bad signature",
            sign(
                Algorithm::HS256,
                &other_secret,
                json!({"sub": "a", "exp": now() + 60}),
            ),
        ),
        ("garbage", "not.a.token".to_string()),
        ("alg none", alg_none(json!({"sub": "a", "exp": now() + 60}))),
        (
            "RS256 with no public key configured",
            sign(
                Algorithm::RS256,
                &rsa_key(),
                json!({"sub": "a", "exp": now() + 60}),
            ),
        ),
    ];
    for (what, token) in cases {
        let (status, body) = upgrade_answer(&server, &format!("/ws?token={token}"), "");
        assert_eq!(status, 401, "{what}: {body}");
        let want = if what == "expired" {
            "token expired"
        } else {
            "invalid token"
        };
        assert!(body.contains(want), "{what}: {body}");
    }
}

/// `{"alg":"none"}` and an empty signature: never accepted.
fn alg_none(claims: serde_json::Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims.to_string())
    )
}

#[test]
fn rs256_and_es256_tokens_verify_against_the_public_key_and_confusion_is_refused() {
    let rsa = TestServer::start(&["--jwt-public-key", &key_path("rsa2048.pub.pem")]);
    let token = sign(
        Algorithm::RS256,
        &rsa_key(),
        json!({"sub": "r", "exp": now() + 60}),
    );
    let (_c, hello) = ws_with_token(&rsa, &token);
    assert_eq!(hello["user"], "r");
    // Algorithm confusion: HS256 signed with the public key's own bytes.
    let public_pem = std::fs::read(key_path("rsa2048.pub.pem")).unwrap();
    let confused = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(&public_pem).unwrap(),
        json!({"sub": "evil", "exp": now() + 60}),
    );
    let (status, body) = upgrade_answer(&rsa, &format!("/ws?token={confused}"), "");
    assert_eq!(status, 401, "{body}");
    let ec = TestServer::start(&["--jwt-public-key", &key_path("ec256.pub.pem")]);
    let token = sign(
        Algorithm::ES256,
        &ec_key(),
        json!({"sub": "e", "exp": now() + 60}),
    );
    let (_c, hello) = ws_with_token(&ec, &token);
    assert_eq!(hello["user"], "e");
    let (status, _) = upgrade_answer(&ec, &format!("/ws?token={}", rsa_signed()), "");
    assert_eq!(status, 401, "an RS256 token against an EC key");
}

fn rsa_signed() -> String {
    sign(
        Algorithm::RS256,
        &rsa_key(),
        json!({"sub": "x", "exp": now() + 60}),
    )
}

#[test]
fn connect_message_authenticates_and_bad_ones_close_4001_or_4002() {
    let server = auth_server(&[]);
    let (_c, reply) = ws_connect_message(&server, &token_for("bob"));
    assert_eq!(reply["type"], "connected", "{reply}");
    assert_eq!(reply["user"], "bob");
    assert_eq!(reply["id"], 1);

    let (mut c, _) = server.ws_client();
    c.send_json(&json!({"type": "connect", "token": "x.y.z"}));
    assert_eq!(c.read_close(), (4001, "invalid token".to_string()));

    let (mut c, _) = server.ws_client();
    let expired = hs256(json!({"sub": "bob", "exp": now() - 600}));
    c.send_json(&json!({"type": "connect", "token": expired}));
    assert_eq!(c.read_close(), (4002, "token expired".to_string()));
}

#[test]
fn connect_is_only_valid_as_the_first_request() {
    let server = auth_server(&[]);
    let (mut c, _) = server.ws_client();
    c.assert_heartbeat_next();
    let reply = ask(
        &mut c,
        json!({"type": "connect", "token": token_for("bob")}),
    );
    assert_eq!(reply["code"], "ALREADY_CONNECTED", "{reply}");
    let (mut c, _) = ws_with_token(&server, &token_for("bob"));
    let reply = ask(
        &mut c,
        json!({"type": "connect", "token": token_for("bob")}),
    );
    assert_eq!(reply["code"], "ALREADY_CONNECTED", "{reply}");
}

#[test]
fn a_token_without_exp_is_accepted_and_never_expires() {
    // The verifier's documented policy (docs/security.md), as Centrifugo's.
    let server = auth_server(&[]);
    let (mut c, hello) = ws_with_token(&server, &hs256(json!({"sub": "a"})));
    assert_eq!(hello["user"], "a", "{hello}");
    assert!(hello.get("expires_at").is_none(), "{hello}");
    c.subscribe("c");
}

#[test]
fn an_expiring_token_closes_the_connection_with_4002() {
    let server = auth_server(&[]);
    let (mut c, _) = ws_with_token(&server, &hs256(json!({"sub": "a", "exp": now() + 1})));
    // exp plus the verifier's leeway, then a ticker pass: well within WAIT.
    assert_eq!(c.read_close(), (4002, "token expired".to_string()));
}

#[test]
fn refresh_moves_the_expiry_and_another_users_token_changes_nothing() {
    // One shard: one ticker pass sees both connections below.
    let server = auth_server(&["--shards", "1"]);
    let short = hs256(json!({"sub": "a", "exp": now() + 1}));
    let (mut c, _) = ws_with_token(&server, &short);
    // The same token, never refreshed: its close marks when `c`'s would be.
    let (mut witness, _) = ws_with_token(&server, &short);
    let other = ask(
        &mut c,
        json!({"type": "refresh", "token": token_for("b"), "id": 1}),
    );
    assert_eq!(other["code"], "INVALID_TOKEN", "{other}");
    assert_eq!(other["id"], 1);
    let bad = ask(&mut c, json!({"type": "refresh", "token": "x.y.z"}));
    assert_eq!(bad["code"], "INVALID_TOKEN", "{bad}");
    let expired = hs256(json!({"sub": "a", "exp": now() - 600}));
    let reply = ask(&mut c, json!({"type": "refresh", "token": expired}));
    assert_eq!(reply["code"], "TOKEN_EXPIRED", "{reply}");
    let exp = now() + 3600;
    let reply = ask(
        &mut c,
        json!({"type": "refresh", "token": hs256(json!({"sub": "a", "exp": exp})), "id": 2}),
    );
    assert_eq!(
        reply,
        json!({"type": "refreshed", "expires_at": exp, "id": 2})
    );
    assert_eq!(witness.read_close().0, 4002, "the unrefreshed twin expires");
    // The witness's close came from the ticker pass that would have closed
    // `c` too (one shard, both in one slice): had it, the close frame would
    // come before the heartbeat's reply.
    c.assert_heartbeat_next();
}

#[test]
fn refresh_on_an_anonymous_connection_is_refused() {
    let server = auth_server(&[]);
    let (mut c, _) = server.ws_client();
    let reply = ask(&mut c, json!({"type": "refresh", "token": token_for("a")}));
    assert_eq!(reply["code"], "PERMISSION_DENIED", "{reply}");
}

#[test]
fn require_auth_refuses_anonymous_connections() {
    let server = auth_server(&["--require-auth", "--handshake-timeout", "1s"]);
    // A token without sub in the URL: 401.
    let anon = hs256(json!({"exp": now() + 60}));
    let (status, body) = upgrade_answer(&server, &format!("/ws?token={anon}"), "");
    assert_eq!(status, 401, "{body}");
    // No token and a first request that is not connect: 4001.
    let (mut c, _) = server.ws_client();
    c.send_json(&json!({"type": "subscribe", "channel": "c"}));
    assert_eq!(
        c.read_close(),
        (4001, "authentication required".to_string())
    );
    // No token and nothing sent: 4001 after the handshake timeout.
    let (mut c, _) = server.ws_client();
    assert_eq!(
        c.read_close(),
        (4001, "authentication required".to_string())
    );
    // connect with a user: served.
    let (mut c, reply) = ws_connect_message(&server, &token_for("u"));
    assert_eq!(reply["type"], "connected", "{reply}");
    c.subscribe("c");
    // A URL token: served.
    let (mut c, _) = ws_with_token(&server, &token_for("v"));
    c.subscribe("c");
}
