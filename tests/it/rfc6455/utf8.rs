//! Autobahn 6: UTF-8 validation of text messages and close reasons.

use super::{
    encode_client_frame, expect_close_then_eof, expect_failure, expect_frame, invalid_utf8_samples,
    one_byte_fragments, raw, server, BINARY, CONT, FIN, KOSME_INVALID, TEXT,
};

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

/// Autobahn 6.4.3/6.4.4: one unfragmented text frame arrives in chops; the
/// chop carrying an invalid sequence fails the connection at once, while
/// the frame's last bytes are still to come.
#[test]
fn utf8_6_invalid_utf8_fails_in_a_frame_that_has_not_fully_arrived() {
    let server = server();
    let frame = encode_client_frame(FIN | TEXT, KOSME_INVALID, true);
    // Header (2 bytes + mask), then κόσμε, then F4 90 (invalid already).
    let header = frame.len() - KOSME_INVALID.len();
    let mut c = raw(&server);
    c.send_raw(&frame[..header + 11]);
    c.send_raw(&frame[header + 11..header + 13]);
    expect_failure(&mut c, 1007);
}

/// The same for a continuation frame, whose first byte completes (or here,
/// breaks) a sequence the previous fragment cut.
#[test]
fn utf8_6_cut_code_point_broken_in_a_continuation_that_has_not_fully_arrived() {
    let server = server();
    let mut c = raw(&server);
    c.send_frame(TEXT, &[b'a', 0xce], true);
    let cont = encode_client_frame(FIN | CONT, b"bcdefgh", true);
    c.send_raw(&cont[..cont.len() - 6]);
    expect_failure(&mut c, 1007);
}

/// Checking a frame before it has fully arrived must not reject valid text
/// whose code points are cut by the chops.
#[test]
fn utf8_6_valid_text_arriving_byte_by_byte_is_echoed() {
    let server = server();
    let mut c = raw(&server);
    let text = "κόσμε 𝄞 日本語".as_bytes();
    c.send_frame(TEXT, &text[..1], true);
    let rest = encode_client_frame(FIN | CONT, &text[1..], true);
    // The pauses pace the bytes so the server reads them one at a time;
    // nothing is awaited (the server has no signal for "read a byte").
    for byte in rest.chunks(1) {
        c.send_raw(byte);
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    expect_frame(&mut c, TEXT, text);
    let frame = encode_client_frame(FIN | TEXT, text, true);
    for byte in frame.chunks(1) {
        c.send_raw(byte);
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    expect_frame(&mut c, TEXT, text);
}
