//! Autobahn 1 and 2: framing at every length encoding, and pings.

use crate::harness::encode_client_frame;

use super::{
    assert_binary_echo, assert_text_echo, binary_payload, expect_frame, fails_with, raw, server,
    BINARY, FIN, MIB, PING, PONG, TEXT,
};

// 1 Framing: text and binary messages of every length encoding.

#[test]
fn framing_1_empty_text_is_echoed() {
    assert_text_echo(0);
}

#[test]
fn framing_1_text_of_125_bytes_is_echoed() {
    assert_text_echo(125);
}

#[test]
fn framing_1_text_of_126_bytes_is_echoed() {
    assert_text_echo(126);
}

#[test]
fn framing_1_text_of_65535_bytes_is_echoed() {
    assert_text_echo(65535);
}

#[test]
fn framing_1_text_of_65536_bytes_is_echoed() {
    assert_text_echo(65536);
}

#[test]
fn framing_1_text_of_1_mib_is_echoed() {
    assert_text_echo(MIB);
}

#[test]
fn framing_1_empty_binary_is_echoed() {
    assert_binary_echo(0);
}

#[test]
fn framing_1_binary_of_125_bytes_is_echoed() {
    assert_binary_echo(125);
}

#[test]
fn framing_1_binary_of_126_bytes_is_echoed() {
    assert_binary_echo(126);
}

#[test]
fn framing_1_binary_of_65535_bytes_is_echoed() {
    assert_binary_echo(65535);
}

#[test]
fn framing_1_binary_of_65536_bytes_is_echoed() {
    assert_binary_echo(65536);
}

#[test]
fn framing_1_binary_of_1_mib_is_echoed() {
    assert_binary_echo(MIB);
}

#[test]
fn framing_1_echo_is_one_unfragmented_server_frame() {
    let server = server();
    let mut c = raw(&server);
    c.send_frame(FIN | TEXT, b"Hello, World!", true);
    expect_frame(&mut c, TEXT, b"Hello, World!");
    let payload = binary_payload(300);
    c.send_frame(FIN | BINARY, &payload, true);
    expect_frame(&mut c, BINARY, &payload);
}

// 2 Pings and pongs.

#[test]
fn pings_2_ping_is_answered_with_pong_carrying_the_same_payload() {
    let server = server();
    let mut c = raw(&server);
    c.send_frame(FIN | PING, b"Hello, World!", true);
    expect_frame(&mut c, PONG, b"Hello, World!");
}

#[test]
fn pings_2_empty_ping_is_answered_with_empty_pong() {
    let server = server();
    let mut c = raw(&server);
    c.send_frame(FIN | PING, b"", true);
    expect_frame(&mut c, PONG, b"");
}

#[test]
fn pings_2_ping_with_binary_payload_is_answered_verbatim() {
    let server = server();
    let mut c = raw(&server);
    let payload = [0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff];
    c.send_frame(FIN | PING, &payload, true);
    expect_frame(&mut c, PONG, &payload);
}

#[test]
fn pings_2_ping_of_125_bytes_is_answered() {
    let server = server();
    let mut c = raw(&server);
    let payload = binary_payload(125);
    c.send_frame(FIN | PING, &payload, true);
    expect_frame(&mut c, PONG, &payload);
}

#[test]
fn pings_2_ping_of_126_bytes_fails_with_1002() {
    let server = server();
    fails_with(&server, FIN | PING, &binary_payload(126), 1002);
}

#[test]
fn pings_2_unsolicited_pong_is_ignored() {
    let server = server();
    let mut c = raw(&server);
    c.send_frame(FIN | PONG, b"unsolicited", true);
    c.send_frame(FIN | TEXT, b"after the pong", true);
    expect_frame(&mut c, TEXT, b"after the pong");
}

#[test]
fn pings_2_ten_pings_in_one_write_are_answered_in_order() {
    let server = server();
    let mut c = raw(&server);
    let pings: Vec<u8> = (0..10u8)
        .flat_map(|i| encode_client_frame(FIN | PING, &[i; 3], true))
        .collect();
    c.send_raw(&pings);
    for i in 0..10u8 {
        expect_frame(&mut c, PONG, &[i; 3]);
    }
}
