//! Autobahn 10: everything else (masking, bursts, split writes).

use std::io::Write;
use std::net::TcpStream;

use crate::harness::{encode_client_frame, upgrade_request, WAIT};

use super::{
    binary_payload, expect_close_then_eof, expect_frame, raw, read_head_and, server, BINARY, CLOSE,
    FIN, PING, TEXT,
};

// 10 Miscellaneous.

#[test]
fn misc_10_unmasked_client_frames_fail_with_1002() {
    let server = server();
    let cases: [(u8, &[u8]); 4] = [
        (TEXT, b"unmasked"),
        (BINARY, &[1, 2, 3]),
        (PING, b"unmasked"),
        (CLOSE, &[0x03, 0xe8]),
    ];
    for (opcode, payload) in cases {
        let mut c = raw(&server);
        c.send_frame(FIN | opcode, payload, false);
        expect_close_then_eof(&mut c, 1002, &format!("unmasked opcode {opcode:#x}"));
    }
}

#[test]
fn misc_10_burst_of_100_messages_in_one_write_is_echoed_in_order() {
    let server = server();
    let mut c = raw(&server);
    let messages: Vec<(u8, Vec<u8>)> = (0..100usize)
        .map(|i| match i % 2 {
            0 => (TEXT, format!("message {i}").into_bytes()),
            _ => (BINARY, binary_payload(i * 3)),
        })
        .collect();
    let burst: Vec<u8> = messages
        .iter()
        .flat_map(|(op, p)| encode_client_frame(FIN | op, p, true))
        .collect();
    c.send_raw(&burst);
    for (opcode, payload) in &messages {
        expect_frame(&mut c, *opcode, payload);
    }
}

#[test]
fn misc_10_frames_in_the_same_segment_as_the_handshake_are_processed() {
    let server = server();
    let mut bytes = upgrade_request("/echo").into_bytes();
    bytes.extend(encode_client_frame(FIN | TEXT, b"early bird", true));
    bytes.extend(encode_client_frame(FIN | PING, b"early ping", true));
    let mut stream = TcpStream::connect(server.addr()).expect("tcp connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .write_all(&bytes)
        .expect("write handshake and frames");
    let mut expected = vec![0x81, 10];
    expected.extend_from_slice(b"early bird");
    expected.extend_from_slice(&[0x8a, 10]);
    expected.extend_from_slice(b"early ping");
    let (head, rest) = read_head_and(&mut stream, expected.len());
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(rest, expected, "echo and pong after the 101 response");
}

#[test]
fn misc_10_frame_written_one_byte_at_a_time_is_echoed() {
    let server = server();
    let mut c = raw(&server);
    let text = "split across many writes: κόσμε".as_bytes();
    for byte in encode_client_frame(FIN | TEXT, text, true) {
        c.send_raw(&[byte]);
    }
    expect_frame(&mut c, TEXT, text);
}
