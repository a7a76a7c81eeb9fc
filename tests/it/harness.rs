//! Test harness: runs the real `corecast` binary on a free port and talks to
//! it over real sockets.
//!
//! The server runs as a child process, not on threads of the test binary,
//! because what is tested is process-wide: signals (graceful shutdown),
//! resource limits and exit codes. The harness learns the port from the
//! server's own `listening` log line (a signal, never a sleep) and keeps
//! draining its stderr so the server never blocks on a full pipe.

#![allow(dead_code)] // Each test module uses a different part of the harness.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// Log lines of one server, appended by a reader thread.
#[derive(Default)]
struct Log {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

/// A running `corecast` process; killed on drop.
pub struct TestServer {
    child: Child,
    /// The port the server bound.
    pub port: u16,
    /// The admin listener's address, unless started with `--admin-addr none`.
    pub admin: Option<String>,
    log: Arc<Log>,
}

impl TestServer {
    /// Starts the server with `args` (plus `--addr 127.0.0.1 --port 0`) and
    /// waits for its `listening` line.
    pub fn start(args: &[&str]) -> TestServer {
        match Self::try_start(args) {
            Ok(server) => server,
            Err((status, log)) => panic!("server failed to start ({status:?}):\n{log}"),
        }
    }

    /// Like [`TestServer::start`], but returns the exit status and output
    /// when the server exits instead of listening.
    pub fn try_start(args: &[&str]) -> Result<TestServer, (Option<ExitStatus>, String)> {
        Self::spawn(command(args))
    }

    /// Starts a prepared command (for tests that need their own flags or limits).
    pub fn spawn(mut cmd: Command) -> Result<TestServer, (Option<ExitStatus>, String)> {
        if !cmd.get_envs().any(|(key, _)| key == "RUST_LOG") {
            cmd.env("RUST_LOG", "corecast=debug");
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn corecast");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Log::default());
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lines.lock().unwrap().push(line);
                sink.grew.notify_all();
            }
            // EOF: the process closed stderr (it exited). Wake waiters.
            sink.lines.lock().unwrap().push("<eof>".into());
            sink.grew.notify_all();
        });
        let mut server = TestServer {
            child,
            port: 0,
            admin: None,
            log,
        };
        match server.wait_for_log("listening addr=", WAIT) {
            Some(line) => {
                let field = |name: &str| {
                    line.split(name)
                        .nth(1)
                        .and_then(|s| s.split_whitespace().next())
                };
                server.port = field(" port=")
                    .and_then(|p| p.parse().ok())
                    .expect("port in listening line");
                server.admin = field(" admin=")
                    .filter(|a| *a != "none")
                    .map(str::to_string);
                Ok(server)
            }
            None => {
                let status = server.wait_exit(WAIT);
                Err((status, server.log_text()))
            }
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Waits until a log line contains `needle` (looking at lines already
    /// seen too); returns it, or None on timeout or process exit.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.wait_for_log_count(needle, 1, timeout)
    }

    /// Waits until `n` log lines contain `needle`; returns the last.
    pub fn wait_for_log_count(&self, needle: &str, n: usize, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.log.lines.lock().unwrap();
        loop {
            let hits: Vec<&String> = lines.iter().filter(|l| l.contains(needle)).collect();
            if hits.len() >= n {
                return hits.last().map(|s| s.to_string());
            }
            if lines.last().is_some_and(|l| l == "<eof>") {
                return None;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            lines = self.log.grew.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// Everything the server logged so far.
    pub fn log_text(&self) -> String {
        self.log.lines.lock().unwrap().join("\n")
    }

    /// Sends a signal (e.g. `libc::SIGTERM`) to the server.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with our child's pid; no memory is involved.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits for the process to exit; None if it is still running at timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        // A pidfd becomes readable when the process exits: wait on that
        // instead of polling try_wait.
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let pidfd =
            unsafe { libc::syscall(libc::SYS_pidfd_open, self.child.id() as libc::pid_t, 0) }
                as i32;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break Some(status);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || pidfd < 0 {
                break None;
            }
            let mut pfd = libc::pollfd {
                fd: pidfd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        };
        if pidfd >= 0 {
            // SAFETY: closing the pidfd opened above, once.
            unsafe { libc::close(pidfd) };
        }
        status
    }

    /// GET /health, parsed.
    pub fn health(&self) -> Value {
        let (status, body) = http_get(&self.addr(), "/health");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("health is JSON")
    }

    /// Opens a WebSocket to `path` ("/ws" or "/echo").
    pub fn ws(&self, path: &str) -> Client {
        Client::connect(&self.addr(), path, None)
    }

    /// Opens /ws and reads the `connection_established` greeting.
    pub fn ws_client(&self) -> (Client, Value) {
        let mut c = self.ws("/ws");
        let hello = c.recv_json();
        assert_eq!(hello["type"], "connection_established", "{hello}");
        (c, hello)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `corecast --addr 127.0.0.1 --port 0` plus `args`, with the admin
/// listener on a free loopback port unless `args` choose one (tests run in
/// parallel, so the default 9090 would collide).
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corecast"));
    cmd.args(["--addr", "127.0.0.1", "--port", "0"]);
    if !args.contains(&"--admin-addr") {
        cmd.args(["--admin-addr", "127.0.0.1:0"]);
    }
    cmd.args(args);
    cmd
}

/// A blocking tungstenite client with read timeouts, so a bug fails the
/// test instead of hanging it.
pub struct Client {
    /// The underlying socket, for tests that need raw access.
    pub ws: WebSocket<TcpStream>,
}

impl Client {
    /// Connects and upgrades; `config` overrides tungstenite's limits.
    pub fn connect(addr: &str, path: &str, config: Option<WebSocketConfig>) -> Client {
        let stream = TcpStream::connect(addr).expect("tcp connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let url = format!("ws://{addr}{path}");
        let config =
            config.unwrap_or_else(|| WebSocketConfig::default().max_message_size(Some(64 << 20)));
        let (ws, resp) =
            tungstenite::client::client_with_config(url.as_str(), stream, Some(config))
                .expect("websocket handshake");
        assert_eq!(resp.status(), 101);
        Client { ws }
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).expect("send text");
    }

    /// Sends a JSON value as text.
    pub fn send_json(&mut self, v: &Value) {
        self.send_text(&v.to_string());
    }

    /// Next data message (pings are answered by tungstenite and skipped).
    pub fn recv(&mut self) -> Message {
        loop {
            match self.ws.read().expect("read message") {
                Message::Ping(_) | Message::Pong(_) => continue,
                other => return other,
            }
        }
    }

    /// Next text message as JSON.
    pub fn recv_json(&mut self) -> Value {
        match self.recv() {
            Message::Text(t) => serde_json::from_str(t.as_str()).expect("server sends JSON"),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// Subscribes and waits for the reply.
    pub fn subscribe(&mut self, channel: &str) {
        self.send_json(&serde_json::json!({"type": "subscribe", "channel": channel}));
        let reply = self.recv_json();
        assert_eq!(reply["type"], "subscribed", "{reply}");
        assert_eq!(reply["channel"], channel);
    }

    /// Reads until the server's close frame; returns its code.
    pub fn expect_close(&mut self) -> u16 {
        loop {
            match self.ws.read() {
                Ok(Message::Close(Some(frame))) => return frame.code.into(),
                Ok(Message::Close(None)) => return 1005,
                Ok(_) => continue,
                Err(e) => panic!("connection ended without a close frame: {e}"),
            }
        }
    }
}

impl Client {
    /// Connects to /ws with a 4 KiB receive buffer, so a client that stops
    /// reading backs the server up quickly (slow-consumer tests).
    pub fn connect_small_rcvbuf(addr: &str) -> Client {
        use socket2::{Domain, Protocol, Socket, Type};
        let sa: std::net::SocketAddr = addr.parse().expect("socket address");
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        socket
            .connect_timeout(&sa.into(), WAIT)
            .expect("tcp connect");
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        let url = format!("ws://{addr}/ws");
        let (ws, resp) = tungstenite::client::client(url.as_str(), stream).expect("handshake");
        assert_eq!(resp.status(), 101);
        Client { ws }
    }

    /// Reads until the server's close frame; returns its code and reason.
    pub fn read_close(&mut self) -> (u16, String) {
        loop {
            match self.ws.read().expect("read until the close frame") {
                Message::Close(Some(frame)) => {
                    return (frame.code.into(), frame.reason.to_string())
                }
                Message::Close(None) => return (1005, String::new()),
                _ => continue,
            }
        }
    }
}

/// Opens /ws connections until one lands on the shard wanted (SO_REUSEPORT
/// picks the shard); the others are kept for later calls.
pub struct Pool<'a> {
    server: &'a TestServer,
    spare: [Vec<Client>; 2],
}

impl<'a> Pool<'a> {
    /// Connections most tried per request before the test fails.
    const MAX_ATTEMPTS: usize = 200;

    /// A pool for a server with two shards.
    pub fn new(server: &'a TestServer) -> Pool<'a> {
        Pool {
            server,
            spare: [Vec::new(), Vec::new()],
        }
    }

    /// A connection on `shard` (0 or 1), opening new ones as needed.
    pub fn on_shard(&mut self, shard: usize) -> Client {
        if let Some(c) = self.spare[shard].pop() {
            return c;
        }
        for _ in 0..Self::MAX_ATTEMPTS {
            let (c, hello) = self.server.ws_client();
            let landed = hello["shard"].as_u64().expect("shard in greeting") as usize;
            if landed == shard {
                return c;
            }
            self.spare[landed].push(c);
        }
        panic!(
            "no connection landed on shard {shard} in {} attempts",
            Self::MAX_ATTEMPTS
        );
    }

    /// Hands over every spare connection with its shard.
    pub fn drain(&mut self) -> Vec<(usize, Client)> {
        let mut out = Vec::new();
        for (shard, spare) in self.spare.iter_mut().enumerate() {
            out.extend(spare.drain(..).map(|c| (shard, c)));
        }
        out
    }
}

/// The one `corecast: error:` line a failed start prints (asserts there is
/// exactly one).
pub fn startup_error_line(log: &str) -> String {
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("corecast: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "expected exactly one error line:\n{log}");
    errors[0].to_string()
}

/// One plain HTTP/1.1 GET; returns (status, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    http_raw(addr, &format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n"))
}

/// Sends raw request bytes and reads the response to EOF; returns (status, whole response).
pub fn http_raw(addr: &str, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("tcp connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(request.as_bytes()).expect("write request");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, if status == 0 { text } else { body })
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
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).unwrap();
        let mut client = RawClient {
            stream,
            buf: Vec::new(),
        };
        let head = client.read_until_head();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(
            head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "{head}"
        );
        client
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
