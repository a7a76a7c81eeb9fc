//! Delivery to one user wherever it is connected: the personal channel
//! `#<user>` (automatic for every authenticated connection), and the admin
//! API's `/api/user/send` and `/api/user/disconnect`.

use serde_json::{json, Value};

use super::*;
use crate::harness::{post, Client, TestServer};

/// Opens connections for `user` until one is on each shard.
fn user_on_both_shards(server: &TestServer, user: &str) -> Vec<Client> {
    let mut clients = Vec::new();
    let mut seen = [false; 2];
    for _ in 0..64 {
        let (client, hello) = ws_with_token(server, &token_for(user));
        seen[hello["shard"].as_u64().unwrap() as usize] = true;
        clients.push(client);
        if seen.iter().all(|s| *s) {
            return clients;
        }
    }
    panic!("64 connections of {user} never reached both shards");
}

#[test]
fn user_send_reaches_every_connection_of_the_user_on_both_shards() {
    let server = auth_server(&["--shards", "2"]);
    let mut alice = user_on_both_shards(&server, "alice");
    let (mut bob, _) = ws_with_token(&server, &token_for("bob"));
    let r = post(
        server.admin_addr(),
        "/api/user/send",
        r#"{"user":"alice","data":{"n":1}}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["shards"], 2, "{r:?}");
    assert_eq!(r.json()["connections"], alice.len(), "{r:?}");
    for c in &mut alice {
        assert_eq!(
            c.recv_json(),
            json!({"type": "message", "channel": "#alice", "data": {"n": 1}})
        );
    }
    bob.assert_heartbeat_next();
    // Nobody by that name: 0, not an error.
    let r = post(
        server.admin_addr(),
        "/api/user/send",
        r#"{"user":"zed","data":1}"#,
    );
    assert_eq!(r.json()["connections"], 0, "{r:?}");
    let r = post(server.admin_addr(), "/api/user/send", r#"{"data":1}"#);
    assert_eq!(r.status, 400, "{r:?}");
}

#[test]
fn a_client_publish_to_a_personal_channel_reaches_that_user_everywhere() {
    let server = auth_server(&["--shards", "2"]);
    let mut alice = user_on_both_shards(&server, "alice");
    let (mut bob, _) = ws_with_token(&server, &token_for("bob"));
    bob.send_json(&json!({"type": "publish", "channel": "#alice", "data": "psst", "id": 1}));
    assert_eq!(bob.recv_json()["type"], "published");
    for c in &mut alice {
        let m: Value = c.recv_json();
        assert_eq!(m["channel"], "#alice");
        assert_eq!(m["data"], "psst");
    }
}

#[test]
fn user_disconnect_closes_all_of_the_users_connections_with_4000() {
    let server = auth_server(&["--shards", "2"]);
    let mut alice = user_on_both_shards(&server, "alice");
    let (mut bob, _) = ws_with_token(&server, &token_for("bob"));
    let r = post(
        server.admin_addr(),
        "/api/user/disconnect",
        r#"{"user":"alice"}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["disconnected"], alice.len(), "{r:?}");
    for c in &mut alice {
        assert_eq!(c.expect_close(), 4000);
    }
    bob.assert_heartbeat_next();
}

#[test]
fn a_user_whose_connections_all_left_gets_nothing_and_comes_back_clean() {
    let server = auth_server(&[]);
    let (mut first, _) = ws_with_token(&server, &token_for("dora"));
    first.ws.close(None).unwrap();
    while first.ws.read().is_ok() {}
    server
        .wait_for_log("closed conn=", crate::harness::WAIT)
        .expect("the close is logged");
    let r = post(
        server.admin_addr(),
        "/api/user/send",
        r#"{"user":"dora","data":1}"#,
    );
    assert_eq!(r.json()["connections"], 0, "{r:?}");
    let (mut again, _) = ws_with_token(&server, &token_for("dora"));
    let r = post(
        server.admin_addr(),
        "/api/user/send",
        r#"{"user":"dora","data":2}"#,
    );
    assert_eq!(r.json()["connections"], 1, "{r:?}");
    assert_eq!(again.recv_json()["data"], 2);
}
