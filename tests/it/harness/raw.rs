//! Hand-made upgrade requests and the raw-frame [`RawClient`].

use std::io::{Read, Write};
use std::net::TcpStream;

use super::WAIT;

/// A key from RFC 6455 section 1.3.
pub const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The `Sec-WebSocket-Accept` value RFC 6455 section 1.3 gives for [`RFC_KEY`].
pub const RFC_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A minimal valid upgrade request for `path`, carrying [`RFC_KEY`].
pub fn upgrade_request(path: &str) -> String {
    upgrade_request_with_key(path, RFC_KEY)
}

/// A minimal valid upgrade request for `path`, carrying `key`.
pub fn upgrade_request_with_key(path: &str, key: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
    )
}

/// A client that speaks raw frames after a hand-made handshake, to send
/// what a well-behaved library never would (bad opcodes, unmasked frames...).
pub struct RawClient {
    /// The socket.
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// One frame as read by [`RawClient::read_frame`].
#[derive(Debug)]
pub struct RawFrame {
    /// FIN bit.
    pub fin: bool,
    /// RSV1 bit (permessage-deflate: a compressed message).
    pub rsv1: bool,
    /// Opcode (low 4 bits).
    pub opcode: u8,
    /// Payload (servers never mask).
    pub payload: Vec<u8>,
}

impl RawClient {
    /// Connects to `path` and completes the upgrade by hand.
    pub fn connect(addr: &str, path: &str) -> RawClient {
        let mut stream = TcpStream::connect(addr).expect("tcp connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream.write_all(upgrade_request(path).as_bytes()).unwrap();
        let mut client = RawClient {
            stream,
            buf: Vec::new(),
        };
        let head = client.read_until_head();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(
            head.contains(&format!("Sec-WebSocket-Accept: {RFC_ACCEPT}")),
            "{head}"
        );
        client
    }

    /// Connects to `path` with extra request header lines (each without
    /// "\r\n"), expects a 101 and returns the client and the response head.
    pub fn connect_with(addr: &str, path: &str, headers: &[&str]) -> (RawClient, String) {
        let mut stream = TcpStream::connect(addr).expect("tcp connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut request = upgrade_request(path);
        request.truncate(request.len() - 2);
        for line in headers {
            request.push_str(line);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut client = RawClient {
            stream,
            buf: Vec::new(),
        };
        let head = client.read_until_head();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        (client, head)
    }

    fn read_until_head(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                self.buf.drain(..end + 4);
                return head;
            }
            self.fill();
        }
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 65536];
        let n = self.stream.read(&mut chunk).expect("read (timed out?)");
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Sends one frame with first byte `b0` (FIN/RSV/opcode), masked unless `masked` is false.
    pub fn send_frame(&mut self, b0: u8, payload: &[u8], masked: bool) {
        self.stream
            .write_all(&encode_client_frame(b0, payload, masked))
            .expect("send frame");
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send raw");
    }

    /// Reads one frame; None when the server closed the TCP connection.
    pub fn read_frame(&mut self) -> Option<RawFrame> {
        loop {
            if self.buf.len() >= 2 {
                let b0 = self.buf[0];
                let b1 = self.buf[1];
                let (len, off) = match b1 & 0x7f {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => (
                        u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize,
                        10,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if len != usize::MAX && self.buf.len() >= off + len {
                    let payload = self.buf[off..off + len].to_vec();
                    self.buf.drain(..off + len);
                    return Some(RawFrame {
                        fin: b0 & 0x80 != 0,
                        rsv1: b0 & 0x40 != 0,
                        opcode: b0 & 0x0f,
                        payload,
                    });
                }
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read failed (timed out?): {e}"),
            }
        }
    }

    /// Reads frames until a close frame; returns its code (1005 if empty).
    pub fn expect_close(&mut self) -> u16 {
        loop {
            let frame = self
                .read_frame()
                .expect("server closed TCP without a close frame");
            if frame.opcode == 0x8 {
                if frame.payload.len() < 2 {
                    return 1005;
                }
                return u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
            }
        }
    }

    /// After a close, the server must end the TCP connection.
    pub fn expect_eof(&mut self) {
        while let Some(frame) = self.read_frame() {
            assert_eq!(frame.opcode, 0x8, "unexpected frame after close: {frame:?}");
        }
    }
}

/// Encodes a client frame (masked with a fixed key unless `masked` is false).
pub fn encode_client_frame(b0: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mbit = if masked { 0x80 } else { 0 };
    let mut out = vec![b0];
    match payload.len() {
        n if n < 126 => out.push(mbit | n as u8),
        n if n <= 0xffff => {
            out.push(mbit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mbit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}
