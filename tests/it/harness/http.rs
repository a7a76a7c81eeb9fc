//! Plain HTTP/1.1 helpers: one-shot requests and a keep-alive [`HttpConn`].

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;

use serde_json::Value;

use super::WAIT;

/// One HTTP response: status, head (status line and headers) and body.
#[derive(Debug)]
pub struct Response {
    /// The status code; 0 when the status line has none (so a test that
    /// expects a status fails showing what came instead).
    pub status: u16,
    /// The status line and headers, without the blank line.
    pub head: String,
    /// The body.
    pub body: String,
}

impl Response {
    /// A response from its `head` (without the blank line) and `body`.
    pub fn parse(head: &str, body: &str) -> Response {
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Response {
            status,
            head: head.to_string(),
            body: body.to_string(),
        }
    }

    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {self:?}"))
    }
}

/// Sends raw `request` bytes on a fresh connection and reads the response
/// until the server ends the connection. A read error (such as the WAIT
/// timeout) fails the test instead of returning a truncated response.
pub fn exchange(addr: &str, request: &str) -> Response {
    let mut s = TcpStream::connect(addr).expect("tcp connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(request.as_bytes()).expect("write request");
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            // A server that answers before reading the whole request may
            // reset when it closes; what it sent before still counts.
            Err(e) if e.kind() == ErrorKind::ConnectionReset && !out.is_empty() => break,
            Err(e) => panic!("reading the response failed after {} bytes: {e}", out.len()),
        }
    }
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Response::parse(head, body)
}

/// One GET on a fresh connection (either port).
pub fn get(addr: &str, path: &str) -> Response {
    HttpConn::open(addr).request("GET", path, &[], "")
}

/// One POST with a JSON body on a fresh connection.
pub fn post(addr: &str, path: &str, body: &str) -> Response {
    HttpConn::open(addr).request("POST", path, &[], body)
}

/// One HTTP/1.1 connection that reads exactly Content-Length bytes per
/// response, so several requests can share it.
pub struct HttpConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl HttpConn {
    /// Connects to `addr`.
    pub fn open(addr: &str) -> HttpConn {
        let stream = TcpStream::connect(addr).expect("tcp connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        HttpConn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Sends one request (with a Content-Length when there is a body or it
    /// is a POST) and reads its response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if method == "POST" || !body.is_empty() {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.write_raw(req.as_bytes());
        self.read_response()
    }

    /// Sends raw bytes.
    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write request");
    }

    /// Reads one response: the head, then exactly Content-Length bytes.
    pub fn read_response(&mut self) -> Response {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            assert!(self.fill() > 0, "connection closed before a response head");
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).expect("ASCII head");
        assert!(head.starts_with("HTTP/1.1 "), "{head}");
        let mut response = Response::parse(&head, "");
        assert_ne!(response.status, 0, "no status code: {head}");
        let length: usize = response
            .header("content-length")
            .map(|v| v.parse().expect("numeric Content-Length"))
            .unwrap_or_else(|| panic!("no Content-Length: {head}"));
        let start = head_end + 4;
        while self.buf.len() < start + length {
            assert!(self.fill() > 0, "connection closed inside a body: {head}");
        }
        response.body =
            String::from_utf8(self.buf[start..start + length].to_vec()).expect("UTF-8 body");
        self.buf.drain(..start + length);
        response
    }

    /// True when the server ends the connection (EOF or reset) with nothing
    /// more to say; false when more bytes arrive.
    pub fn closed_by_peer(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
            Err(e) => panic!("connection still open after {WAIT:?}: {e}"),
        }
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16384];
        match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                n
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => 0,
            Err(e) => panic!("no response within {WAIT:?}: {e}"),
        }
    }
}
