//! Autobahn 5: fragmented messages.

use crate::harness::encode_client_frame;

use super::{
    binary_payload, expect_close_then_eof, expect_frame, fails_after_echo, one_byte_fragments, raw,
    server, text_payload, BINARY, CLOSE, CONT, FIN, PING, PONG, TEXT,
};

// 5 Fragmentation.

#[test]
fn fragmentation_5_fragmented_text_is_echoed_as_one_message() {
    let server = server();
    let mut c = raw(&server);
    c.send_frame(TEXT, b"Hello", true);
    c.send_frame(CONT, b", ", true);
    c.send_frame(FIN | CONT, b"World!", true);
    expect_frame(&mut c, TEXT, b"Hello, World!");
}

#[test]
fn fragmentation_5_fragmented_binary_is_echoed_as_one_message() {
    let server = server();
    let mut c = raw(&server);
    let payload = binary_payload(1000);
    c.send_frame(BINARY, &payload[..10], true);
    c.send_frame(CONT, &payload[10..500], true);
    c.send_frame(FIN | CONT, &payload[500..], true);
    expect_frame(&mut c, BINARY, &payload);
}

#[test]
fn fragmentation_5_empty_fragments_are_allowed() {
    let server = server();
    let mut c = raw(&server);
    c.send_frame(TEXT, b"", true);
    c.send_frame(CONT, b"middle", true);
    c.send_frame(FIN | CONT, b"", true);
    expect_frame(&mut c, TEXT, b"middle");
    c.send_frame(BINARY, b"", true);
    c.send_frame(FIN | CONT, b"", true);
    expect_frame(&mut c, BINARY, b"");
}

#[test]
fn fragmentation_5_ping_between_fragments_in_one_write_is_answered_first() {
    let server = server();
    let mut c = raw(&server);
    let mut bytes = encode_client_frame(TEXT, b"frag", true);
    bytes.extend(encode_client_frame(FIN | PING, b"in between", true));
    bytes.extend(encode_client_frame(FIN | CONT, b"ment", true));
    c.send_raw(&bytes);
    expect_frame(&mut c, PONG, b"in between");
    expect_frame(&mut c, TEXT, b"fragment");
}

#[test]
fn fragmentation_5_ping_between_fragments_is_answered_before_the_last_fragment_is_sent() {
    let server = server();
    let mut c = raw(&server);
    c.send_frame(BINARY, b"frag", true);
    c.send_frame(FIN | PING, b"first", true);
    expect_frame(&mut c, PONG, b"first");
    c.send_frame(CONT, b"me", true);
    c.send_frame(FIN | PING, b"second", true);
    expect_frame(&mut c, PONG, b"second");
    c.send_frame(FIN | CONT, b"nt", true);
    expect_frame(&mut c, BINARY, b"fragment");
}

#[test]
fn fragmentation_5_continuation_with_nothing_to_continue_fails_with_1002() {
    let server = server();
    for b0 in [FIN | CONT, CONT] {
        let mut c = raw(&server);
        c.send_frame(b0, b"nothing to continue", true);
        expect_close_then_eof(&mut c, 1002, &format!("first byte {b0:#04x}"));
    }
}

#[test]
fn fragmentation_5_continuation_after_a_finished_message_fails_with_1002() {
    fails_after_echo(&server(), FIN | CONT, b"late continuation");
}

#[test]
fn fragmentation_5_new_data_frame_inside_a_fragmented_message_fails_with_1002() {
    let server = server();
    for b0 in [FIN | TEXT, TEXT, FIN | BINARY, BINARY] {
        let mut c = raw(&server);
        c.send_frame(TEXT, b"started", true);
        c.send_frame(b0, b"interloper", true);
        expect_close_then_eof(&mut c, 1002, &format!("first byte {b0:#04x}"));
    }
}

#[test]
fn fragmentation_5_fragmented_control_frame_fails_with_1002() {
    let server = server();
    let cases: [(u8, &[u8]); 3] = [(PING, b"ping"), (PONG, b"pong"), (CLOSE, &[0x03, 0xe8])];
    for (opcode, payload) in cases {
        let mut c = raw(&server);
        c.send_frame(opcode, payload, true);
        c.send_frame(FIN | CONT, b"rest", true);
        expect_close_then_eof(&mut c, 1002, &format!("opcode {opcode:#x} without FIN"));
    }
}

#[test]
fn fragmentation_5_many_one_byte_fragments_are_echoed_as_one_message() {
    let server = server();
    let mut c = raw(&server);
    let text = text_payload(2000);
    c.send_raw(&one_byte_fragments(TEXT, text.as_bytes()));
    expect_frame(&mut c, TEXT, text.as_bytes());
    let payload = binary_payload(2000);
    c.send_raw(&one_byte_fragments(BINARY, &payload));
    expect_frame(&mut c, BINARY, &payload);
}
