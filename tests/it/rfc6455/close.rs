//! Autobahn 7: the close handshake.

use tungstenite::protocol::CloseFrame;

use crate::harness::encode_client_frame;

use super::{
    expect_close_then_eof, expect_frame, fails_with, raw, server, text_payload, CLOSE, CONT, FIN,
    KOSME_INVALID, PING, TEXT,
};

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
