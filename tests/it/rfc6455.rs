//! RFC 6455 conformance, grouped and numbered the way the Autobahn|Testsuite
//! groups its cases: 1 framing, 2 pings, 3 reserved bits, 4 opcodes,
//! 5 fragmentation, 6 UTF-8, 7 close, 9 limits, 10 miscellaneous.
//!
//! Every case runs against `/echo`, which echoes each text and binary
//! message verbatim. Well-formed traffic goes through tungstenite
//! ([`Client`](crate::harness::Client)); what a library would refuse to
//! send goes through [`RawClient`]. A connection the server fails must get
//! exactly one close frame with the expected code and then see the TCP
//! connection end.

use std::io::{Read, Write};
use std::net::TcpStream;

use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

use crate::harness::{encode_client_frame, upgrade_request, RawClient, RawFrame, TestServer, WAIT};

const CONT: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;
const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;
const RSV2: u8 = 0x20;
const RSV3: u8 = 0x10;
const MIB: usize = 1 << 20;
/// "κόσμε" followed by U+110000 (F4 90 80 80, above the last code point)
/// and "edited": Autobahn's invalid UTF-8 sample.
const KOSME_INVALID: &[u8] = &[
    0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xf4, 0x90, 0x80, 0x80, 0x65,
    0x64, 0x69, 0x74, 0x65, 0x64,
];

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

// 3 Reserved bits: no extension is negotiated, so any RSV bit fails the connection.

#[test]
fn reserved_bits_3_rsv1_on_text_fails_with_1002() {
    fails_with(&server(), FIN | RSV1 | TEXT, b"Hello, World!", 1002);
}

#[test]
fn reserved_bits_3_rsv2_on_text_after_a_valid_message_fails_with_1002() {
    fails_after_echo(&server(), FIN | RSV2 | TEXT, b"Hello, World!");
}

#[test]
fn reserved_bits_3_rsv3_on_text_fails_with_1002() {
    fails_with(&server(), FIN | RSV3 | TEXT, b"Hello, World!", 1002);
}

#[test]
fn reserved_bits_3_rsv1_and_rsv2_on_text_fail_with_1002() {
    fails_with(&server(), FIN | RSV1 | RSV2 | TEXT, b"Hello, World!", 1002);
}

#[test]
fn reserved_bits_3_rsv1_and_rsv3_on_binary_fail_with_1002() {
    fails_with(&server(), FIN | RSV1 | RSV3 | BINARY, &[0, 1, 2, 3], 1002);
}

#[test]
fn reserved_bits_3_rsv2_and_rsv3_on_ping_fail_with_1002() {
    fails_with(&server(), FIN | RSV2 | RSV3 | PING, b"ping", 1002);
}

#[test]
fn reserved_bits_3_all_rsv_bits_on_close_fail_with_1002() {
    fails_with(
        &server(),
        FIN | RSV1 | RSV2 | RSV3 | CLOSE,
        &1000u16.to_be_bytes(),
        1002,
    );
}

#[test]
fn reserved_bits_3_rsv1_on_continuation_fails_with_1002() {
    let server = server();
    let mut c = raw(&server);
    c.send_frame(TEXT, b"frag", true);
    c.send_frame(FIN | RSV1 | CONT, b"ment", true);
    expect_failure(&mut c, 1002);
}

// 4 Opcodes: 3-7 (data) and 0xB-0xF (control) are reserved.

#[test]
fn opcodes_4_reserved_data_opcodes_fail_with_1002() {
    each_opcode_fails_with_1002(3..=7);
}

#[test]
fn opcodes_4_reserved_control_opcodes_fail_with_1002() {
    each_opcode_fails_with_1002(0xB..=0xF);
}

/// Every opcode in `opcodes`, empty and with a payload, each on a fresh
/// connection, is answered with close 1002.
fn each_opcode_fails_with_1002(opcodes: std::ops::RangeInclusive<u8>) {
    let server = server();
    for opcode in opcodes {
        for payload in [&b""[..], b"reserved opcode"] {
            let mut c = raw(&server);
            c.send_frame(FIN | opcode, payload, true);
            expect_close_then_eof(
                &mut c,
                1002,
                &format!("opcode {opcode:#x}, {} bytes", payload.len()),
            );
        }
    }
}

#[test]
fn opcodes_4_reserved_data_opcode_after_a_valid_message_fails_with_1002() {
    fails_after_echo(&server(), FIN | 0x5, b"reserved opcode");
}

#[test]
fn opcodes_4_reserved_control_opcode_after_a_valid_message_fails_with_1002() {
    fails_after_echo(&server(), FIN | 0xD, b"reserved opcode");
}

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

// 6 UTF-8 handling in text messages and close reasons.

#[test]
fn utf8_6_valid_multibyte_text_is_echoed() {
    let server = server();
    let mut c = server.ws("/echo");
    for text in [
        "κόσμε",
        "Hello-µ@ßöäüàá-UTF-8!!",
        "日本語のテキスト",
        "𝄞 G clef, 🎉 party",
        "\u{feff}BOM",
    ] {
        c.send_text(text);
        assert_eq!(c.recv_text(), text);
    }
}

#[test]
fn utf8_6_boundary_code_points_are_echoed() {
    let server = server();
    let mut c = server.ws("/echo");
    let samples = [
        "\u{0}", "\u{7f}", "\u{80}", "\u{7ff}", "\u{800}", "\u{d7ff}", "\u{e000}", "\u{fffd}",
        "\u{ffff}",
    ];
    for text in samples.into_iter().chain(["\u{10000}", "\u{10ffff}"]) {
        c.send_text(text);
        assert_eq!(
            c.recv_text(),
            text,
            "code point {:#x}",
            text.chars().next().unwrap() as u32
        );
    }
}

#[test]
fn utf8_6_invalid_text_fails_with_1007() {
    let server = server();
    for (what, bytes) in invalid_utf8_samples() {
        let mut c = raw(&server);
        c.send_frame(FIN | TEXT, bytes, true);
        expect_close_then_eof(&mut c, 1007, what);
    }
}

#[test]
fn utf8_6_invalid_text_in_fragments_fails_with_1007() {
    let server = server();
    for (what, bytes) in invalid_utf8_samples() {
        let mut c = raw(&server);
        c.send_raw(&one_byte_fragments(TEXT, bytes));
        expect_close_then_eof(&mut c, 1007, &format!("{what}, in 1-byte fragments"));
    }
}

#[test]
fn utf8_6_invalid_utf8_fails_in_the_first_fragment_before_the_last_is_sent() {
    let server = server();
    let mut c = raw(&server);
    // κόσμε, then F4 90 (already invalid: F4 allows only 80-8F next).
    c.send_frame(TEXT, &KOSME_INVALID[..13], true);
    expect_failure(&mut c, 1007);
}

#[test]
fn utf8_6_invalid_utf8_fails_in_a_middle_fragment_before_the_last_is_sent() {
    let server = server();
    let mut c = raw(&server);
    c.send_frame(TEXT, &KOSME_INVALID[..11], true);
    c.send_frame(CONT, &KOSME_INVALID[11..15], true);
    expect_failure(&mut c, 1007);
}

#[test]
fn utf8_6_cut_code_point_continued_by_a_non_continuation_byte_fails_early() {
    let server = server();
    let mut c = raw(&server);
    c.send_frame(TEXT, &[b'a', 0xce], true);
    c.send_frame(CONT, b"b", true);
    expect_failure(&mut c, 1007);
}

#[test]
fn utf8_6_code_point_split_across_fragments_is_echoed() {
    let server = server();
    let mut c = raw(&server);
    c.send_frame(TEXT, &[0xce], true);
    c.send_frame(FIN | CONT, &[0xba], true);
    expect_frame(&mut c, TEXT, "κ".as_bytes());
    let clef = "𝄞".as_bytes();
    c.send_raw(&one_byte_fragments(TEXT, clef));
    expect_frame(&mut c, TEXT, clef);
    let text = "Hello-µ@ßöäüàá-UTF-8!!".as_bytes();
    c.send_raw(&one_byte_fragments(TEXT, text));
    expect_frame(&mut c, TEXT, text);
}

#[test]
fn utf8_6_code_point_cut_by_the_final_fragment_fails_with_1007() {
    let server = server();
    let mut c = raw(&server);
    c.send_frame(TEXT, b"ok so far ", true);
    c.send_frame(FIN | CONT, &[0xf0, 0x9d, 0x84], true);
    expect_failure(&mut c, 1007);
}

#[test]
fn utf8_6_binary_messages_are_not_checked_for_utf8() {
    let server = server();
    let mut c = raw(&server);
    c.send_frame(FIN | BINARY, KOSME_INVALID, true);
    expect_frame(&mut c, BINARY, KOSME_INVALID);
}

// 7 Close handshake.

#[test]
fn close_7_valid_codes_are_echoed_then_tcp_is_closed() {
    let server = server();
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ] {
        let mut c = raw(&server);
        c.send_frame(FIN | CLOSE, &code.to_be_bytes(), true);
        expect_close_then_eof(&mut c, code, &format!("code {code}"));
    }
}

#[test]
fn close_7_close_with_a_reason_is_echoed_with_its_code() {
    let server = server();
    let mut c = raw(&server);
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice("goodbye, κόσμε".as_bytes());
    c.send_frame(FIN | CLOSE, &payload, true);
    assert_eq!(c.expect_close(), 1000);
    c.expect_eof();
}

#[test]
fn close_7_close_with_a_123_byte_reason_is_echoed() {
    let server = server();
    let mut c = raw(&server);
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(text_payload(123).as_bytes());
    c.send_frame(FIN | CLOSE, &payload, true);
    assert_eq!(c.expect_close(), 1000);
    c.expect_eof();
}

#[test]
fn close_7_empty_close_is_answered_with_an_empty_close() {
    let server = server();
    let mut c = raw(&server);
    c.send_frame(FIN | CLOSE, b"", true);
    expect_frame(&mut c, CLOSE, b"");
    c.expect_eof();
}

#[test]
fn close_7_tungstenite_close_handshake_completes() {
    let server = server();
    let mut c = server.ws("/echo");
    let frame = CloseFrame {
        code: 1000.into(),
        reason: "done".into(),
    };
    c.ws.close(Some(frame)).expect("send close");
    assert_eq!(c.expect_close(), 1000);
    match c.ws.read() {
        Err(tungstenite::Error::ConnectionClosed) => {}
        other => panic!("expected the connection to be closed, got {other:?}"),
    }
}

#[test]
fn close_7_one_byte_close_payload_fails_with_1002() {
    fails_with(&server(), FIN | CLOSE, &[0x03], 1002);
}

#[test]
fn close_7_close_payload_over_125_bytes_fails_with_1002() {
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(text_payload(124).as_bytes());
    fails_with(&server(), FIN | CLOSE, &payload, 1002);
}

#[test]
fn close_7_invalid_codes_fail_with_1002() {
    let server = server();
    let codes = [
        0u16, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ];
    for code in codes {
        let mut c = raw(&server);
        c.send_frame(FIN | CLOSE, &code.to_be_bytes(), true);
        expect_close_then_eof(&mut c, 1002, &format!("close code {code}"));
    }
}

#[test]
fn close_7_close_reason_with_invalid_utf8_fails_with_1007() {
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(KOSME_INVALID);
    fails_with(&server(), FIN | CLOSE, &payload, 1007);
}

#[test]
fn close_7_message_sent_before_close_is_echoed_before_the_close_reply() {
    let server = server();
    let mut c = raw(&server);
    let mut bytes = encode_client_frame(FIN | TEXT, b"last words", true);
    bytes.extend(encode_client_frame(
        FIN | CLOSE,
        &1000u16.to_be_bytes(),
        true,
    ));
    c.send_raw(&bytes);
    expect_frame(&mut c, TEXT, b"last words");
    expect_close_then_eof(&mut c, 1000, "");
}

#[test]
fn close_7_frames_after_the_clients_close_are_ignored() {
    let server = server();
    let mut c = raw(&server);
    let mut bytes = encode_client_frame(FIN | CLOSE, &1000u16.to_be_bytes(), true);
    bytes.extend(encode_client_frame(FIN | TEXT, b"too late", true));
    bytes.extend(encode_client_frame(FIN | PING, b"too late", true));
    c.send_raw(&bytes);
    expect_close_then_eof(&mut c, 1000, "");
}

#[test]
fn close_7_close_between_fragments_is_echoed_and_the_message_dropped() {
    let server = server();
    let mut c = raw(&server);
    let mut bytes = encode_client_frame(TEXT, b"frag", true);
    bytes.extend(encode_client_frame(
        FIN | CLOSE,
        &1000u16.to_be_bytes(),
        true,
    ));
    bytes.extend(encode_client_frame(FIN | CONT, b"ment", true));
    c.send_raw(&bytes);
    expect_close_then_eof(&mut c, 1000, "");
}

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

// Helpers.

/// A one-shard server (startup is cheaper and the cases are per-connection).
fn server() -> TestServer {
    server_with(&[])
}

fn server_with(args: &[&str]) -> TestServer {
    let mut all = vec!["--shards", "1"];
    all.extend_from_slice(args);
    TestServer::start(&all)
}

fn raw(server: &TestServer) -> RawClient {
    RawClient::connect(&server.addr(), "/echo")
}

/// Sends `len` bytes of text through tungstenite and expects them back.
fn assert_text_echo(len: usize) {
    let server = server();
    let mut c = server.ws("/echo");
    let text = text_payload(len);
    c.send_text(&text);
    let echoed = c.recv_text();
    assert!(
        echoed == text,
        "echo of {len} bytes differs ({} bytes back)",
        echoed.len()
    );
}

/// Sends `len` bytes of binary through tungstenite and expects them back.
fn assert_binary_echo(len: usize) {
    let server = server();
    let mut c = server.ws("/echo");
    let payload = binary_payload(len);
    c.ws.send(Message::binary(payload.clone()))
        .expect("send binary");
    let echoed = c.recv_binary();
    assert!(
        echoed == payload,
        "echo of {len} bytes differs ({} bytes back)",
        echoed.len()
    );
}

/// Connects, sends one frame and expects the server to fail the connection.
fn fails_with(server: &TestServer, b0: u8, payload: &[u8], code: u16) {
    let mut c = raw(server);
    c.send_frame(b0, payload, true);
    expect_failure(&mut c, code);
}

/// Sends a valid text message, the bad frame and a ping in one write: the
/// message is echoed, then the connection fails with 1002 and the ping,
/// which came after the violation, is not answered.
fn fails_after_echo(server: &TestServer, b0: u8, payload: &[u8]) {
    let mut c = raw(server);
    let mut bytes = encode_client_frame(FIN | TEXT, b"valid first", true);
    bytes.extend(encode_client_frame(b0, payload, true));
    bytes.extend(encode_client_frame(FIN | PING, b"never answered", true));
    c.send_raw(&bytes);
    expect_frame(&mut c, TEXT, b"valid first");
    expect_failure(&mut c, 1002);
}

/// The server fails the connection with `code` (see [`expect_close_then_eof`]).
fn expect_failure(c: &mut RawClient, code: u16) {
    expect_close_then_eof(c, code, "");
}

/// The very next frame is a close with `code`, and then the server ends
/// the TCP connection without sending anything else; `case` names the
/// case in a failure message.
fn expect_close_then_eof(c: &mut RawClient, code: u16, case: &str) {
    let frame = c
        .read_frame()
        .unwrap_or_else(|| panic!("{case}: TCP closed, expected close {code}"));
    assert!(
        frame.fin && frame.opcode == CLOSE,
        "{case}: expected close {code}, got {}",
        describe(&frame)
    );
    assert_eq!(
        close_code(&frame),
        Some(code),
        "{case}: {}",
        describe(&frame)
    );
    c.expect_eof();
}

/// The next frame is an unfragmented frame with `opcode` and `payload`.
fn expect_frame(c: &mut RawClient, opcode: u8, payload: &[u8]) {
    let frame = next_frame(c);
    let ok = frame.fin && frame.opcode == opcode && frame.payload == payload;
    assert!(
        ok,
        "expected FIN opcode {opcode:#x} with {} bytes, got {}",
        payload.len(),
        describe(&frame)
    );
}

fn next_frame(c: &mut RawClient) -> RawFrame {
    c.read_frame().expect("server closed TCP, expected a frame")
}

/// The status code of a close frame; None for other frames or an empty close.
fn close_code(frame: &RawFrame) -> Option<u16> {
    let is_close = frame.opcode == CLOSE && frame.payload.len() >= 2;
    is_close.then(|| u16::from_be_bytes([frame.payload[0], frame.payload[1]]))
}

/// A frame summary that stays short for megabyte payloads.
fn describe(frame: &RawFrame) -> String {
    let shown = &frame.payload[..frame.payload.len().min(40)];
    let code = close_code(frame)
        .map(|c| format!(" code {c}"))
        .unwrap_or_default();
    format!(
        "fin={} opcode={:#x}{code} {} bytes starting {:?}",
        frame.fin,
        frame.opcode,
        frame.payload.len(),
        String::from_utf8_lossy(shown)
    )
}

/// ASCII text of `len` bytes that is not one repeated byte.
fn text_payload(len: usize) -> String {
    (0..len)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect()
}

/// `len` bytes covering every byte value.
fn binary_payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 256) as u8).collect()
}

/// `payload` as one message of `opcode` cut into 1-byte fragments.
fn one_byte_fragments(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let last = payload.len().saturating_sub(1);
    let mut out = Vec::new();
    for (i, byte) in payload.iter().enumerate() {
        let b0 = match (i == 0, i == last) {
            (true, true) => FIN | opcode,
            (true, false) => opcode,
            (false, true) => FIN | CONT,
            (false, false) => CONT,
        };
        out.extend(encode_client_frame(b0, &[*byte], true));
    }
    out
}

/// Invalid UTF-8, each with what is wrong with it.
fn invalid_utf8_samples() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("code point above U+10FFFF", KOSME_INVALID),
        ("lone continuation byte", &[b'a', 0x80, b'b']),
        ("overlong encoding of '/'", &[0xc0, 0xaf]),
        ("overlong 3-byte NUL", &[0xe0, 0x80, 0x80]),
        ("UTF-16 surrogate U+D800", &[0xed, 0xa0, 0x80]),
        ("byte 0xFE", &[b'x', 0xfe]),
        ("byte 0xFF", &[0xff]),
        ("5-byte sequence", &[0xf8, 0x88, 0x80, 0x80, 0x80]),
        ("sequence cut at the end", &[b'o', b'k', 0xe2, 0x82]),
    ]
}

/// Reads the HTTP response head and then exactly `n` more bytes.
fn read_head_and(stream: &mut TcpStream, n: usize) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if buf.len() >= end + 4 + n {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                return (head, buf[end + 4..].to_vec());
            }
        }
        let read = stream.read(&mut chunk).expect("read (timed out?)");
        assert!(
            read > 0,
            "server closed TCP; got so far: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..read]);
    }
}
