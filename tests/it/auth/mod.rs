//! Who is connected and what they may do: JWT tokens (URL and `connect`),
//! expiry and refresh, origins, namespace permissions, personal channels,
//! presence and join/leave. Tokens are made here with real keys
//! (tests/keys/), signed by the same crate a backend would use.

mod origins;
mod permissions;
mod presence;
mod tokens;
mod users;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::harness::{upgrade_request, Client, TestServer, WAIT};

/// The HMAC secret the servers here are started with.
pub const SECRET: &str = "it-secret-not-for-production-0123456789";

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HS256 token over `claims`, signed with [`SECRET`].
pub fn hs256(claims: Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        claims,
    )
}

/// A token for `user` valid for an hour.
pub fn token_for(user: &str) -> String {
    hs256(json!({"sub": user, "exp": now() + 3600}))
}

/// A token over `claims` with `alg`, signed with `key`.
pub fn sign(alg: Algorithm, key: &EncodingKey, claims: Value) -> String {
    encode(&Header::new(alg), &claims, key).expect("sign a test token")
}

/// The path of a committed test key.
pub fn key_path(name: &str) -> String {
    format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A server with the HMAC secret and `args`.
pub fn auth_server(args: &[&str]) -> TestServer {
    let mut all = vec!["--jwt-hmac-secret", SECRET];
    all.extend_from_slice(args);
    TestServer::start(&all)
}

/// A config file with `contents`, unique to this test process and call.
pub fn config_file(contents: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "corecast-it-{}-{}.toml",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, contents).expect("write the config file");
    path
}

/// Opens /ws with `?token=` and reads the greeting.
pub fn ws_with_token(server: &TestServer, token: &str) -> (Client, Value) {
    let mut client = Client::connect(&server.addr(), &format!("/ws?token={token}"), None);
    let hello = client.recv_json();
    assert_eq!(hello["type"], "connection_established", "{hello}");
    (client, hello)
}

/// Opens /ws and authenticates with a `connect` message; returns the
/// client and the `connected` reply.
pub fn ws_connect_message(server: &TestServer, token: &str) -> (Client, Value) {
    let (mut client, _) = server.ws_client();
    client.send_json(&json!({"type": "connect", "token": token, "id": 1}));
    let reply = client.recv_json();
    (client, reply)
}

/// Sends an upgrade request for `path` (plus `extra` header lines) and
/// returns the status and body the server answered with.
pub fn upgrade_answer(server: &TestServer, path: &str, extra: &str) -> (u16, String) {
    let mut request = upgrade_request(path);
    if !extra.is_empty() {
        request = request.replacen("\r\n\r\n", &format!("\r\n{extra}\r\n\r\n"), 1);
    }
    let mut stream = TcpStream::connect(server.addr()).expect("tcp connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
        .write_all(request.as_bytes())
        .expect("write the request");
    // A 101 keeps the socket open: read the head, then the body only when
    // the answer is a refusal (which closes).
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("read the answer");
        assert_eq!(
            n,
            1,
            "the server closed mid-head: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&got).to_string();
    let status: u16 = head[9..12].parse().expect("a status code");
    let mut body = String::new();
    if status != 101 {
        stream.read_to_string(&mut body).expect("read the body");
    }
    (status, body)
}

/// Sends a request and returns the next reply.
pub fn ask(client: &mut Client, request: Value) -> Value {
    client.send_json(&request);
    client.recv_json()
}
