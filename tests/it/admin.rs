//! The admin listener (`--admin-addr`): /metrics (OpenMetrics), /latency
//! (.hgrm), /health, the periodic latency report, the server API under
//! /api/ (publish, broadcast, channels, stats, disconnect), its HTTP rules
//! (methods, bodies, keep-alive, bearer token), and admin-related startup
//! failures.
//!
//! Counters are read by scraping /metrics and summing over the `shard`
//! label. A scrape is answered after every shard has handled the messages
//! queued before it, so once a client has seen the effect of its traffic (a
//! reply, a delivered message, a close frame or a log line written on the
//! shard thread right before the counter moves) the next scrape shows it; no
//! test polls /metrics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tungstenite::Message;

use crate::harness::{
    clients_on_both_shards, connection_id, get, log_field, post, startup_error_line, Client,
    HttpConn, Pool, RawClient, TestServer, WAIT,
};

/// Every metric family /metrics must expose, with its OpenMetrics type.
const FAMILIES: [(&str, &str); 20] = [
    ("corecast_connections_open", "gauge"),
    ("corecast_connections_accepted", "counter"),
    ("corecast_connections_refused", "counter"),
    ("corecast_connections_closed", "counter"),
    ("corecast_handshake_failures", "counter"),
    ("corecast_messages_received", "counter"),
    ("corecast_messages_published", "counter"),
    ("corecast_messages_delivered", "counter"),
    ("corecast_bytes_received", "counter"),
    ("corecast_bytes_sent", "counter"),
    ("corecast_slow_consumer_disconnects", "counter"),
    ("corecast_protocol_errors", "counter"),
    ("corecast_subscriptions", "gauge"),
    ("corecast_channels", "gauge"),
    ("corecast_outbox_bytes", "gauge"),
    ("corecast_bus_messages_sent", "counter"),
    ("corecast_bus_messages_received", "counter"),
    ("corecast_bus_queue_depth", "gauge"),
    ("corecast_fanout_latency_seconds", "histogram"),
    ("corecast_bus_hop_latency_seconds", "histogram"),
];

/// The first line of every .hgrm distribution.
const HGRM_HEADER: &str = "       Value     Percentile TotalCount 1/(1-Percentile)";

// ---- /metrics ----

#[test]
fn metrics_is_openmetrics_with_every_family_labelled_by_shard_ending_in_eof() {
    let server = TestServer::start(&["--shards", "2"]);
    let response = get(server.admin_addr(), "/metrics");
    assert_eq!(response.status, 200, "{}", response.body);
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert_eq!(
        response.body.lines().last(),
        Some("# EOF"),
        "{}",
        response.body
    );
    let m = Scrape::parse(&response.body);

    for (family, kind) in FAMILIES {
        assert_eq!(
            m.types.get(family).map(String::as_str),
            Some(kind),
            "# TYPE of {family}"
        );
        assert!(m.helps.contains_key(family), "# HELP of {family}");
    }
    for sample in &m.samples {
        let shard = sample.labels.get("shard");
        assert!(
            shard.is_some_and(|s| s == "0" || s == "1"),
            "sample without a shard label: {sample:?}"
        );
    }
    for (name, label) in [
        ("corecast_connections_closed_total", "reason"),
        ("corecast_handshake_failures_total", "status"),
        ("corecast_protocol_errors_total", "code"),
    ] {
        let rows = m.rows(name);
        assert!(!rows.is_empty(), "no {name}");
        assert!(
            rows.iter().all(|s| s.labels.contains_key(label)),
            "{name} lacks {label}"
        );
    }
    for (family, kind) in FAMILIES {
        let name = match kind {
            "counter" => format!("{family}_total"),
            "histogram" => format!("{family}_count"),
            _ => family.to_string(),
        };
        for shard in ["0", "1"] {
            assert!(
                m.rows(&name).iter().any(|s| s.labels["shard"] == shard),
                "{name} has no row for shard {shard}"
            );
        }
    }
    for histogram in [
        "corecast_fanout_latency_seconds",
        "corecast_bus_hop_latency_seconds",
    ] {
        assert_histogram_well_formed(&m, histogram);
    }
}

#[test]
fn metrics_count_connections_opened_and_closed_by_the_client() {
    let server = TestServer::start(&["--shards", "2"]);
    let before = scrape(&server);
    assert_eq!(before.total("corecast_connections_open"), 0.0);

    let mut clients: Vec<(Client, String)> = (0..4)
        .map(|_| {
            let (c, hello) = server.ws_client();
            (c, connection_id(&hello))
        })
        .collect();
    let open = scrape(&server);
    assert_eq!(open.total("corecast_connections_open"), 4.0);
    assert_eq!(
        delta(&before, &open, "corecast_connections_accepted_total"),
        4.0
    );
    assert_eq!(
        delta(&before, &open, "corecast_connections_refused_total"),
        0.0
    );

    let (mut leaving, id) = clients.pop().expect("four clients");
    leaving.ws.close(None).expect("send close");
    assert_eq!(leaving.expect_close(), 1005);
    // Logged on the shard thread right before the close is counted.
    let needle = format!("closed conn={id} reason=client_closed");
    assert!(
        server.wait_for_log(&needle, WAIT).is_some(),
        "{}",
        server.log_text()
    );
    let after = scrape(&server);
    assert_eq!(after.total("corecast_connections_open"), 3.0);
    assert_eq!(
        closed(&after, "client_closed") - closed(&open, "client_closed"),
        1.0
    );
    assert_eq!(closed(&after, "slow_consumer"), 0.0);
}

#[test]
fn metrics_count_subscriptions_publishes_and_one_delivery_per_subscriber() {
    let server = TestServer::start(&["--shards", "2"]);
    let mut subs: Vec<(usize, Client, String)> = clients_on_both_shards(&server, 3);
    let (mut publisher, _) = server.ws_client();
    let before = scrape(&server);
    for (_, sub, _) in &mut subs {
        sub.subscribe("news");
    }
    let subscribed = scrape(&server);
    let n_subs = subs.len() as f64;
    assert_eq!(subscribed.total("corecast_subscriptions"), n_subs);
    // One channel, counted once by each shard that has a local subscriber.
    assert_eq!(subscribed.total("corecast_channels"), 2.0);
    assert_eq!(
        delta(&before, &subscribed, "corecast_messages_received_total"),
        n_subs
    );

    publisher.send_json(&json!({"type":"publish","channel":"news","data":"hello","id":1}));
    assert_eq!(
        publisher.recv_json(),
        json!({"type":"published","channel":"news","id":1})
    );
    for (_, sub, _) in &mut subs {
        assert_eq!(
            sub.recv_json(),
            json!({"type":"message","channel":"news","data":"hello"})
        );
    }
    let after = scrape(&server);
    assert_eq!(
        delta(&subscribed, &after, "corecast_messages_received_total"),
        1.0
    );
    assert_eq!(
        delta(&subscribed, &after, "corecast_messages_published_total"),
        1.0
    );
    assert_eq!(
        delta(&subscribed, &after, "corecast_messages_delivered_total"),
        n_subs
    );
    assert!(delta(&subscribed, &after, "corecast_bytes_received_total") > 0.0);
    assert!(delta(&subscribed, &after, "corecast_bytes_sent_total") > 0.0);
}

#[test]
fn metrics_count_invalid_json_as_protocol_error_and_public_404_as_handshake_failure() {
    let server = TestServer::start(&["--shards", "2"]);
    let (mut client, _) = server.ws_client();
    let before = scrape(&server);
    client.send_text("{not json");
    let reply = client.recv_json();
    assert_eq!(reply["code"], "INVALID_JSON", "{reply}");
    assert_eq!(get(&server.addr(), "/no-such-path").status, 404);

    let after = scrape(&server);
    let errors =
        |m: &Scrape, code: &str| m.total_where("corecast_protocol_errors_total", "code", code);
    assert_eq!(
        errors(&after, "INVALID_JSON") - errors(&before, "INVALID_JSON"),
        1.0
    );
    assert_eq!(
        after.total("corecast_protocol_errors_total")
            - before.total("corecast_protocol_errors_total"),
        1.0,
        "only INVALID_JSON moved"
    );
    let failures = |m: &Scrape, status: &str| {
        m.total_where("corecast_handshake_failures_total", "status", status)
    };
    assert_eq!(failures(&after, "404") - failures(&before, "404"), 1.0);
    assert_eq!(
        after.total("corecast_handshake_failures_total")
            - before.total("corecast_handshake_failures_total"),
        1.0,
        "only status=404 moved"
    );
}

#[test]
fn metrics_count_a_slow_consumer_disconnect() {
    let server = TestServer::start(&["--shards", "1", "--max-outbound-bytes", "64KiB"]);
    let (mut slow, _) = server.ws_client_small_rcvbuf();
    slow.subscribe("firehose");
    let (mut publisher, _) = server.ws_client();
    let before = scrape(&server);

    // Publish until the server cuts the subscriber off; each ack proves the
    // publish was handled, so the log check after it is up to date.
    let filler = "x".repeat(16 * 1024);
    let mut cut = false;
    for seq in 0..1000 {
        publisher.send_json(&json!({"type":"publish","channel":"firehose","id":seq,"data":filler}));
        assert_eq!(publisher.recv_json()["type"], "published");
        if server
            .wait_for_log("slow consumer closed", Duration::ZERO)
            .is_some()
        {
            cut = true;
            break;
        }
    }
    assert!(
        cut,
        "1000 x 16 KiB never overflowed 64 KiB:\n{}",
        server.log_text()
    );
    let (code, reason) = slow.read_close();
    assert_eq!((code, reason.as_str()), (1008, "slow consumer"));
    slow.ws.flush().expect("answer the close");
    assert!(
        server.wait_for_log("reason=slow_consumer", WAIT).is_some(),
        "{}",
        server.log_text()
    );
    let after = scrape(&server);
    assert_eq!(
        delta(&before, &after, "corecast_slow_consumer_disconnects_total"),
        1.0
    );
    assert_eq!(
        closed(&after, "slow_consumer") - closed(&before, "slow_consumer"),
        1.0
    );
    assert_eq!(
        after.total("corecast_connections_open"),
        1.0,
        "the publisher stays"
    );
}

#[test]
fn metrics_count_bus_messages_and_latency_for_publishes_crossing_shards() {
    let server = TestServer::start(&["--shards", "2"]);
    let mut pool = Pool::new(&server);
    let mut publisher = pool.on_shard(0);
    let mut subs = [pool.on_shard(0), pool.on_shard(1), pool.on_shard(1)];
    for sub in &mut subs {
        sub.subscribe("x");
    }
    // A scrape is itself a query over the bus, so measure what one idle
    // scrape adds and expect exactly that on top of the publishes.
    let s0 = scrape(&server);
    let s1 = scrape(&server);
    const K: u64 = 5;
    for seq in 0..K {
        publisher.send_json(&json!({"type":"publish","channel":"x","data":seq}));
    }
    for sub in &mut subs {
        for seq in 0..K {
            assert_eq!(
                sub.recv_json(),
                json!({"type":"message","channel":"x","data":seq})
            );
        }
    }
    let s2 = scrape(&server);

    let k = K as f64;
    for name in [
        "corecast_bus_messages_sent_total",
        "corecast_bus_messages_received_total",
    ] {
        let overhead = delta(&s0, &s1, name);
        assert_eq!(
            delta(&s1, &s2, name) - overhead,
            k,
            "{name}: one bus message per publish to the one other shard (scrape overhead {overhead})"
        );
    }
    let count = "corecast_fanout_latency_seconds_count";
    assert_eq!(delta(&s1, &s2, count), 3.0 * k, "one sample per delivery");
    assert_eq!(s2.shard(count, "0") - s1.shard(count, "0"), k);
    assert_eq!(s2.shard(count, "1") - s1.shard(count, "1"), 2.0 * k);
    assert!(delta(&s1, &s2, "corecast_fanout_latency_seconds_sum") > 0.0);
    assert_eq!(
        s2.shard("corecast_bus_hop_latency_seconds_count", "1")
            - s1.shard("corecast_bus_hop_latency_seconds_count", "1"),
        k,
        "one hop per publish arriving on shard 1"
    );
    assert_eq!(delta(&s1, &s2, "corecast_bus_hop_latency_seconds_count"), k);
    assert_histogram_well_formed(&s2, "corecast_fanout_latency_seconds");
    assert_histogram_well_formed(&s2, "corecast_bus_hop_latency_seconds");
}

// ---- /latency and the periodic report ----

#[test]
fn latency_serves_hgrm_counting_every_delivery_and_reset_starts_over() {
    let server = TestServer::start(&["--shards", "2"]);
    let mut pool = Pool::new(&server);
    let mut publisher = pool.on_shard(0);
    let mut subs = [pool.on_shard(0), pool.on_shard(1)];
    for sub in &mut subs {
        sub.subscribe("t");
    }
    const K: u64 = 20;
    for seq in 0..K {
        publisher.send_json(&json!({"type":"publish","channel":"t","data":seq}));
    }
    for sub in &mut subs {
        for _ in 0..K {
            assert_eq!(sub.recv_json()["type"], "message");
        }
    }
    let deliveries = 2 * K;

    let response = get(server.admin_addr(), "/latency");
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{response:?}"
    );
    let hgrm = Hgrm::parse(&response.body);
    assert_eq!(hgrm.total_count, deliveries, "{}", response.body);
    assert_eq!(
        hgrm.rows.last().map(|r| r.2),
        Some(deliveries),
        "{}",
        response.body
    );
    assert!(hgrm.max > 0.0 && hgrm.mean > 0.0, "{}", response.body);

    let reset = get(server.admin_addr(), "/latency?reset=true");
    assert_eq!(reset.status, 200);
    assert_eq!(
        Hgrm::parse(&reset.body).total_count,
        deliveries,
        "the reset answer is the distribution before the reset"
    );
    let after = get(server.admin_addr(), "/latency");
    let empty = Hgrm::parse(&after.body);
    assert_eq!(empty.total_count, 0, "{}", after.body);
    assert!(empty.rows.is_empty(), "{}", after.body);
    // Prometheus histograms must never go down: the reset starts a new
    // /latency interval but leaves the exported totals alone.
    let metrics = scrape(&server);
    assert_eq!(
        metrics.total("corecast_fanout_latency_seconds_count"),
        deliveries as f64,
        "a /latency reset must not reset /metrics"
    );
}

#[test]
fn latency_report_logs_each_interval_and_writes_hgrm_files() {
    let (dir, server) = report_server("report");
    let (mut sub, _) = server.ws_client();
    sub.subscribe("r");
    let (mut publisher, _) = server.ws_client();
    const K: u64 = 10;
    for seq in 0..K {
        publisher.send_json(&json!({"type":"publish","channel":"r","data":seq}));
    }
    for _ in 0..K {
        assert_eq!(sub.recv_json()["type"], "message");
    }

    // Each interval logs its count and resets: the counts add up to the deliveries.
    let deadline = Instant::now() + WAIT;
    let mut counted = 0;
    let mut n = 0;
    while counted < K {
        n += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let line = server
            .wait_for_log_count("latency interval=", n, left)
            .unwrap_or_else(|| {
                panic!(
                    "no report #{n} with {counted}/{K} counted:\n{}",
                    server.log_text()
                )
            });
        assert!(line.contains("interval=200ms fanout count="), "{line}");
        counted += log_field(&line, "count=").parse::<u64>().expect("count=N");
    }
    assert_eq!(counted, K, "{}", server.log_text());

    // Shard 0 logs each file once it is written.
    let written = server.wait_for_log("latency report written path=", WAIT);
    assert!(written.is_some(), "{}", server.log_text());
    let files = report_files(&dir.0);
    let text = std::fs::read_to_string(&files[0]).expect("read report");
    let hgrm = Hgrm::parse(&text);
    assert!(hgrm.total_count <= K, "{text}");
}

#[test]
fn every_latency_report_interval_gets_its_own_file() {
    let (dir, server) = report_server("intervals");
    // Shard 0 logs each file once it is written.
    let line = server.wait_for_log_count("latency report written path=", 5, WAIT);
    assert!(line.is_some(), "{}", server.log_text());
    let files = report_files(&dir.0);
    assert!(
        files.len() >= 5,
        "5 intervals wrote {} distinct files (a later interval overwrote an earlier one): {files:?}",
        files.len()
    );
}

// ---- /health ----

#[test]
fn admin_health_reports_every_shard_ready() {
    let server = TestServer::start(&["--shards", "2"]);
    let response = get(server.admin_addr(), "/health");
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.header("content-type").as_deref(),
        Some("application/json")
    );
    let health = response.json();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["ready"], true, "{health}");
    assert_eq!(health["shards"], 2, "{health}");
    assert_eq!(health["shards_ready"], health["shards"], "{health}");
}

#[test]
fn admin_health_is_503_draining_while_a_client_holds_up_shutdown() {
    let server = TestServer::start(&["--shards", "1", "--shutdown-timeout", "5s"]);
    // Never answers the server's close, so the drain lasts the whole timeout.
    let _silent = RawClient::connect(&server.addr(), "/ws");
    server.signal(libc::SIGTERM);
    assert!(
        server
            .wait_for_log("draining connections=1", WAIT)
            .is_some(),
        "{}",
        server.log_text()
    );
    let response = get(server.admin_addr(), "/health");
    assert_eq!(response.status, 503, "{}", response.body);
    let health = response.json();
    assert_eq!(health["status"], "draining", "{health}");
    assert_eq!(health["ready"], false, "{health}");
}

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

#[test]
fn unknown_admin_route_is_404_and_wrong_method_is_405_with_allow() {
    let server = TestServer::start(&["--shards", "1"]);
    let addr = server.admin_addr();
    let missing = get(addr, "/nope");
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_eq!(missing.json()["status"], 404);
    assert_eq!(get(addr, "/api/nope").status, 404);

    let wrong = get(addr, "/api/publish");
    assert_eq!(wrong.status, 405, "{}", wrong.body);
    assert_eq!(wrong.header("allow").as_deref(), Some("POST"));
    let wrong = post(addr, "/metrics", "{}");
    assert_eq!(wrong.status, 405, "{}", wrong.body);
    assert_eq!(wrong.header("allow").as_deref(), Some("GET"));
}

#[test]
fn api_body_over_max_api_body_is_413_and_a_body_at_the_limit_is_accepted() {
    let server = TestServer::start(&["--shards", "1", "--max-api-body", "1KiB"]);
    let addr = server.admin_addr();
    let fill = |n: usize| {
        let shell = r#"{"channel":"c","data":""}"#.len();
        format!(r#"{{"channel":"c","data":"{}"}}"#, "x".repeat(n - shell))
    };
    let at_limit = fill(1024);
    assert_eq!(at_limit.len(), 1024);
    let response = post(addr, "/api/publish", &at_limit);
    assert_eq!(response.status, 200, "{}", response.body);

    // Only the head: the server must refuse on Content-Length alone.
    let mut conn = HttpConn::open(addr);
    conn.write_raw(b"POST /api/publish HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.status, 413, "{}", response.body);
    assert!(
        response.body.contains("--max-api-body"),
        "{}",
        response.body
    );
    assert!(conn.closed_by_peer(), "the connection ends after a 413");
}

#[test]
fn chunked_request_body_is_411() {
    let server = TestServer::start(&["--shards", "1"]);
    let mut conn = HttpConn::open(server.admin_addr());
    let body = r#"{"channel":"c","data":1}"#;
    conn.write_raw(
        format!(
            "POST /api/publish HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let response = conn.read_response();
    assert_eq!(response.status, 411, "{}", response.body);
    assert!(conn.closed_by_peer(), "the connection ends after a 411");
}

#[test]
fn keep_alive_answers_requests_in_turn_until_connection_close() {
    let server = TestServer::start(&["--shards", "2"]);
    let mut conn = HttpConn::open(server.admin_addr());
    let health = conn.request("GET", "/health", &[], "");
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.header("connection").as_deref(), Some("keep-alive"));
    let published = conn.request("POST", "/api/publish", &[], r#"{"channel":"k","data":1}"#);
    assert_eq!(published.status, 200, "{}", published.body);
    let metrics = conn.request("GET", "/metrics", &[], "");
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.ends_with("# EOF\n"), "{}", metrics.body);
    // Two requests in one write are answered in order.
    conn.write_raw(
        b"GET /api/channels HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert!(conn.read_response().body.contains("channels"));
    assert!(conn.read_response().body.contains("shards_ready"));

    let last = conn.request("GET", "/health", &[("Connection", "close")], "");
    assert_eq!(last.status, 200);
    assert_eq!(last.header("connection").as_deref(), Some("close"));
    assert!(
        conn.closed_by_peer(),
        "Connection: close ends the connection"
    );
}

#[test]
fn admin_token_guards_api_routes_but_not_metrics_or_health() {
    let server = TestServer::start(&["--shards", "1", "--admin-token", "s3cret"]);
    let addr = server.admin_addr();
    let ask = |auth: Option<&str>| {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        HttpConn::open(addr).request("GET", "/api/stats", &headers, "")
    };
    let none = ask(None);
    assert_eq!(none.status, 401, "{}", none.body);
    assert_eq!(none.header("www-authenticate").as_deref(), Some("Bearer"));
    for wrong in [
        "Bearer wrong",
        "Bearer s3cre",
        "Bearer s3cret2",
        "Basic s3cret",
        "s3cret",
    ] {
        let response = ask(Some(wrong));
        assert_eq!(response.status, 401, "{wrong}: {}", response.body);
        assert_eq!(
            response.header("www-authenticate").as_deref(),
            Some("Bearer"),
            "{wrong}"
        );
    }
    assert_eq!(ask(Some("Bearer s3cret")).status, 200);
    let publish = HttpConn::open(addr).request(
        "POST",
        "/api/publish",
        &[("Authorization", "Bearer s3cret")],
        r#"{"channel":"c","data":1}"#,
    );
    assert_eq!(publish.status, 200, "{}", publish.body);
    let unauthorised = post(addr, "/api/publish", r#"{"channel":"c","data":1}"#);
    assert_eq!(unauthorised.status, 401);

    assert_eq!(get(addr, "/metrics").status, 200);
    assert_eq!(get(addr, "/health").status, 200);
    assert_eq!(get(addr, "/latency").status, 200);
}

// ---- startup ----

#[test]
fn admin_addr_none_starts_without_an_admin_listener() {
    let server = TestServer::start(&["--shards", "1", "--admin-addr", "none"]);
    assert_eq!(server.admin, None);
    let line = server
        .wait_for_log("listening addr=", WAIT)
        .expect("listening line");
    assert!(line.contains(" admin=none "), "{line}");
    // The public port does not take over the admin routes.
    assert_eq!(get(&server.addr(), "/metrics").status, 404);
    let (_client, hello) = server.ws_client();
    assert_eq!(hello["type"], "connection_established");
}

#[test]
fn second_server_on_the_same_admin_addr_exits_1_naming_the_flag() {
    let first = TestServer::start(&["--shards", "1"]);
    let taken = first.admin_addr().to_string();
    let (status, log) = match TestServer::try_start(&["--shards", "1", "--admin-addr", &taken]) {
        Ok(server) => panic!("second server started on admin {:?}", server.admin),
        Err(failure) => failure,
    };
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{log}");
    let line = startup_error_line(&log);
    assert!(line.contains("--admin-addr"), "{line}");
    assert!(line.contains(&taken), "{line}");
    assert!(line.contains("address already in use"), "{line}");
    assert_eq!(
        get(&taken, "/health").status,
        200,
        "the first server still answers"
    );
}

#[test]
fn latency_report_dir_inside_a_regular_file_exits_1_with_a_clear_error() {
    let dir = TempDir::new("notadir");
    let file = dir.0.join("plain-file");
    std::fs::write(&file, "not a directory").expect("create file");
    for target in [file.join("reports"), file.clone()] {
        let arg = target.to_str().expect("utf-8 temp path");
        let (status, log) =
            match TestServer::try_start(&["--shards", "1", "--latency-report-dir", arg]) {
                Ok(_) => panic!("started with --latency-report-dir {arg}"),
                Err(failure) => failure,
            };
        assert_eq!(status.and_then(|s| s.code()), Some(1), "{log}");
        let line = startup_error_line(&log);
        assert!(line.contains("--latency-report-dir"), "{line}");
        assert!(line.contains(arg), "{line}");
    }
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

/// A one-shard server writing a latency report every 200 ms into a fresh
/// directory named after `tag`; the directory lives as long as the returned guard.
fn report_server(tag: &str) -> (TempDir, TestServer) {
    let dir = TempDir::new(tag);
    let dir_arg = dir.0.to_str().expect("utf-8 temp path");
    let server = TestServer::start(&[
        "--shards",
        "1",
        "--latency-report-interval",
        "200ms",
        "--latency-report-dir",
        dir_arg,
    ]);
    (dir, server)
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_nanos();
        let path =
            std::env::temp_dir().join(format!("corecast-it-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `corecast-latency-*.hgrm` files in `dir`, sorted.
fn report_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read report dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("corecast-latency-") && name.ends_with(".hgrm")
        })
        .collect();
    files.sort();
    files
}

// ---- helpers: OpenMetrics text ----

/// One sample line.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed /metrics answer.
#[derive(Debug, Default)]
struct Scrape {
    types: BTreeMap<String, String>,
    helps: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Scrape {
    /// Parses OpenMetrics text, failing on any line it does not understand
    /// and on anything after `# EOF`.
    fn parse(text: &str) -> Scrape {
        let mut out = Scrape::default();
        let mut eof = false;
        for line in text.lines() {
            assert!(!eof, "line after # EOF: {line}");
            if line == "# EOF" {
                eof = true;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                out.types.insert(name.to_string(), kind.to_string());
            } else if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("# HELP name text");
                out.helps.insert(name.to_string(), help.to_string());
            } else {
                assert!(
                    !line.starts_with('#') && !line.is_empty(),
                    "unexpected line: {line:?}"
                );
                out.samples.push(parse_sample(line));
            }
        }
        assert!(eof, "no # EOF");
        out
    }

    fn rows(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }

    /// Sum of `name` over every label set.
    fn total(&self, name: &str) -> f64 {
        let rows = self.rows(name);
        assert!(!rows.is_empty(), "no samples named {name}");
        rows.iter().map(|s| s.value).sum()
    }

    /// Sum of `name` over shards where label `key` is `value`.
    fn total_where(&self, name: &str, key: &str, value: &str) -> f64 {
        let rows: Vec<&Sample> = self
            .rows(name)
            .into_iter()
            .filter(|s| s.labels.get(key).is_some_and(|v| v == value))
            .collect();
        assert!(!rows.is_empty(), "no {name}{{{key}=\"{value}\"}}");
        rows.iter().map(|s| s.value).sum()
    }

    /// `name` on one shard (summed over its other labels).
    fn shard(&self, name: &str, shard: &str) -> f64 {
        self.total_where(name, "shard", shard)
    }
}

/// `name{k="v",...} value` or `name value`.
fn parse_sample(line: &str) -> Sample {
    let (series, value) = line
        .rsplit_once(' ')
        .unwrap_or_else(|| panic!("no value: {line}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
    };
    let (name, labels) = match series.split_once('{') {
        None => (series, BTreeMap::new()),
        Some((name, rest)) => {
            let inner = rest
                .strip_suffix('}')
                .unwrap_or_else(|| panic!("unclosed labels: {line}"));
            (name, parse_labels(inner, line))
        }
    };
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "bad metric name in {line}"
    );
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// `k="v",k2="v2"` (values here never contain quotes or commas).
fn parse_labels(inner: &str, line: &str) -> BTreeMap<String, String> {
    inner
        .split(',')
        .map(|pair| {
            let (k, v) = pair
                .split_once('=')
                .unwrap_or_else(|| panic!("bad label in {line}"));
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or_else(|| panic!("unquoted label value in {line}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Checks a histogram family on every shard: buckets ascending in `le`,
/// cumulative counts never decreasing, `+Inf` equal to `_count`, and a
/// non-negative `_sum`.
fn assert_histogram_well_formed(m: &Scrape, family: &str) {
    for shard in ["0", "1"] {
        let buckets: Vec<(f64, f64)> = m
            .rows(&format!("{family}_bucket"))
            .into_iter()
            .filter(|s| s.labels["shard"] == shard)
            .map(|s| {
                // OpenMetrics spells the last bound "+Inf"; others are finite numbers.
                let le = &s.labels["le"];
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    let bound: f64 = le.parse().unwrap_or_else(|_| panic!("le={le:?}"));
                    assert!(
                        bound.is_finite(),
                        "{family}: le={le:?} is not how OpenMetrics writes +Inf"
                    );
                    bound
                };
                (bound, s.value)
            })
            .collect();
        assert!(buckets.len() >= 2, "{family} shard {shard}: {buckets:?}");
        for pair in buckets.windows(2) {
            assert!(
                pair[0].0 < pair[1].0,
                "{family} shard {shard}: le not ascending {buckets:?}"
            );
            assert!(
                pair[0].1 <= pair[1].1,
                "{family} shard {shard}: not cumulative {buckets:?}"
            );
        }
        let (last_le, last_count) = *buckets.last().expect("a bucket");
        assert_eq!(
            last_le,
            f64::INFINITY,
            "{family} shard {shard}: last bucket is +Inf"
        );
        assert_eq!(
            last_count,
            m.shard(&format!("{family}_count"), shard),
            "{family}: +Inf == _count"
        );
        assert!(m.shard(&format!("{family}_sum"), shard) >= 0.0);
    }
}

/// Change of `name` (summed over shards) from `a` to `b`.
fn delta(a: &Scrape, b: &Scrape, name: &str) -> f64 {
    b.total(name) - a.total(name)
}

/// `corecast_connections_closed_total` for one reason, over all shards.
fn closed(m: &Scrape, reason: &str) -> f64 {
    m.total_where("corecast_connections_closed_total", "reason", reason)
}

/// GET /metrics on the admin port, parsed.
fn scrape(server: &TestServer) -> Scrape {
    let response = get(server.admin_addr(), "/metrics");
    assert_eq!(response.status, 200, "{}", response.body);
    Scrape::parse(&response.body)
}

// ---- helpers: .hgrm text ----

/// A parsed percentile distribution.
#[derive(Debug)]
struct Hgrm {
    /// (value, percentile, total count) per data line.
    rows: Vec<(f64, f64, u64)>,
    mean: f64,
    max: f64,
    total_count: u64,
}

impl Hgrm {
    /// Parses .hgrm text: the header, data lines whose percentile and total
    /// count never decrease, and the `#[Mean`/`#[Max`/`#[Buckets` footer.
    fn parse(text: &str) -> Hgrm {
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(HGRM_HEADER), "{text}");
        assert_eq!(
            lines.next(),
            Some(""),
            "blank line after the header: {text}"
        );
        let mut rows: Vec<(f64, f64, u64)> = Vec::new();
        let (mut mean, mut max, mut total_count, mut buckets) = (None, None, None, false);
        for line in lines {
            if let Some(rest) = line.strip_prefix("#[Mean") {
                mean = Some(footer_number(rest, "="));
            } else if let Some(rest) = line.strip_prefix("#[Max") {
                max = Some(footer_number(rest, "="));
                let count = rest.split("Total count").nth(1).expect("Total count");
                total_count = Some(footer_number(count, "=") as u64);
            } else if line.starts_with("#[Buckets") {
                buckets = true;
            } else {
                let cols: Vec<&str> = line.split_whitespace().collect();
                assert!(cols.len() == 3 || cols.len() == 4, "bad data line {line:?}");
                let row = (
                    cols[0].parse().expect("value"),
                    cols[1].parse().expect("percentile"),
                    cols[2].parse().expect("total count"),
                );
                if let Some(prev) = rows.last() {
                    assert!(
                        prev.0 <= row.0 && prev.1 <= row.1 && prev.2 <= row.2,
                        "decreasing: {line}"
                    );
                }
                rows.push(row);
            }
        }
        assert!(buckets, "no #[Buckets footer: {text}");
        Hgrm {
            rows,
            mean: mean.expect("#[Mean footer"),
            max: max.expect("#[Max footer"),
            total_count: total_count.expect("Total count"),
        }
    }
}

/// The number after the first `sep` in a footer fragment like `=  12.5, ...`.
fn footer_number(fragment: &str, sep: &str) -> f64 {
    let after = fragment.split_once(sep).expect("footer separator").1;
    let number = after
        .trim_start()
        .split([',', ']'])
        .next()
        .unwrap_or("")
        .trim();
    number
        .parse()
        .unwrap_or_else(|_| panic!("bad footer number in {fragment:?}"))
}
