//! Test harness: runs the real `corecast` binary on a free port and talks to
//! it over real sockets.
//!
//! The server runs as a child process, not on threads of the test binary,
//! because what is tested is process-wide: signals (graceful shutdown),
//! resource limits and exit codes. The harness learns the port from the
//! server's own `listening` log line (a signal, never a sleep) and keeps
//! draining its stderr so the server never blocks on a full pipe.

#![allow(dead_code)] // Each test module uses a different part of the harness.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// The line the stderr reader appends after the last real one, once the
/// server closed stderr (it exited).
const EOF_LINE: &str = "<eof>";

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
            sink.lines.lock().unwrap().push(EOF_LINE.into());
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
                server.port = log_field(&line, " port=")
                    .parse()
                    .expect("port in listening line");
                server.admin = Some(log_field(&line, " admin="))
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
            if lines.last().is_some_and(|l| l == EOF_LINE) {
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
    /// After an exit, [`TestServer::log_text`] holds every line it wrote.
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
        if status.is_some() {
            self.wait_log_eof();
        }
        status
    }

    /// Waits until the reader thread has seen stderr end. The process exiting
    /// does not mean its last lines were read: without this, a check that a
    /// line is absent could pass only because it was not read yet.
    fn wait_log_eof(&self) {
        let deadline = Instant::now() + WAIT;
        let mut lines = self.log.lines.lock().unwrap();
        while lines.last().map(String::as_str) != Some(EOF_LINE) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the server exited but its stderr stayed open for {WAIT:?}:\n{}",
                lines.join("\n")
            );
            lines = self.log.grew.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// The admin listener's address; panics if it was started without one.
    pub fn admin_addr(&self) -> &str {
        self.admin.as_deref().expect("server has an admin listener")
    }

    /// GET /health, parsed.
    pub fn health(&self) -> Value {
        let response = get(&self.addr(), "/health");
        assert_eq!(response.status, 200, "{response:?}");
        response.json()
    }

    /// Opens a WebSocket to `path` ("/ws" or "/echo").
    pub fn ws(&self, path: &str) -> Client {
        Client::connect(&self.addr(), path, None)
    }

    /// Opens /ws and reads the `connection_established` greeting.
    pub fn ws_client(&self) -> (Client, Value) {
        greeted(self.ws("/ws"))
    }

    /// Like [`TestServer::ws_client`], but with a 4 KiB receive buffer, so a
    /// client that stops reading backs the server up quickly (slow-consumer
    /// tests).
    pub fn ws_client_small_rcvbuf(&self) -> (Client, Value) {
        greeted(Client::connect_small_rcvbuf(&self.addr()))
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
    let mut cmd = bare_command(&["--addr", "127.0.0.1", "--port", "0"]);
    if !args.contains(&"--admin-addr") {
        cmd.args(["--admin-addr", "127.0.0.1:0"]);
    }
    cmd.args(args);
    cmd
}

/// `corecast` with exactly `args`. Every flag also reads a `CORECAST_*`
/// variable, so none is passed on from the environment the tests run in:
/// a test's server is configured by its arguments alone.
pub fn bare_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corecast"));
    for (key, _) in std::env::vars_os() {
        if key.as_encoded_bytes().starts_with(b"CORECAST_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args);
    cmd
}

/// The value after the first `key` in a `key=value` log line (up to the
/// next space); panics naming the line when `key` is missing.
pub fn log_field<'a>(line: &'a str, key: &str) -> &'a str {
    let rest = line
        .split_once(key)
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        .1;
    rest.split_whitespace().next().unwrap_or("")
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
        stream.set_nodelay(true).unwrap();
        Client::handshake(stream, addr, path, config)
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

    /// Next data message, which must be text, as raw text.
    pub fn recv_text(&mut self) -> String {
        match self.recv() {
            Message::Text(t) => t.as_str().to_owned(),
            other => panic!("expected a text message, got {}", describe(&other)),
        }
    }

    /// Next data message, which must be binary.
    pub fn recv_binary(&mut self) -> Vec<u8> {
        match self.recv() {
            Message::Binary(b) => b.to_vec(),
            other => panic!("expected a binary message, got {}", describe(&other)),
        }
    }

    /// Next text message as JSON.
    pub fn recv_json(&mut self) -> Value {
        serde_json::from_str(&self.recv_text()).expect("server sends JSON")
    }

    /// Subscribes and waits for the reply.
    pub fn subscribe(&mut self, channel: &str) {
        self.send_json(&json!({"type": "subscribe", "channel": channel}));
        let reply = self.recv_json();
        assert_eq!(reply["type"], "subscribed", "{reply}");
        assert_eq!(reply["channel"], channel);
    }

    /// Proves the connection is open and nothing is queued for it: a
    /// heartbeat's reply is the very next message.
    pub fn assert_heartbeat_next(&mut self) {
        self.send_json(&json!({"type":"heartbeat","id":"probe"}));
        assert_eq!(
            self.recv_json(),
            json!({"type":"heartbeat","id":"probe"}),
            "something arrived before the heartbeat reply"
        );
    }

    /// Reads until the server's close frame; returns its code.
    pub fn expect_close(&mut self) -> u16 {
        self.read_close().0
    }

    /// Reads until the server's close frame; returns its code and reason
    /// (1005 and "" for a close without a code).
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

    /// Connects to /ws with a 4 KiB receive buffer.
    fn connect_small_rcvbuf(addr: &str) -> Client {
        use socket2::{Domain, Protocol, Socket, Type};
        let sa: std::net::SocketAddr = addr.parse().expect("socket address");
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        socket
            .connect_timeout(&sa.into(), WAIT)
            .expect("tcp connect");
        Client::handshake(socket.into(), addr, "/ws", None)
    }

    /// Upgrades a connected `stream` to a WebSocket on `path`; `config`
    /// overrides tungstenite's limits.
    fn handshake(
        stream: TcpStream,
        addr: &str,
        path: &str,
        config: Option<WebSocketConfig>,
    ) -> Client {
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        let url = format!("ws://{addr}{path}");
        let config =
            config.unwrap_or_else(|| WebSocketConfig::default().max_message_size(Some(64 << 20)));
        let (ws, resp) =
            tungstenite::client::client_with_config(url.as_str(), stream, Some(config))
                .expect("websocket handshake");
        assert_eq!(resp.status(), 101);
        Client { ws }
    }
}

/// Opens /ws clients until at least `n` are open and both shards hold one;
/// returns (shard, client, connection id) for each.
pub fn clients_on_both_shards(server: &TestServer, n: usize) -> Vec<(usize, Client, String)> {
    const MAX_ATTEMPTS: usize = 64;
    let mut clients = Vec::new();
    let mut seen = [false; 2];
    for _ in 0..MAX_ATTEMPTS {
        let (client, hello) = server.ws_client();
        let shard = shard_of(&hello);
        seen[shard] = true;
        clients.push((shard, client, connection_id(&hello)));
        if clients.len() >= n && seen.iter().all(|s| *s) {
            return clients;
        }
    }
    panic!("{MAX_ATTEMPTS} connections never reached both shards");
}

/// The connection id from a `connection_established` greeting.
pub fn connection_id(hello: &Value) -> String {
    hello["connection_id"]
        .as_str()
        .expect("connection_id")
        .to_string()
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
            let landed = shard_of(&hello);
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

/// Reads the `connection_established` greeting of a fresh /ws client.
fn greeted(mut c: Client) -> (Client, Value) {
    let hello = c.recv_json();
    assert_eq!(hello["type"], "connection_established", "{hello}");
    (c, hello)
}

/// The shard a `connection_established` greeting names.
fn shard_of(hello: &Value) -> usize {
    hello["shard"].as_u64().expect("greeting names the shard") as usize
}

/// A message summary that stays short for megabyte payloads.
fn describe(message: &Message) -> String {
    match message {
        Message::Close(frame) => format!("close {frame:?}"),
        other => format!(
            "{} message of {} bytes",
            if other.is_text() { "text" } else { "non-text" },
            other.len()
        ),
    }
}
