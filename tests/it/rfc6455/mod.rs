//! RFC 6455 conformance, grouped and numbered the way the Autobahn|Testsuite
//! groups its cases: 1 framing, 2 pings, 3 reserved bits, 4 opcodes,
//! 5 fragmentation, 6 UTF-8, 7 close, 9 limits, 10 miscellaneous. The
//! suite itself runs in `scripts/autobahn.sh` (docs/conformance.md); these
//! cases keep the behaviours it found fixed within `cargo test`.
//!
//! Every case runs against `/echo`, which echoes each text and binary
//! message verbatim. Well-formed traffic goes through tungstenite
//! ([`Client`](crate::harness::Client)); what a library would refuse to
//! send goes through [`RawClient`]. A connection the server fails must get
//! exactly one close frame with the expected code and then see the TCP
//! connection end.

mod close;
mod deflate;
mod fragmentation;
mod framing;
mod limits;
mod misc;
mod reserved;
mod utf8;

use std::io::Read;
use std::net::TcpStream;

use tungstenite::Message;

use crate::harness::{encode_client_frame, RawClient, RawFrame, TestServer};

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
