//! Resource limits: --max-connections, the slow-consumer cut-off
//! (--max-outbound-bytes), and the heartbeat (--ping-interval/--pong-timeout).

use std::time::{Duration, Instant};

use serde_json::json;
use tungstenite::Message;

use crate::harness::{exchange, get, upgrade_request, RawClient, TestServer, WAIT};

/// One shard with a heartbeat fast enough to watch in a test: a ping every
/// 100 ms and a 300 ms pong timeout, so a silent client is closed within a
/// second while an answering one sees several pings first.
const FAST_HEARTBEAT: [&str; 6] = [
    "--shards",
    "1",
    "--ping-interval",
    "100ms",
    "--pong-timeout",
    "300ms",
];

#[test]
fn connection_over_max_connections_gets_503_until_one_closes() {
    let server = TestServer::start(&["--shards", "1", "--max-connections", "2"]);
    let (mut first, _) = server.ws_client();
    let (_second, _) = server.ws_client();

    let response = exchange(&server.addr(), &upgrade_request("/ws"));
    assert_eq!(response.status, 503, "{response:?}");
    assert!(response.body.contains("connection limit"), "{response:?}");
    let health = server.health();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["connections"], 2, "{health}");

    first.ws.close(None).expect("send close");
    assert_eq!(first.expect_close(), 1005);
    assert!(
        server.wait_for_log("closed conn=", WAIT).is_some(),
        "{}",
        server.log_text()
    );
    let (_third, hello) = server.ws_client();
    assert_eq!(hello["type"], "connection_established");
}

#[test]
fn slow_consumer_is_disconnected_while_others_get_every_message() {
    let server = TestServer::start(&["--shards", "1", "--max-outbound-bytes", "64KiB"]);
    let (mut slow, _) = server.ws_client_small_rcvbuf();
    slow.subscribe("firehose");
    let (mut fast, _) = server.ws_client();
    fast.subscribe("firehose");
    let (mut publisher, _) = server.ws_client();

    let filler = "x".repeat(16 * 1024);
    const N: u64 = 400;
    for seq in 0..N {
        let msg = json!({"type":"publish","channel":"firehose","id":seq,"data":{"seq":seq,"fill":filler}});
        publisher.send_json(&msg);
        // The fast subscriber keeps up: it reads each message before the next is sent.
        let got = fast.recv_json();
        assert_eq!(got["type"], "message", "{got}");
        assert_eq!(
            got["data"]["seq"], seq,
            "fast subscriber lost or reordered a message"
        );
        assert_eq!(
            got["data"]["fill"].as_str().map(str::len),
            Some(filler.len())
        );
    }
    for seq in 0..N {
        let ack = publisher.recv_json();
        assert_eq!(
            ack,
            json!({"type":"published","channel":"firehose","id":seq}),
            "publisher saw an error"
        );
    }

    let cut = server.wait_for_log("slow consumer closed", WAIT);
    assert!(
        cut.is_some_and(|l| l.ends_with("limit=65536")),
        "{}",
        server.log_text()
    );
    let (code, reason) = slow.read_close();
    assert_eq!((code, reason.as_str()), (1008, "slow consumer"));
    // Answer the close so the server can end the connection now.
    slow.ws.flush().expect("send close reply");
    let closed = server.wait_for_log("reason=slow_consumer", WAIT);
    assert!(closed.is_some(), "{}", server.log_text());
    let health = server.health();
    assert!(
        health["slow_consumer_closes"].as_u64() >= Some(1),
        "{health}"
    );
    assert_eq!(
        health["connections"], 2,
        "only the slow consumer is gone: {health}"
    );
}

#[test]
fn silent_client_is_closed_after_pong_timeout() {
    let server = TestServer::start(&FAST_HEARTBEAT);
    let mut silent = RawClient::connect(&server.addr(), "/echo");
    let mut pings = 0;
    let close = loop {
        let frame = silent
            .read_frame()
            .expect("server closed TCP without a close frame");
        match frame.opcode {
            0x9 => pings += 1,
            0x8 => break frame.payload,
            other => panic!("unexpected opcode {other:#x}"),
        }
    };
    assert!(pings >= 1, "no ping before the heartbeat close");
    assert!(close.len() >= 2, "close without a code: {close:?}");
    assert_eq!(u16::from_be_bytes([close[0], close[1]]), 1008);
    assert_eq!(&close[2..], b"heartbeat timeout");
}

#[test]
fn client_answering_pings_stays_open() {
    let server = TestServer::start(&FAST_HEARTBEAT);
    let mut client = server.ws("/echo");
    let start = Instant::now();
    let mut pings = 0;
    // Five pings span more than the pong timeout; tungstenite answers each.
    while pings < 5 {
        match client.ws.read().expect("connection stays open") {
            Message::Ping(_) => {
                pings += 1;
                client.ws.flush().expect("send pong");
            }
            other => panic!("unexpected message {other:?}"),
        }
    }
    assert!(
        start.elapsed() > Duration::from_millis(300),
        "pings came faster than the interval"
    );
    client.send_text("still here");
    assert_eq!(client.recv(), Message::text("still here"));
}

#[test]
fn subscriber_that_reads_late_gets_every_message_in_order() {
    // A subscriber that reads nothing until everything is published: twice
    // what the kernel may buffer for it (its 4 KiB receive buffer plus a
    // send buffer of up to net.ipv4.tcp_wmem's maximum) plus 2 MiB, so at
    // least 2 MiB must wait in the outbox (under the limit, set above the
    // total). Writing must resume when the subscriber reads (the socket's
    // writability edge), with nothing lost and the publisher never held up.
    let wmem_max: usize = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(4 << 20);
    const FILL: usize = 16 * 1024;
    let n = ((2 * wmem_max + (2 << 20)) / FILL) as u64;
    let limit = format!("{}", (n as usize + 64) * (FILL + 128));
    let server = TestServer::start(&["--shards", "1", "--max-outbound-bytes", &limit]);
    let (mut late, _) = server.ws_client_small_rcvbuf();
    late.subscribe("backlog");
    let (mut publisher, _) = server.ws_client();

    let filler = "y".repeat(FILL);
    for seq in 0..n {
        publisher.send_json(&json!({"type":"publish","channel":"backlog","id":seq,"data":{"seq":seq,"fill":filler}}));
    }
    for seq in 0..n {
        let ack = publisher.recv_json();
        assert_eq!(
            ack,
            json!({"type":"published","channel":"backlog","id":seq})
        );
    }
    let stats = get(server.admin_addr(), "/api/stats").json();
    let waiting = stats["shards"][0]["outbox_bytes"].as_u64().unwrap_or(0);
    assert!(
        waiting >= 2 << 20,
        "at least 2 MiB should wait in the outbox: {stats}"
    );

    for seq in 0..n {
        let got = late.recv_json();
        assert_eq!(got["type"], "message", "{got}");
        assert_eq!(got["data"]["seq"], seq, "lost or reordered");
    }
    let health = server.health();
    assert_eq!(health["slow_consumer_closes"], 0, "{health}");
}
