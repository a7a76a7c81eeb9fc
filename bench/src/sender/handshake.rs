//! The sender's accept side: a listener with room for every subscriber,
//! and a small mio loop that accepts connections and answers each upgrade
//! request with a constant 101 until the run starts. Nothing here is
//! measured; it only gets the sockets ready.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};

use super::{SenderReport, SenderShared};
use crate::driver::{count, phase, Shared};
use crate::net::errno_name;

/// The answer to every upgrade. The bench always sends RFC 6455's sample key
/// (see `ws::upgrade_request`), whose accept value is the RFC's own example,
/// so the answer is a constant, as a real server's would be for that key.
pub const UPGRADE_RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

/// Longest upgrade request read before the connection is dropped.
const MAX_REQUEST: usize = 8 * 1024;

/// Binds 127.0.0.1:0 with room in the accept queue for every subscriber.
pub fn listen(n: usize) -> io::Result<(std::net::TcpListener, SocketAddr)> {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    sock.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
    // The kernel caps this at net.core.somaxconn.
    sock.listen(i32::try_from(n.max(1024)).unwrap_or(i32::MAX))?;
    sock.set_nonblocking(true)?;
    let listener: std::net::TcpListener = sock.into();
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// A connection whose upgrade request is still arriving.
struct Handshake {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// Token of the listener in the accept loop's poll.
const LISTENER: Token = Token(usize::MAX);

/// Accepts and answers upgrades until the main thread leaves the ramp phase;
/// returns the upgraded sockets.
pub fn accept_and_upgrade(
    listener: std::net::TcpListener,
    shared: &Shared,
    ss: &SenderShared,
    deadline: Instant,
    report: &mut SenderReport,
) -> io::Result<Vec<TcpStream>> {
    let mut listener = TcpListener::from_std(listener);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    let mut pending: Vec<Option<Handshake>> = Vec::new();
    let mut open = Vec::new();
    while shared.phase() == phase::RAMP
        && Instant::now() < deadline
        && !ss.release.load(Ordering::Relaxed)
    {
        match poll.poll(&mut events, Some(Duration::from_millis(10))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                accept_ready(&listener, &poll, &mut pending, report)?;
                continue;
            }
            let Some(h) = pending.get_mut(ev.token().0).and_then(Option::as_mut) else {
                continue;
            };
            match read_request(h) {
                Ok(false) => {}
                Ok(true) => {
                    let mut h = pending[ev.token().0].take().expect("matched Some above");
                    poll.registry().deregister(&mut h.stream)?;
                    match h.stream.write(UPGRADE_RESPONSE) {
                        Ok(n) if n == UPGRADE_RESPONSE.len() => open.push(h.stream),
                        Ok(_) => count(&mut report.errors, "upgrade: short write".into()),
                        Err(e) => count(
                            &mut report.errors,
                            format!("upgrade write: {}", errno_name(&e)),
                        ),
                    }
                }
                Err(cause) => {
                    count(&mut report.errors, cause);
                    pending[ev.token().0] = None;
                }
            }
        }
    }
    Ok(open)
}

/// Accepts every queued connection and registers it for its request.
fn accept_ready(
    listener: &TcpListener,
    poll: &Poll,
    pending: &mut Vec<Option<Handshake>>,
    report: &mut SenderReport,
) -> io::Result<()> {
    loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                report.accepted += 1;
                // corecast sets TCP_NODELAY on every connection; so does the floor.
                let _ = stream.set_nodelay(true);
                poll.registry()
                    .register(&mut stream, Token(pending.len()), Interest::READABLE)?;
                pending.push(Some(Handshake {
                    stream,
                    buf: Vec::new(),
                }));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                count(&mut report.errors, format!("accept: {}", errno_name(&e)));
                return Ok(());
            }
        }
    }
}

/// Reads what has arrived of an upgrade request; true once it is complete.
fn read_request(h: &mut Handshake) -> Result<bool, String> {
    let mut chunk = [0u8; 1024];
    loop {
        match h.stream.read(&mut chunk) {
            Ok(0) => return Err("upgrade: EOF before request".into()),
            Ok(n) => h.buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("upgrade read: {}", errno_name(&e))),
        }
    }
    request_complete(&h.buf)
}

/// Whether `buf` holds a whole upgrade request (a GET head ending in a blank line).
pub fn request_complete(buf: &[u8]) -> Result<bool, String> {
    if buf.len() >= 4 && !buf.starts_with(b"GET ") {
        return Err("upgrade: not a GET request".into());
    }
    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
        return Ok(true);
    }
    if buf.len() > MAX_REQUEST {
        return Err("upgrade: request head too long".into());
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_response_is_a_101_the_bench_accepts() {
        let (status, len) = crate::ws::parse_upgrade_response(UPGRADE_RESPONSE)
            .unwrap()
            .unwrap();
        assert_eq!((status, len), (101, UPGRADE_RESPONSE.len()));
        // The accept value is only right for the key the bench always sends.
        let req = crate::ws::upgrade_request("127.0.0.1:1", "/ws");
        let req = String::from_utf8(req).unwrap();
        assert!(req.contains("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
        assert_eq!(request_complete(req.as_bytes()), Ok(true));
    }

    #[test]
    fn upgrade_requests_complete_only_at_the_blank_line() {
        assert_eq!(request_complete(b"GE"), Ok(false));
        assert_eq!(
            request_complete(b"GET /ws HTTP/1.1\r\nHost: x\r\n"),
            Ok(false)
        );
        assert!(request_complete(b"POST / HTTP/1.1\r\n\r\n").is_err());
        let long = [b"GET /".as_slice(), &[b'a'; MAX_REQUEST]].concat();
        assert!(request_complete(&long).is_err());
    }
}
