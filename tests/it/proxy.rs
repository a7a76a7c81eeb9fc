//! Behind a load balancer: corecast processes behind the real nginx running
//! docs/examples/nginx.conf, and `--trusted-proxies` deciding which client
//! address a handshake is logged under.

use serde_json::{json, Value};

use crate::harness::{
    post, servers_behind_nginx, upgrade_request, Client, HttpConn, Nginx, TestServer, WAIT,
};

/// The address a test client claims in its own `X-Forwarded-For`
/// (TEST-NET-3, RFC 5737: never a real peer here).
const CLAIMED: &str = "203.0.113.7";

#[test]
fn clients_through_nginx_are_spread_over_processes_and_pubsub_works() {
    let (nginx, servers) = servers_behind_nginx(3, &["--shards", "1"]);
    let mut clients: Vec<Client> = (0..6).map(|_| greeted(&nginx)).collect();
    // Every greeting arrived, so every connection is counted by now.
    let counts = connections(&servers);
    assert_eq!(counts.iter().sum::<u64>(), 6, "{counts:?}");
    assert!(
        counts.iter().filter(|&&n| n > 0).count() > 1,
        "nginx put every connection on one process: {counts:?}"
    );
    // Subscribing and publishing through nginx: each client hears its own
    // process's publish, and only that one.
    let homes = homes(&mut clients, &servers);
    let mut per_server = vec![0; servers.len()];
    for home in &homes {
        per_server[*home] += 1;
    }
    assert_eq!(per_server, counts, "{homes:?}");
    let c = &mut clients[0];
    c.send_json(&json!({"type":"publish","channel":"news","data":"via nginx","id":1}));
    let got: Vec<Value> = vec![c.recv_json(), c.recv_json()];
    assert_eq!(
        got,
        vec![
            json!({"type":"message","channel":"news","data":"via nginx"}),
            json!({"type":"published","channel":"news","id":1}),
        ]
    );
}

#[test]
fn least_conn_sends_new_clients_to_the_emptiest_process() {
    let (nginx, servers) = servers_behind_nginx(3, &["--shards", "1"]);
    let mut clients: Vec<Client> = (0..6).map(|_| greeted(&nginx)).collect();
    let homes = homes(&mut clients, &servers);
    let before = connections(&servers);
    let emptied = (0..servers.len())
        .max_by_key(|&i| before[i])
        .expect("three servers");
    assert!(before[emptied] >= 2, "{before:?}");
    // Close every client of one process, each until nginx closed its side
    // too: nginx releases the upstream peer before that, so its counts are
    // current when the next client connects.
    for (c, _) in clients
        .iter_mut()
        .zip(&homes)
        .filter(|(_, &home)| home == emptied)
    {
        c.close_until_eof();
    }
    // Round robin would spread these over the three; least_conn sends all
    // of them to the process that has none.
    let _again: Vec<Client> = (0..before[emptied]).map(|_| greeted(&nginx)).collect();
    assert_eq!(connections(&servers), before);
    assert!(
        servers[emptied]
            .wait_for_log_count("upgraded client=", 2 * before[emptied] as usize, WAIT)
            .is_some(),
        "{}",
        servers[emptied].log_text()
    );
}

#[test]
fn a_trusted_proxy_forwards_the_client_address_into_the_log() {
    let (nginx, servers) = servers_behind_nginx(
        1,
        &[
            "--trusted-proxies",
            "127.0.0.1",
            "--allowed-origins",
            "https://app.test",
        ],
    );
    let server = &servers[0];
    assert_eq!(refused_origin(&nginx.addr()), 403);
    let line = server
        .wait_for_log("http response status=403", WAIT)
        .expect("refusal logged");
    assert!(
        line.contains(&format!("client={CLAIMED} via=127.0.0.1")),
        "{line}"
    );
    // An accepted upgrade names the forwarded client too.
    let mut c = Client::connect_with_headers(&nginx.addr(), "/ws", &[("X-Forwarded-For", CLAIMED)]);
    c.recv_json();
    let line = server
        .wait_for_log("upgraded client=", WAIT)
        .expect("upgrade logged");
    assert!(
        line.contains(&format!("upgraded client={CLAIMED} via=127.0.0.1 conn=")),
        "{line}"
    );
}

#[test]
fn without_trusted_proxies_the_header_through_nginx_is_ignored() {
    let server = TestServer::start(&["--allowed-origins", "https://app.test"]);
    let nginx = Nginx::start(&[server.port]);
    assert_eq!(refused_origin(&nginx.addr()), 403);
    let line = server
        .wait_for_log("http response status=403", WAIT)
        .expect("refusal logged");
    assert!(line.ends_with("client=127.0.0.1"), "{line}");
    assert!(
        !server.log_text().contains(CLAIMED),
        "{}",
        server.log_text()
    );
}

#[test]
fn a_forged_header_from_an_untrusted_peer_is_ignored() {
    let server = TestServer::start(&[
        "--trusted-proxies",
        "10.0.0.0/8,::1",
        "--allowed-origins",
        "https://app.test",
    ]);
    assert_eq!(refused_origin(&server.addr()), 403);
    let line = server
        .wait_for_log("http response status=403", WAIT)
        .expect("refusal logged");
    assert!(line.ends_with("client=127.0.0.1"), "{line}");
    let mut c = Client::connect_with_headers(
        &server.addr(),
        "/ws",
        &[("X-Forwarded-For", CLAIMED), ("X-Real-IP", CLAIMED)],
    );
    c.recv_json();
    let line = server
        .wait_for_log("upgraded client=", WAIT)
        .expect("upgrade logged");
    assert!(line.contains("upgraded client=127.0.0.1 conn="), "{line}");
    assert!(
        !server.log_text().contains(CLAIMED),
        "{}",
        server.log_text()
    );
}

#[test]
fn a_malformed_header_from_a_trusted_peer_falls_back_to_the_peer() {
    let server = TestServer::start(&["--trusted-proxies", "127.0.0.1"]);
    let mut c = Client::connect_with_headers(
        &server.addr(),
        "/ws",
        &[("X-Forwarded-For", "203.0.113.7, not-an-address")],
    );
    let hello = c.recv_json();
    assert_eq!(hello["type"], "connection_established", "{hello}");
    let line = server
        .wait_for_log("ignoring malformed", WAIT)
        .expect("debug line");
    assert!(
        line.contains("ignoring malformed X-Forwarded-For client=127.0.0.1"),
        "{line}"
    );
    let line = server
        .wait_for_log("upgraded client=", WAIT)
        .expect("upgrade logged");
    assert!(line.contains("upgraded client=127.0.0.1 conn="), "{line}");
}

#[test]
fn a_bad_trusted_proxy_entry_stops_startup_naming_it() {
    let (status, log) = TestServer::try_start(&["--trusted-proxies", "127.0.0.1,10.0.0.1/8"])
        .err()
        .expect("refused");
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("--trusted-proxies"))
        .unwrap_or_else(|| panic!("no line names the flag:\n{log}"));
    assert!(line.contains("entry \"10.0.0.1/8\""), "{line}");
}

/// A /ws client through nginx, subscribed to "news".
#[test]
fn through_nginx_three_processes_on_redis_deliver_across_processes() {
    let redis = crate::harness::RedisServer::start();
    let url = redis.url();
    let (nginx, servers) = servers_behind_nginx(3, &["--shards", "1", "--redis", &url]);
    for s in &servers {
        crate::cluster::wait_redis_up(s);
    }
    let mut clients: Vec<Client> = (0..6).map(|_| greeted(&nginx)).collect();
    let counts = connections(&servers);
    assert!(counts.iter().filter(|&&n| n > 0).count() > 1, "{counts:?}");
    // One client publishes; every client, on whichever process nginx put
    // it, gets it exactly once.
    clients[0].send_json(&json!({"type":"publish","channel":"news","data":"everyone","id":1}));
    for (i, c) in clients.iter_mut().enumerate() {
        let mut got = c.recv_json();
        if got["type"] == "published" {
            got = c.recv_json();
        }
        assert_eq!(got["data"], "everyone", "client {i}: {got}");
    }
    // An admin publish on one process reaches them all too, and nothing
    // came twice before it.
    let r = post(
        servers[2].admin_addr(),
        "/api/publish",
        r#"{"channel":"news","data":"api"}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    for (i, c) in clients.iter_mut().enumerate() {
        let mut got = c.recv_json();
        if i == 0 && got["type"] == "published" {
            got = c.recv_json();
        }
        assert_eq!(got["data"], "api", "client {i}: {got}");
    }
}

fn greeted(nginx: &Nginx) -> Client {
    let mut c = Client::connect(&nginx.addr(), "/ws", None);
    let hello = c.recv_json();
    assert_eq!(hello["type"], "connection_established", "{hello}");
    c.subscribe("news");
    c
}

/// Each server's open WebSocket count, from its /health.
fn connections(servers: &[TestServer]) -> Vec<u64> {
    servers
        .iter()
        .map(|s| s.health()["connections"].as_u64().expect("count"))
        .collect()
}

/// Which server each client (subscribed to "news") is connected to: every
/// server publishes its index on its admin API and each client reads one.
fn homes(clients: &mut [Client], servers: &[TestServer]) -> Vec<usize> {
    for (i, server) in servers.iter().enumerate() {
        let body = json!({"channel":"news","data":{"from":i}}).to_string();
        let r = post(server.admin_addr(), "/api/publish", &body);
        assert_eq!(r.status, 200, "{r:?}");
    }
    clients
        .iter_mut()
        .map(|c| {
            let msg = c.recv_json();
            assert_eq!(msg["channel"], "news", "{msg}");
            msg["data"]["from"].as_u64().expect("from") as usize
        })
        .collect()
}

/// Sends an upgrade from a disallowed origin, claiming [`CLAIMED`] in
/// `X-Forwarded-For`; returns the status.
fn refused_origin(addr: &str) -> u16 {
    let request = upgrade_request("/ws").replace(
        "\r\n\r\n",
        &format!("\r\nOrigin: https://evil.test\r\nX-Forwarded-For: {CLAIMED}\r\n\r\n"),
    );
    let mut conn = HttpConn::open(addr);
    conn.write_raw(request.as_bytes());
    conn.read_response().status
}
