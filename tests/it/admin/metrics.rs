//! /metrics: every family is exposed and every counter moves when it should.

use std::time::Duration;

use serde_json::json;

use crate::harness::{clients_on_both_shards, connection_id, get, Client, Pool, TestServer, WAIT};

use super::openmetrics::{assert_histogram_well_formed, closed, delta, scrape, Scrape};

/// Every metric family /metrics must expose, with its OpenMetrics type.
const FAMILIES: [(&str, &str); 30] = [
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
    ("corecast_flush_passes", "counter"),
    ("corecast_compressed_frames", "counter"),
    ("corecast_inflated_messages", "counter"),
    ("corecast_ticker_passes", "counter"),
    ("corecast_ticker_pass_longest_microseconds", "gauge"),
    ("corecast_history_bytes", "gauge"),
    ("corecast_history_publications", "gauge"),
    ("corecast_history_channels", "gauge"),
    ("corecast_history_evictions", "counter"),
    ("corecast_history_channel_evictions", "counter"),
    ("corecast_bus_queue_depth", "gauge"),
    ("corecast_fanout_latency_seconds", "histogram"),
    ("corecast_bus_hop_latency_seconds", "histogram"),
];

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
