//! The tungstenite WebSocket [`Client`], and helpers that place clients on shards.

use std::net::TcpStream;

use serde_json::{json, Value};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use super::{TestServer, WAIT};

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

    /// Connects and upgrades with extra request headers (a forwarding
    /// header a proxy, or a forger, would add).
    pub fn connect_with_headers(addr: &str, path: &str, headers: &[(&str, &str)]) -> Client {
        use tungstenite::client::IntoClientRequest;
        use tungstenite::http::{HeaderName, HeaderValue};
        let stream = TcpStream::connect(addr).expect("tcp connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        let mut request = format!("ws://{addr}{path}")
            .into_client_request()
            .expect("client request");
        for (name, value) in headers {
            request.headers_mut().append(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        let (ws, resp) = tungstenite::client::client_with_config(request, stream, None)
            .expect("websocket handshake");
        assert_eq!(resp.status(), 101);
        Client { ws }
    }

    /// Sends a close, reads until the close reply, then until the peer
    /// closes the TCP connection (for a proxy: after it let go of the
    /// upstream connection).
    pub fn close_until_eof(&mut self) {
        use std::io::Read;
        self.ws.close(None).expect("send close");
        loop {
            match self.ws.read() {
                Ok(_) => continue,
                Err(tungstenite::Error::ConnectionClosed) => break,
                Err(e) => panic!("reading until the close reply: {e}"),
            }
        }
        let mut byte = [0u8; 1];
        match self.ws.get_mut().read(&mut byte) {
            Ok(0) => {}
            Ok(_) => panic!("bytes after the close handshake"),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("the peer kept the connection open: {e}"),
        }
    }

    /// Connects to /ws with a 4 KiB receive buffer.
    pub(super) fn connect_small_rcvbuf(addr: &str) -> Client {
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

/// Reads the `connection_established` greeting of a fresh /ws client.
pub(super) fn greeted(mut c: Client) -> (Client, Value) {
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
