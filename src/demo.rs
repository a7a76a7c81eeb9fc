//! `--demo`: the chat page served at `/demo/` (its files are built into the binary, from `demo/`) and the tokens `/demo/token` mints for it; no I/O, no clock.
//!
//! The page is plain HTML and JavaScript over the `centrifuge` SDK's
//! browser build (`demo/centrifuge.js`, copied from the npm package pinned
//! in tests/browser/package-lock.json by scripts/demo-sdk.sh; a test checks
//! the copy). It speaks the Centrifugo protocol at `/connection/websocket`.
//!
//! Identity: a visitor picks a name and the page asks `/demo/token?user=NAME`
//! for a token, HS256-signed with a key the server made at startup and
//! never shows (`server.rs` reads it from the kernel and gives the same key
//! to the token verifier). Anyone who can reach the port gets a token for
//! any name: that is the point of a demo, and the reason `--demo` refuses
//! to run beside `--jwt-hmac-secret`/`--jwt-public-key` (`Config::check`),
//! so a demo name can never pass for a real user's.

use std::borrow::Cow;

use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::http::{query_param, Response};

/// How long a minted token is valid, in seconds. The page asks for a new
/// one when the server says it expired, so this only bounds how long a
/// token copied out of the page stays usable.
pub const TOKEN_TTL_SECS: u64 = 3600;

/// Longest demo user name, in characters: enough for a name, short enough
/// for the presence list.
pub const MAX_NAME_CHARS: usize = 32;

/// Bytes of the random signing key: 256 bits, the size RFC 7518 section
/// 3.2 asks of an HS256 key.
pub const KEY_BYTES: usize = 32;

/// Where the page lives; `/demo` redirects here.
pub const PAGE_PATH: &str = "/demo/";

/// One file of the page.
struct Asset {
    /// The path under `/demo/`.
    name: &'static str,
    /// Its Content-Type.
    content_type: &'static str,
    /// Its bytes (all of them UTF-8 text).
    body: &'static str,
}

/// The page's files, as built into the binary.
const ASSETS: [Asset; 5] = [
    Asset {
        name: "",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../demo/index.html"),
    },
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../demo/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../demo/app.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../demo/style.css"),
    },
    Asset {
        name: "centrifuge.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../demo/centrifuge.js"),
    },
];

/// What the page may load and connect to: its own origin only (the SDK is
/// served with it, so it works offline and nothing reaches a CDN).
const CSP: &str = "Content-Security-Policy: default-src 'self'; connect-src 'self'; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The demo's state: the key its tokens are signed with. Built once at
/// startup, shared read-only by every shard.
pub struct Demo {
    /// HS256 signing key; the verifier holds the same secret.
    key: EncodingKey,
}

impl Demo {
    /// A demo that signs with `secret` (give the verifier the same one).
    pub fn new(secret: &[u8; KEY_BYTES]) -> Demo {
        // jsonwebtoken refuses only an empty secret, and this one has
        // KEY_BYTES bytes.
        let key = EncodingKey::from_secret(secret).expect("a 32-byte HMAC key is accepted");
        Demo { key }
    }

    /// The answer to `method` on `path` (which is `/demo` or under
    /// `/demo/`) with the URL's `query`, at `now` (unix seconds): a file of
    /// the page, a token, a redirect to the page, or an error (404 for
    /// another path, 405 for a method other than GET, 400 for a bad name).
    pub fn answer(
        &self,
        method: Option<&str>,
        path: &str,
        query: Option<&str>,
        now: u64,
    ) -> Response {
        if method != Some("GET") {
            return Response::error(405, &format!("{path} takes GET")).with_header("Allow: GET");
        }
        if path == "/demo" {
            let mut moved = Response::error(301, "the demo is at /demo/");
            moved.headers.push_str("Location: /demo/\r\n");
            return moved;
        }
        let name = path.strip_prefix(PAGE_PATH).unwrap_or(path);
        if name == "token" {
            let user = query.and_then(|q| query_param(q, "user"));
            return self.token_response(user.as_deref().unwrap_or(""), now);
        }
        match ASSETS.iter().find(|asset| asset.name == name) {
            Some(asset) => {
                let response = Response {
                    status: 200,
                    content_type: asset.content_type,
                    headers: String::new(),
                    body: Cow::Borrowed(asset.body),
                };
                let response = response
                    .with_header("Cache-Control: no-cache")
                    .with_header("X-Content-Type-Options: nosniff");
                if asset.content_type.starts_with("text/html") {
                    response.with_header(CSP)
                } else {
                    response
                }
            }
            None => Response::error(
                404,
                &format!("no demo file {path}; the page is at {PAGE_PATH}"),
            ),
        }
    }

    /// A token for `user` valid from `now` for [`TOKEN_TTL_SECS`]. The
    /// error says what a name may be.
    pub fn mint(&self, user: &str, now: u64) -> Result<String, String> {
        check_name(user)?;
        let claims = serde_json::json!({
            "sub": user,
            "iat": now,
            "exp": now + TOKEN_TTL_SECS,
        });
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .map_err(|e| format!("cannot sign a token: {e}"))
    }

    /// `/demo/token`: `{"user":..,"token":..,"expires_at":..}`, never
    /// cached, or 400 naming what a name may be.
    fn token_response(&self, user: &str, now: u64) -> Response {
        match self.mint(user, now) {
            Ok(token) => {
                let body = serde_json::json!({
                    "user": user,
                    "token": token,
                    "expires_at": now + TOKEN_TTL_SECS,
                });
                Response::json(200, body).with_header("Cache-Control: no-store")
            }
            Err(why) => Response::error(400, &why),
        }
    }
}

impl std::fmt::Debug for Demo {
    // The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Demo")
    }
}

/// Whether `path` is the demo's: `/demo` or anything under `/demo/`.
pub fn is_demo_path(path: &str) -> bool {
    path == "/demo" || path.starts_with(PAGE_PATH)
}

/// A demo name: 1 to [`MAX_NAME_CHARS`] ASCII letters, digits, `_`, `.`
/// or `-` (what the page's form allows; safe in a channel, a log line and
/// presence). The error, for the 400, says so.
pub fn check_name(user: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if user.is_empty() || user.len() > MAX_NAME_CHARS || !user.chars().all(allowed) {
        return Err(format!(
            "give ?user=NAME: 1 to {MAX_NAME_CHARS} letters, digits, '_', '.' or '-'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Verifier;

    const SECRET: &[u8; KEY_BYTES] = b"demo-test-key-0123456789abcdef01";

    #[test]
    fn minted_tokens_verify_with_the_same_key_only() {
        let demo = Demo::new(SECRET);
        let token = demo.mint("alice", 1_000).expect("a valid name");
        let claims = Verifier::new(Some(SECRET.as_slice()), None)
            .expect("key")
            .verify(&token, 1_000)
            .expect("verifies");
        assert_eq!(&*claims.user, "alice");
        assert_eq!(claims.expires_at, Some(1_000 + TOKEN_TTL_SECS));
        let other = Verifier::new(Some(b"another-key-0123456789abcdef0123"), None).expect("key");
        assert!(other.verify(&token, 1_000).is_err());
    }

    #[test]
    fn names_are_short_and_plain() {
        for good in ["a", "alice", "Bob_2", "x.y-z", &"n".repeat(MAX_NAME_CHARS)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        let long = "n".repeat(MAX_NAME_CHARS + 1);
        for bad in ["", "a b", "#alice", "a,b", "é", "<b>", "a\n", long.as_str()] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn routes_answer_files_tokens_and_errors() {
        let demo = Demo::new(SECRET);
        let page = demo.answer(Some("GET"), "/demo/", None, 0);
        assert_eq!(page.status, 200);
        assert!(page.content_type.starts_with("text/html"));
        assert!(page.body.contains("centrifuge.js") && page.headers.contains(CSP));
        let sdk = demo.answer(Some("GET"), "/demo/centrifuge.js", None, 0);
        assert_eq!(
            (sdk.status, sdk.content_type),
            (200, "text/javascript; charset=utf-8")
        );
        let css = demo.answer(Some("GET"), "/demo/style.css", None, 0);
        assert_eq!(css.content_type, "text/css; charset=utf-8");
        let moved = demo.answer(Some("GET"), "/demo", None, 0);
        assert_eq!(moved.status, 301);
        assert!(moved.headers.contains("Location: /demo/\r\n"));
        assert_eq!(demo.answer(Some("GET"), "/demo/nope", None, 0).status, 404);
        assert_eq!(
            demo.answer(Some("GET"), "/demo/../Cargo.toml", None, 0)
                .status,
            404
        );
        assert_eq!(demo.answer(Some("POST"), "/demo/", None, 0).status, 405);
        let token = demo.answer(Some("GET"), "/demo/token", Some("user=bob"), 7);
        assert_eq!(token.status, 200, "{}", token.body);
        let body: serde_json::Value = serde_json::from_str(&token.body).expect("JSON");
        assert_eq!(body["user"], "bob");
        assert_eq!(body["expires_at"], 7 + TOKEN_TTL_SECS);
        assert!(token.headers.contains("no-store"));
        for query in [None, Some("user="), Some("user=a%20b"), Some("name=bob")] {
            let refused = demo.answer(Some("GET"), "/demo/token", query, 7);
            assert_eq!(refused.status, 400, "{query:?}");
        }
        assert!(is_demo_path("/demo") && is_demo_path("/demo/x") && !is_demo_path("/demos"));
    }
}
