//! The server API under /api/: publish, broadcast, channels, stats, disconnect.

use serde_json::json;
use tungstenite::Message;

use crate::harness::{clients_on_both_shards, get, post, Client, Pool, TestServer, WAIT};

// ---- the server API ----

#[test]
fn api_publish_reaches_subscribers_on_every_shard_byte_for_byte() {
    let server = TestServer::start(&["--shards", "2"]);
    let mut pool = Pool::new(&server);
    let mut subs = [pool.on_shard(0), pool.on_shard(1)];
    for sub in &mut subs {
        sub.subscribe("c");
    }
    let mut bystander = pool.on_shard(1);
    bystander.subscribe("elsewhere");

    for (body, frame) in [
        (
            r#"{"channel":"c","data":{"a":1}}"#,
            r#"{"type":"message","channel":"c","data":{"a":1}}"#,
        ),
        (
            r#"{"channel":"c","data":null}"#,
            r#"{"type":"message","channel":"c","data":null}"#,
        ),
        (
            r#"{"data": [1, "two", {"b" : true}], "channel":"c"}"#,
            r#"{"type":"message","channel":"c","data":[1, "two", {"b" : true}]}"#,
        ),
    ] {
        let response = post(server.admin_addr(), "/api/publish", body);
        assert_eq!(response.status, 200, "{body} -> {}", response.body);
        assert_eq!(response.json(), json!({"channel":"c","shards":2}), "{body}");
        for (shard, sub) in subs.iter_mut().enumerate() {
            assert_eq!(sub.recv_text(), frame, "subscriber on shard {shard}");
        }
    }
    bystander.assert_heartbeat_next();

    let nobody = post(
        server.admin_addr(),
        "/api/publish",
        r#"{"channel":"empty","data":1}"#,
    );
    assert_eq!(nobody.json(), json!({"channel":"empty","shards":0}));
}

#[test]
fn api_publish_rejects_bad_bodies_with_400_and_delivers_nothing() {
    let server = TestServer::start(&["--shards", "1"]);
    let (mut sub, _) = server.ws_client();
    sub.subscribe("c");
    let long = "x".repeat(256);
    for body in [
        "not json".to_string(),
        r#"["c", 1]"#.to_string(),
        r#"{"data":1}"#.to_string(),
        r#"{"channel":"","data":1}"#.to_string(),
        format!(r#"{{"channel":"{long}","data":1}}"#),
        r#"{"channel":"c"}"#.to_string(),
        r#"{"channel":7,"data":1}"#.to_string(),
    ] {
        let response = post(server.admin_addr(), "/api/publish", &body);
        assert_eq!(response.status, 400, "{body} -> {}", response.body);
        let error = response.json();
        assert_eq!(error["status"], 400, "{error}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{error}"
        );
    }
    sub.assert_heartbeat_next();
    let at_limit = format!(r#"{{"channel":"{}","data":1}}"#, "x".repeat(255));
    assert_eq!(
        post(server.admin_addr(), "/api/publish", &at_limit).status,
        200
    );
}

#[test]
fn api_broadcast_reaches_every_ws_client_on_every_shard_but_no_echo_client() {
    let server = TestServer::start(&["--shards", "2"]);
    let mut ws_clients = clients_on_both_shards(&server, 2);
    let mut echoes = echo_clients_on_both_shards(&server);

    let response = post(server.admin_addr(), "/api/broadcast", r#"{"data":"hi"}"#);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json(), json!({"shards":2}));
    for (shard, client, _) in &mut ws_clients {
        assert_eq!(
            client.recv_text(),
            r#"{"type":"broadcast","data":"hi"}"#,
            "/ws client on shard {shard}"
        );
    }
    // Every shard has handled the broadcast (its /ws clients got it), so an
    // echo reply arriving first proves nothing was queued to /echo clients.
    for (i, echo) in echoes.iter_mut().enumerate() {
        echo.send_text("after");
        assert_eq!(echo.recv(), Message::text("after"), "echo client {i}");
    }
    let missing = post(server.admin_addr(), "/api/broadcast", r#"{"message":"hi"}"#);
    assert_eq!(missing.status, 400, "{}", missing.body);
}

#[test]
fn api_channels_lists_subscriber_counts_merged_across_shards() {
    let server = TestServer::start(&["--shards", "2"]);
    let mut pool = Pool::new(&server);
    let mut a = [pool.on_shard(0), pool.on_shard(0), pool.on_shard(1)];
    for c in &mut a {
        c.subscribe("room");
    }
    let mut solo = pool.on_shard(1);
    solo.subscribe("solo");
    solo.subscribe("room");

    let response = get(server.admin_addr(), "/api/channels");
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.json(),
        json!({"channels":[
            {"channel":"room","subscribers":4},
            {"channel":"solo","subscribers":1},
        ]})
    );
    solo.send_json(&json!({"type":"unsubscribe","channel":"solo"}));
    assert_eq!(solo.recv_json()["type"], "unsubscribed");
    assert_eq!(
        get(server.admin_addr(), "/api/channels").json(),
        json!({"channels":[{"channel":"room","subscribers":4}]})
    );
}

#[test]
fn api_stats_reports_memory_and_per_shard_connections_and_messages() {
    let server = TestServer::start(&["--shards", "2"]);
    let mut clients = clients_on_both_shards(&server, 3);
    let mut per_shard = [0u64; 2];
    let mut received = [0u64; 2];
    for (shard, client, _) in &mut clients {
        per_shard[*shard] += 1;
        // Shard 1's clients send two messages each, so the shards differ.
        for _ in 0..=*shard {
            client.assert_heartbeat_next();
            received[*shard] += 1;
        }
    }
    let response = get(server.admin_addr(), "/api/stats");
    assert_eq!(response.status, 200, "{}", response.body);
    let stats = response.json();
    assert!(stats["rss_bytes"].as_u64() > Some(0), "{stats}");
    assert_eq!(stats["connections"], clients.len(), "{stats}");
    let shards = stats["shards"].as_array().expect("shards array");
    assert_eq!(shards.len(), 2, "{stats}");
    for (i, s) in shards.iter().enumerate() {
        assert_eq!(s["shard"], i, "{s}");
        assert_eq!(s["connections"], per_shard[i], "{s}");
        assert_eq!(s["messages_received"], received[i], "{s}");
        assert_eq!(s["messages_published"], 0, "{s}");
        assert_eq!(s["messages_delivered"], 0, "{s}");
        assert!(s["bytes_received"].as_u64() > Some(0), "{s}");
    }
}

#[test]
fn api_disconnect_closes_that_client_with_4000_on_either_shard() {
    let server = TestServer::start(&["--shards", "2"]);
    let mut clients = clients_on_both_shards(&server, 3);
    let mut gone = Vec::new();
    for shard in [0, 1] {
        let i = clients
            .iter()
            .position(|(s, _, _)| *s == shard)
            .expect("client on shard");
        let (_, mut victim, id) = clients.remove(i);
        let body = json!({"connection_id": id}).to_string();
        let response = post(server.admin_addr(), "/api/disconnect", &body);
        assert_eq!(response.status, 200, "{}", response.body);
        assert_eq!(
            response.json(),
            json!({"connection_id": id, "disconnected": true})
        );
        let (code, reason) = victim.read_close();
        assert_eq!(
            (code, reason.as_str()),
            (4000, "disconnected by server"),
            "{id}"
        );
        victim.ws.flush().expect("answer the close");
        let needle = format!("closed conn={id} reason=disconnected");
        assert!(
            server.wait_for_log(&needle, WAIT).is_some(),
            "{}",
            server.log_text()
        );
        gone.push(id);
    }
    for (_, client, _) in &mut clients {
        client.assert_heartbeat_next();
    }
    for id in &gone {
        let again = post(
            server.admin_addr(),
            "/api/disconnect",
            &json!({"connection_id": id}).to_string(),
        );
        assert_eq!(again.status, 404, "{id} is already gone: {}", again.body);
    }
}

#[test]
fn api_disconnect_is_404_for_unknown_ids_and_400_for_malformed_ones() {
    let server = TestServer::start(&["--shards", "2"]);
    let (mut client, _) = server.ws_client();
    for (body, status) in [
        (r#"{"connection_id":"0-999999"}"#, 404),
        (r#"{"connection_id":"1-999999"}"#, 404),
        (r#"{"connection_id":"9-1"}"#, 404),
        (r#"{"connection_id":"abc"}"#, 400),
        (r#"{"connection_id":"0-x"}"#, 400),
        (r#"{"connection_id":17}"#, 400),
        (r#"{}"#, 400),
        ("nope", 400),
    ] {
        let response = post(server.admin_addr(), "/api/disconnect", body);
        assert_eq!(response.status, status, "{body} -> {}", response.body);
        assert_eq!(response.json()["status"], status, "{body}");
    }
    client.assert_heartbeat_next();
}

// ---- helpers: servers and clients ----

/// /echo clients until /api/stats shows new connections on both shards
/// (an /echo greeting does not say where it landed).
fn echo_clients_on_both_shards(server: &TestServer) -> Vec<Client> {
    let per_shard = |server: &TestServer| -> Vec<u64> {
        let stats = get(server.admin_addr(), "/api/stats").json();
        let shards = stats["shards"].as_array().expect("shards").clone();
        shards
            .iter()
            .map(|s| s["connections"].as_u64().expect("connections"))
            .collect()
    };
    let start = per_shard(server);
    let mut echoes = Vec::new();
    for _ in 0..64 {
        let mut echo = server.ws("/echo");
        // A round trip proves the server registered the connection.
        echo.send_text("hello");
        assert_eq!(echo.recv(), Message::text("hello"));
        echoes.push(echo);
        let now = per_shard(server);
        if echoes.len() >= 2 && now.iter().zip(&start).all(|(n, s)| n > s) {
            return echoes;
        }
    }
    panic!("64 /echo connections never reached both shards");
}
