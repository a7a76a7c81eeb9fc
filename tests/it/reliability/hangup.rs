//! A client whose last bytes and FIN arrive together (one epoll edge) is
//! released at once, wherever the connection is: handshake, serving, or
//! closing after a protocol failure. The server runs with timers far past
//! the test's bound, so only the hang-up itself can release it in time.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;

use super::{open_fds, websockets, RELEASE_WITHIN};
use crate::harness::{encode_client_frame, RawClient, TestServer};

/// Timers long enough that none of them can release a connection in time.
const SLOW_TIMERS: &[&str] = &[
    "--ping-interval",
    "60s",
    "--pong-timeout",
    "120s",
    "--close-timeout",
    "60s",
    "--handshake-timeout",
    "60s",
];

/// Writes `bytes` and the FIN in one segment: TCP_CORK holds the bytes
/// back, and the shutdown sets FIN on the held segment, so the server's
/// kernel reports data and hang-up in one event.
fn write_with_fin(stream: &mut TcpStream, bytes: &[u8]) {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt on our own open socket with a valid int option.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "TCP_CORK");
    stream.write_all(bytes).expect("write");
    stream.shutdown(Shutdown::Write).expect("shutdown");
}

fn text_frame(text: &str) -> Vec<u8> {
    encode_client_frame(0x81, text.as_bytes(), true)
}

/// Opens `n` upgraded /ws connections, then has each send `last` with its
/// FIN; every one must be released within the bound.
fn released_after(last: &[u8], n: usize) {
    let server = TestServer::start(SLOW_TIMERS);
    let mut clients: Vec<RawClient> = (0..n)
        .map(|_| {
            let mut client = RawClient::connect(&server.addr(), "/ws");
            // The greeting is queued after the connection is registered
            // (the 101 can be read before that).
            let hello = client.read_frame().expect("connection_established");
            assert_eq!(hello.opcode, 1, "{hello:?}");
            client
        })
        .collect();
    assert_eq!(websockets(&server), n as u64, "all upgraded");
    for client in &mut clients {
        write_with_fin(&mut client.stream, last);
    }
    // The server logs each close once the connection is released.
    let released = server.wait_for_log_count("closed conn=", n, RELEASE_WITHIN);
    assert!(
        released.is_some(),
        "not all {n} connections released within {RELEASE_WITHIN:?}:\n{}",
        server.log_text()
    );
    assert_eq!(websockets(&server), 0, "released connections still counted");
}

#[test]
fn frame_and_fin_together_release_the_connection_at_once() {
    released_after(&text_frame(r#"{"type":"heartbeat"}"#), 1);
}

#[test]
fn close_frame_and_fin_together_release_the_connection_at_once() {
    released_after(&encode_client_frame(0x88, &1000u16.to_be_bytes(), true), 1);
}

#[test]
fn protocol_violation_and_fin_together_release_the_connection_at_once() {
    // Unmasked: 1002, after which the server reads until the client's EOF.
    released_after(&encode_client_frame(0x81, b"x", false), 1);
}

#[test]
fn oversized_frame_and_fin_together_release_the_connection_at_once() {
    // A header announcing more than --max-message-size: 1009.
    let mut frame = vec![0x82, 0x80 | 127];
    frame.extend_from_slice(&(1u64 << 40).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    released_after(&frame, 1);
}

#[test]
fn sixty_clients_hanging_up_at_once_are_all_released() {
    released_after(&text_frame(r#"{"type":"heartbeat"}"#), 60);
}

#[test]
fn half_request_head_and_fin_together_release_the_socket_at_once() {
    let server = TestServer::start(SLOW_TIMERS);
    let baseline = open_fds(&server);
    let mut streams: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(server.addr()).expect("connect"))
        .collect();
    for stream in &mut streams {
        write_with_fin(stream, b"GET /ws HTTP/1.1\r\nHost: te");
    }
    // The server logs this line after closing each socket.
    let closed = server.wait_for_log_count("socket closed without upgrade", 20, RELEASE_WITHIN);
    assert!(
        closed.is_some(),
        "not all 20 handshaking sockets closed within {RELEASE_WITHIN:?}:\n{}",
        server.log_text()
    );
    assert_eq!(open_fds(&server), baseline, "fds left open");
}
