//! Autobahn 9: message size limits.

use tungstenite::Message;

use super::{
    binary_payload, expect_failure, expect_frame, fails_with, raw, server, server_with,
    text_payload, BINARY, CONT, FIN, MIB, PING, PONG, TEXT,
};

// 9 Limits: --max-message-size (default 1 MiB) is inclusive.

#[test]
fn limits_9_one_frame_of_exactly_the_default_limit_is_echoed() {
    let server = server();
    let mut c = raw(&server);
    let payload = binary_payload(MIB);
    c.send_frame(FIN | BINARY, &payload, true);
    expect_frame(&mut c, BINARY, &payload);
}

#[test]
fn limits_9_fragments_summing_to_exactly_the_default_limit_are_echoed() {
    let server = server();
    let mut c = raw(&server);
    let payload = binary_payload(MIB);
    c.send_frame(BINARY, &payload[..MIB / 2], true);
    c.send_frame(FIN | CONT, &payload[MIB / 2..], true);
    expect_frame(&mut c, BINARY, &payload);
}

#[test]
fn limits_9_one_frame_one_byte_over_the_default_limit_fails_with_1009() {
    fails_with(&server(), FIN | BINARY, &binary_payload(MIB + 1), 1009);
}

#[test]
fn limits_9_oversized_frame_fails_on_its_header_before_the_payload_arrives() {
    let server = server();
    let mut c = raw(&server);
    let mut header = vec![FIN | TEXT, 0x80 | 127];
    header.extend_from_slice(&(MIB as u64 + 1).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    c.send_raw(&header);
    expect_failure(&mut c, 1009);
}

#[test]
fn limits_9_fragments_summing_over_the_default_limit_fail_with_1009() {
    let server = server();
    let mut c = raw(&server);
    let payload = binary_payload(MIB / 2);
    c.send_frame(BINARY, &payload, true);
    c.send_frame(CONT, &payload, true);
    c.send_frame(FIN | CONT, b"!", true);
    expect_failure(&mut c, 1009);
}

#[test]
fn limits_9_custom_limit_accepts_a_message_of_exactly_that_size() {
    let server = server_with(&["--max-message-size", "1000"]);
    let mut c = server.ws("/echo");
    let text = text_payload(1000);
    c.send_text(&text);
    assert_eq!(c.recv_text(), text);
    let payload = binary_payload(1000);
    c.ws.send(Message::binary(payload.clone()))
        .expect("send binary");
    assert_eq!(c.recv_binary(), payload);
}

#[test]
fn limits_9_custom_limit_fails_a_text_message_one_byte_over_with_1009() {
    let server = server_with(&["--max-message-size", "1000"]);
    fails_with(&server, FIN | TEXT, text_payload(1001).as_bytes(), 1009);
}

#[test]
fn limits_9_custom_limit_fails_a_binary_message_one_byte_over_with_1009() {
    let server = server_with(&["--max-message-size", "1000"]);
    fails_with(&server, FIN | BINARY, &binary_payload(1001), 1009);
}

#[test]
fn limits_9_custom_limit_counts_every_fragment() {
    let server = server_with(&["--max-message-size", "1000"]);
    let payload = binary_payload(1001);
    let mut c = raw(&server);
    c.send_frame(BINARY, &payload[..500], true);
    c.send_frame(FIN | CONT, &payload[500..1000], true);
    expect_frame(&mut c, BINARY, &payload[..1000]);
    c.send_frame(BINARY, &payload[..500], true);
    c.send_frame(FIN | CONT, &payload[500..], true);
    expect_failure(&mut c, 1009);
}

#[test]
fn limits_9_control_frames_are_not_bound_by_the_message_limit() {
    let server = server_with(&["--max-message-size", "10"]);
    let mut c = raw(&server);
    let payload = binary_payload(125);
    c.send_frame(FIN | PING, &payload, true);
    expect_frame(&mut c, PONG, &payload);
}
