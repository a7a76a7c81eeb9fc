//! Autobahn 3 and 4: reserved bits and reserved opcodes.

use super::{
    expect_close_then_eof, expect_failure, fails_after_echo, fails_with, raw, server, BINARY,
    CLOSE, CONT, FIN, PING, RSV1, RSV2, RSV3, TEXT,
};

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
