//! 12-13: permessage-deflate (RFC 7692), with `--compression on`.
//!
//! tungstenite speaks no extension, so compressed frames are made and read
//! by hand: the test's own flate2 compressor and decompressor (raw DEFLATE,
//! the `00 00 ff ff` tail removed and added back as RFC 7692 7.2 says) over
//! a [`RawClient`].

use std::io::Write;

use flate2::write::DeflateEncoder;
use flate2::{Compression, Decompress, FlushDecompress};
use serde_json::{json, Value};

use super::*;

/// What the server answers to every offer it accepts.
const AGREED: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

fn compressing_server() -> TestServer {
    server_with(&["--compression", "on"])
}

/// The response head's Sec-WebSocket-Extensions value, if any.
fn extensions(head: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Extensions: "))
        .map(str::to_owned)
}

/// A client on `path` that offered plain permessage-deflate and got it.
fn deflate_client(server: &TestServer, path: &str) -> RawClient {
    let (c, head) = RawClient::connect_with(
        &server.addr(),
        path,
        &["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"],
    );
    assert_eq!(extensions(&head).as_deref(), Some(AGREED), "{head}");
    c
}

/// `data` compressed as one permessage-deflate message (sync flush, tail removed).
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).unwrap();
    encoder.flush().unwrap();
    let mut out = encoder.get_ref().clone();
    assert!(out.ends_with(&TAIL), "a sync flush ends in 00 00 ff ff");
    out.truncate(out.len() - TAIL.len());
    out
}

/// A permessage-deflate message's payload inflated (tail added back).
fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&TAIL);
    let mut d = Decompress::new(false);
    let mut out = Vec::new();
    while (d.total_in() as usize) < input.len() {
        out.reserve(64 * 1024);
        let before = (d.total_in(), d.total_out());
        d.decompress_vec(
            &input[d.total_in() as usize..],
            &mut out,
            FlushDecompress::Sync,
        )
        .expect("the server's compressed data inflates");
        if (d.total_in(), d.total_out()) == before {
            break;
        }
    }
    out
}

/// The next data frame (pings skipped): whether it was compressed, and
/// its payload inflated.
fn recv_message(c: &mut RawClient) -> (bool, Vec<u8>) {
    loop {
        let frame = next_frame(c);
        if frame.opcode == PING {
            continue;
        }
        assert!(
            frame.fin,
            "server messages are one frame: {}",
            describe(&frame)
        );
        assert!(
            frame.opcode == TEXT || frame.opcode == BINARY,
            "{}",
            describe(&frame)
        );
        return if frame.rsv1 {
            (true, inflate(&frame.payload))
        } else {
            (false, frame.payload)
        };
    }
}

fn recv_json(c: &mut RawClient) -> (bool, Value) {
    let (compressed, payload) = recv_message(c);
    (compressed, serde_json::from_slice(&payload).expect("JSON"))
}

/// JSON text of about `len` bytes that compresses well, as pub/sub data does.
fn json_payload(len: usize) -> String {
    let items: Vec<String> = (0..len / 40)
        .map(|i| format!(r#"{{"id":{i},"name":"item-{i}","ok":true}}"#))
        .collect();
    format!("[{}]", items.join(","))
}

#[test]
fn nothing_is_negotiated_when_compression_is_off() {
    let server = server();
    let (mut c, head) = RawClient::connect_with(
        &server.addr(),
        "/echo",
        &["Sec-WebSocket-Extensions: permessage-deflate"],
    );
    assert_eq!(extensions(&head), None, "{head}");
    // And so RSV1 stays reserved.
    c.send_frame(FIN | RSV1 | TEXT, &deflate(b"hello"), true);
    expect_failure(&mut c, 1002);
}

#[test]
fn offers_are_negotiated_as_rfc7692_says() {
    let server = compressing_server();
    let with_bits = format!("{AGREED}; server_max_window_bits=15");
    let with_10 = format!("{AGREED}; server_max_window_bits=10");
    let with_8 = format!("{AGREED}; server_max_window_bits=8");
    let cases: &[(&[&str], Option<&str>)] = &[
        // Chrome and Firefox.
        (&["permessage-deflate; client_max_window_bits"], Some(AGREED)),
        (&["permessage-deflate"], Some(AGREED)),
        // Window bits with and without a value; quoted values.
        (&["permessage-deflate; client_max_window_bits=10"], Some(AGREED)),
        (&["permessage-deflate; client_max_window_bits=\"9\""], Some(AGREED)),
        (&["permessage-deflate; server_max_window_bits=15"], Some(&with_bits)),
        // A declined offer falls through to the next, in one header or several.
        (
            &["permessage-deflate; server_max_window_bits=16, permessage-deflate; client_max_window_bits=12"],
            Some(AGREED),
        ),
        // Smaller server windows are agreed with the same value.
        (&["permessage-deflate; server_max_window_bits=10"], Some(&with_10)),
        (&["permessage-deflate; server_max_window_bits=8"], Some(&with_8)),
        (
            &["x-webkit-deflate-frame", "permessage-deflate; foo, permessage-deflate; server_max_window_bits=15"],
            Some(&with_bits),
        ),
        // Offers declined and none left: the upgrade still succeeds.
        (&["permessage-deflate; client_max_window_bits=16"], None),
        (&["permessage-deflate; server_max_window_bits"], None),
        (&["permessage-deflate; server_max_window_bits=7"], None),
        (&["permessage-deflate; client_no_context_takeover; client_no_context_takeover"], None),
        (&["permessage-deflate; unknown_param"], None),
        (&["x-webkit-deflate-frame"], None),
        (&[], None),
    ];
    for (offers, want) in cases {
        let lines: Vec<String> = offers
            .iter()
            .map(|o| format!("Sec-WebSocket-Extensions: {o}"))
            .collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (_c, head) = RawClient::connect_with(&server.addr(), "/echo", &lines);
        assert_eq!(extensions(&head).as_deref(), *want, "offers {offers:?}");
    }
}

#[test]
fn compressed_echo_both_ways() {
    let server = compressing_server();
    let mut c = deflate_client(&server, "/echo");
    let text = json_payload(4096);
    c.send_frame(FIN | RSV1 | TEXT, &deflate(text.as_bytes()), true);
    let frame = next_frame(&mut c);
    assert!(frame.rsv1 && frame.opcode == TEXT, "{}", describe(&frame));
    assert!(frame.payload.len() < text.len() / 2, "{}", describe(&frame));
    assert_eq!(inflate(&frame.payload), text.as_bytes());
    // Binary, and an uncompressed message from the client: the reply is
    // compressed all the same (each message is compressed on its own).
    let binary = binary_payload(70_000);
    c.send_frame(FIN | RSV1 | BINARY, &deflate(&binary), true);
    assert_eq!(recv_message(&mut c), (true, binary.clone()));
    c.send_frame(FIN | BINARY, &binary, true);
    assert_eq!(recv_message(&mut c), (true, binary));
}

#[test]
fn small_messages_go_uncompressed() {
    let server = server_with(&["--compression", "on", "--compression-min-size", "100"]);
    let mut c = deflate_client(&server, "/echo");
    c.send_frame(FIN | RSV1 | TEXT, &deflate(&[b'a'; 99]), true);
    assert_eq!(recv_message(&mut c), (false, vec![b'a'; 99]));
    c.send_frame(FIN | TEXT, &[b'a'; 100], true);
    assert_eq!(recv_message(&mut c), (true, vec![b'a'; 100]));
}

#[test]
fn compressed_fragments_around_a_ping() {
    let server = compressing_server();
    let mut c = deflate_client(&server, "/echo");
    let text = json_payload(2000);
    let compressed = deflate(text.as_bytes());
    let third = compressed.len() / 3;
    let mut bytes = encode_client_frame(RSV1 | TEXT, &compressed[..third], true);
    bytes.extend(encode_client_frame(FIN | PING, b"mid", true));
    bytes.extend(encode_client_frame(
        CONT,
        &compressed[third..2 * third],
        true,
    ));
    bytes.extend(encode_client_frame(
        FIN | CONT,
        &compressed[2 * third..],
        true,
    ));
    c.send_raw(&bytes);
    expect_frame(&mut c, PONG, b"mid");
    assert_eq!(recv_message(&mut c), (true, text.into_bytes()));
}

#[test]
fn rsv1_where_rfc7692_forbids_it_fails_with_1002() {
    let server = compressing_server();
    // On a continuation frame, on a control frame.
    let mut c = deflate_client(&server, "/echo");
    let mut bytes = encode_client_frame(TEXT, b"he", true);
    bytes.extend(encode_client_frame(FIN | RSV1 | CONT, b"llo", true));
    c.send_raw(&bytes);
    expect_failure(&mut c, 1002);
    let mut c = deflate_client(&server, "/echo");
    c.send_frame(FIN | RSV1 | PING, b"", true);
    expect_failure(&mut c, 1002);
    // From a client that did not negotiate the extension.
    let mut c = raw(&server);
    c.send_frame(FIN | RSV1 | TEXT, &deflate(b"hello"), true);
    expect_failure(&mut c, 1002);
}

#[test]
fn decompression_bomb_fails_with_1009() {
    let server = server_with(&["--compression", "on", "--max-message-size", "64KiB"]);
    let mut c = deflate_client(&server, "/echo");
    let bomb = deflate(&vec![0u8; 16 * MIB]);
    assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
    c.send_frame(FIN | RSV1 | BINARY, &bomb, true);
    expect_failure(&mut c, 1009);
    // Exactly the limit inflated is fine.
    let mut c = deflate_client(&server, "/echo");
    c.send_frame(FIN | RSV1 | BINARY, &deflate(&vec![0u8; 64 * 1024]), true);
    assert_eq!(recv_message(&mut c), (true, vec![0u8; 64 * 1024]));
}

#[test]
fn invalid_compressed_data_fails() {
    let server = compressing_server();
    let mut c = deflate_client(&server, "/echo");
    // BTYPE 11 is reserved in DEFLATE.
    c.send_frame(FIN | RSV1 | TEXT, &[0xff, 0xff, 0xff, 0xff], true);
    expect_failure(&mut c, 1002);
    // Valid DEFLATE, invalid UTF-8 once inflated.
    let mut c = deflate_client(&server, "/echo");
    c.send_frame(FIN | RSV1 | TEXT, &deflate(KOSME_INVALID), true);
    expect_failure(&mut c, 1007);
}

#[test]
fn publish_reaches_compressing_and_plain_subscribers_compressed_once() {
    let server = compressing_server();
    let mut zipped = [
        deflate_client(&server, "/ws"),
        deflate_client(&server, "/ws"),
    ];
    let mut plain = raw_ws(&server);
    for c in zipped.iter_mut().chain([&mut plain]) {
        assert_eq!(recv_json(c).1["type"], "connection_established");
        c.send_frame(FIN | TEXT, br#"{"type":"subscribe","channel":"z"}"#, true);
        assert_eq!(recv_json(c).1["type"], "subscribed");
    }
    let metrics_before = compressed_frames(&server);
    let data: Value = serde_json::from_str(&json_payload(1024)).unwrap();
    let mut publisher = server.ws("/ws");
    publisher.send_json(&json!({"type":"publish","channel":"z","data":data}));
    let (compressed, plain_bytes) = recv_message(&mut plain);
    assert!(!compressed);
    for c in &mut zipped {
        let (compressed, bytes) = recv_message(c);
        assert!(compressed);
        assert_eq!(
            bytes, plain_bytes,
            "the compressed copy inflates to the plain frame"
        );
    }
    let message: Value = serde_json::from_slice(&plain_bytes).unwrap();
    assert_eq!(message["data"], data);
    // One compression for both compressing subscribers.
    assert_eq!(compressed_frames(&server) - metrics_before, 1);
}

fn raw_ws(server: &TestServer) -> RawClient {
    RawClient::connect(&server.addr(), "/ws")
}

/// corecast_compressed_frames_total summed over shards.
fn compressed_frames(server: &TestServer) -> u64 {
    server.counter("corecast_compressed_frames_total")
}

#[test]
fn a_compressed_text_frame_arriving_in_pieces_is_not_checked_as_utf8_before_inflating() {
    let server = compressing_server();
    let mut c = deflate_client(&server, "/echo");
    let text = json_payload(200_000);
    let bytes = encode_client_frame(FIN | RSV1 | TEXT, &deflate(text.as_bytes()), true);
    // The frame's first part alone: DEFLATE bytes, which are not UTF-8. The
    // server reads it before the rest arrives (the pause lets it; if the
    // two parts were read together the check would simply not be reached).
    c.send_raw(&bytes[..bytes.len() / 2]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    c.send_raw(&bytes[bytes.len() / 2..]);
    assert_eq!(recv_message(&mut c), (true, text.into_bytes()));
}

#[test]
fn msgpack_and_json_subscribers_with_compression_share_one_channel() {
    let server = compressing_server();
    let offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits";
    let (mut mp, head) = RawClient::connect_with(
        &server.addr(),
        "/ws",
        &[offer, "Sec-WebSocket-Protocol: corecast.msgpack"],
    );
    assert_eq!(extensions(&head).as_deref(), Some(AGREED), "{head}");
    assert!(
        head.contains("Sec-WebSocket-Protocol: corecast.msgpack"),
        "{head}"
    );
    let mut json_c = deflate_client(&server, "/ws");
    let (_, hello) = recv_message(&mut mp);
    assert_eq!(
        crate::msgpack::decode(&hello)["type"],
        "connection_established"
    );
    assert_eq!(recv_json(&mut json_c).1["type"], "connection_established");
    mp.send_frame(
        FIN | BINARY,
        &crate::msgpack::encode(&json!({"type":"subscribe","channel":"z"})),
        true,
    );
    assert_eq!(
        crate::msgpack::decode(&recv_message(&mut mp).1)["type"],
        "subscribed"
    );
    json_c.send_frame(FIN | TEXT, br#"{"type":"subscribe","channel":"z"}"#, true);
    assert_eq!(recv_json(&mut json_c).1["type"], "subscribed");
    let compressed_before = compressed_frames(&server);
    let converted_before = crate::msgpack::conversions(&server);
    let data: Value = serde_json::from_str(&json_payload(1024)).unwrap();
    let mut publisher = server.ws("/ws");
    publisher.send_json(&json!({"type":"publish","channel":"z","data":data}));
    let want = json!({"type":"message","channel":"z","data":data});
    let frame = loop {
        let frame = next_frame(&mut mp);
        if frame.opcode != PING {
            break frame;
        }
    };
    assert!(frame.rsv1 && frame.opcode == BINARY, "{}", describe(&frame));
    assert_eq!(crate::msgpack::decode(&inflate(&frame.payload)), want);
    let (compressed, value) = recv_json(&mut json_c);
    assert!(compressed);
    assert_eq!(value, want);
    // One conversion, and one compression per encoding.
    assert_eq!(crate::msgpack::conversions(&server) - converted_before, 1);
    assert_eq!(compressed_frames(&server) - compressed_before, 2);
}

/// How far back the matches of a compressed message's payload reach (the
/// window its client needs), read by walking its DEFLATE blocks.
fn reach(payload: &[u8]) -> usize {
    let mut stream = payload.to_vec();
    stream.extend_from_slice(&TAIL);
    corecast::fuzzing::max_match_distance(&stream)
        .expect("the server's compressed data is DEFLATE")
        .0
}

#[test]
fn smaller_server_windows_are_agreed_and_compressed_with() {
    let server = compressing_server();
    let mut clients = Vec::new();
    for bits in [8u8, 9, 12, 15] {
        let offer =
            format!("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits={bits}");
        let (mut c, head) = RawClient::connect_with(&server.addr(), "/ws", &[&offer]);
        let want = format!("{AGREED}; server_max_window_bits={bits}");
        assert_eq!(extensions(&head), Some(want), "{head}");
        assert_eq!(recv_json(&mut c).1["type"], "connection_established");
        c.send_frame(FIN | TEXT, br#"{"type":"subscribe","channel":"w"}"#, true);
        assert_eq!(recv_json(&mut c).1["type"], "subscribed");
        clients.push((bits, c));
    }
    // A string that repeats with a period over 4 KiB: a compressor with a
    // window larger than the client's would refer back past it.
    let mut x = 0x2545_f491u32;
    let unit: String = (0..4196)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect();
    let data = json!(unit.repeat(3));
    let before = compressed_frames(&server);
    let mut publisher = server.ws("/ws");
    publisher.send_json(&json!({"type":"publish","channel":"w","data":data}));
    let want = json!({"type":"message","channel":"w","data":data});
    for (bits, c) in &mut clients {
        let frame = loop {
            let frame = next_frame(c);
            if frame.opcode != PING {
                break frame;
            }
        };
        assert!(frame.rsv1, "bits={bits}: {}", describe(&frame));
        let reached = reach(&frame.payload);
        assert!(
            reached <= 1 << *bits,
            "bits={bits}: a match {reached} bytes back"
        );
        let text = inflate(&frame.payload);
        assert_eq!(serde_json::from_slice::<Value>(&text).unwrap(), want);
    }
    // 8 and 9 bits share the 9-bit compressor's copy: three compressions.
    assert_eq!(compressed_frames(&server) - before, 3);
}

/// One publication reaches subscribers wanting eight different forms of it
/// (more than the four a publish keeps inline): /ws JSON and MessagePack,
/// each plain, compressed, and (JSON) compressed with a smaller window;
/// Centrifugo JSON plain and compressed, Centrifugo Protobuf compressed.
/// Each gets its own encoding with the same data, and each form is made
/// once: 3 conversions (MessagePack, the two Centrifugo encodings) and 5
/// compressions (one per compressed encoding and window).
#[test]
fn one_publish_in_every_encoding_and_window_each_form_made_once() {
    let server = server_with(&["--compression", "on", "--compression-min-size", "0"]);
    const DEFLATE: &str = "Sec-WebSocket-Extensions: permessage-deflate";
    const MSGPACK: &str = "Sec-WebSocket-Protocol: corecast.msgpack";
    const PROTOBUF: &str = "Sec-WebSocket-Protocol: centrifuge-protobuf";
    let small_window = "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10";
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Kind {
        Json,
        Msgpack,
        CentrifugoJson,
        CentrifugoProtobuf,
    }
    let wants: [(Kind, &str, &[&str], bool); 8] = [
        (Kind::Json, "/ws", &[], false),
        (Kind::Json, "/ws", &[DEFLATE], true),
        (Kind::Json, "/ws", &[small_window], true),
        (Kind::Msgpack, "/ws", &[MSGPACK], false),
        (Kind::Msgpack, "/ws", &[MSGPACK, DEFLATE], true),
        (Kind::CentrifugoJson, "/connection/websocket", &[], false),
        (
            Kind::CentrifugoJson,
            "/connection/websocket",
            &[DEFLATE],
            true,
        ),
        (
            Kind::CentrifugoProtobuf,
            "/connection/websocket",
            &[PROTOBUF, DEFLATE],
            true,
        ),
    ];
    let channel = "forms";
    let mut clients = Vec::new();
    for (kind, path, headers, compressed) in wants {
        let (mut c, head) = RawClient::connect_with(&server.addr(), path, headers);
        assert_eq!(extensions(&head).is_some(), compressed, "{head}");
        match kind {
            Kind::Json => {
                recv_message(&mut c); // connection_established
                let subscribe = format!(r#"{{"type":"subscribe","channel":"{channel}"}}"#);
                c.send_frame(FIN | TEXT, subscribe.as_bytes(), true);
            }
            Kind::Msgpack => {
                recv_message(&mut c);
                let subscribe = json!({"type": "subscribe", "channel": channel});
                c.send_frame(FIN | BINARY, &crate::msgpack::encode(&subscribe), true);
            }
            Kind::CentrifugoJson => {
                let batch = format!(
                    "{}\n{}",
                    json!({"id": 1, "connect": {}}),
                    json!({"id": 2, "subscribe": {"channel": channel}})
                );
                c.send_frame(FIN | TEXT, batch.as_bytes(), true);
                recv_message(&mut c); // connect result
            }
            Kind::CentrifugoProtobuf => {
                // Command{id:1, connect:{}}, Command{id:2, subscribe:{channel}}.
                let mut batch = vec![4, 0x08, 0x01, 0x22, 0x00];
                let sub = [&[0x0a, channel.len() as u8][..], channel.as_bytes()].concat();
                let cmd = [&[0x08, 0x02, 0x2a, sub.len() as u8][..], &sub].concat();
                batch.push(cmd.len() as u8);
                batch.extend_from_slice(&cmd);
                c.send_frame(FIN | BINARY, &batch, true);
                recv_message(&mut c); // connect result
            }
        }
        recv_message(&mut c); // the subscribe's answer
        clients.push((kind, compressed, c));
    }
    let (compressions, conversions) = (
        compressed_frames(&server),
        crate::msgpack::conversions(&server),
    );
    let data: Value = serde_json::from_str(&json_payload(1024)).unwrap();
    let mut publisher = server.ws("/ws");
    publisher.send_json(&json!({"type": "publish", "channel": channel, "data": data}));
    for (kind, compressed, c) in &mut clients {
        let (was_compressed, payload) = recv_message(c);
        assert_eq!(was_compressed, *compressed, "{kind:?}");
        let got = match kind {
            Kind::Json => serde_json::from_slice::<Value>(&payload).unwrap()["data"].clone(),
            Kind::Msgpack => crate::msgpack::decode(&payload)["data"].clone(),
            Kind::CentrifugoJson => {
                let push: Value = serde_json::from_slice(&payload).unwrap();
                assert_eq!(push["push"]["channel"], channel, "{push}");
                push["push"]["pub"]["data"].clone()
            }
            Kind::CentrifugoProtobuf => {
                // Reply{push:{channel, pub:{data: JSON text}}}: the data's
                // bytes are the frame's tail, before nothing else.
                let text = serde_json::to_vec(&data).unwrap();
                assert!(payload.ends_with(&text), "{kind:?}: the JSON text as bytes");
                data.clone()
            }
        };
        assert_eq!(got, data, "{kind:?} compressed={compressed}");
    }
    assert_eq!(
        compressed_frames(&server) - compressions,
        5,
        "one per compressed form"
    );
    assert_eq!(
        crate::msgpack::conversions(&server) - conversions,
        3,
        "one per encoding"
    );
}
