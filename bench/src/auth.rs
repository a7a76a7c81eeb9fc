//! `--jwt-hmac-secret`: the HS256 token each connection to a `/ws` URL
//! carries in its upgrade (`/ws?token=JWT`), one user per connection, and
//! the check that tokens go to corecast only. Signing happens here, before a
//! run's clock starts (`run::start` calls [`Signer::token`] while it plans
//! the connections); the event loops only copy a finished token into the
//! request. No socket I/O happens here; the target check reads /proc.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::{net, procfs};

/// Environment variable read when `--jwt-hmac-secret` is not given.
pub const SECRET_ENV: &str = "CORECAST_BENCH_JWT_HMAC_SECRET";

/// How long a token is valid: far longer than any run (a soak is minutes to
/// hours), so no connection, nor a churned one reopening with the token
/// made at the start, ever meets its expiry.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// The one URL path whose connections carry a token: corecast's pub/sub
/// endpoint. `/echo` has no notion of users.
pub const TOKEN_PATH: &str = "/ws";

/// Program name (`/proc/PID/comm`) of the server tokens may go to.
pub const SERVER_NAME: &str = "corecast";

/// The HMAC secret given with `--jwt-hmac-secret` or [`SECRET_ENV`].
/// `Debug` never shows it, so no log, panic message or `{:?}` of the CLI does.
#[derive(Clone)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Parses the flag's value; an empty secret is refused (HMAC with no key
/// would sign tokens any server accepts as forged).
pub fn parse_secret(s: &str) -> Result<Secret, String> {
    if s.is_empty() {
        return Err(format!(
            "the secret must not be empty (to turn auth off, unset {SECRET_ENV})"
        ));
    }
    Ok(Secret(s.to_string()))
}

/// What a run does about authentication, for the report's `auth` row and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No secret: every connection is anonymous.
    Off,
    /// A secret, but no URL of the run is a `/ws` URL (e.g. `echo`), so no token is sent.
    NoWsUrl,
    /// Every connection to a `/ws` URL carries its own user's HS256 token.
    PerConnectionUsers,
}

impl Mode {
    /// The mode of a run given its secret and URLs.
    pub fn of(secret: Option<&Secret>, urls: &[String]) -> Mode {
        match secret {
            None => Mode::Off,
            Some(_) if urls.iter().any(|u| url_takes_token(u)) => Mode::PerConnectionUsers,
            Some(_) => Mode::NoWsUrl,
        }
    }

    /// A short stable label for the JSON line.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Off | Mode::NoWsUrl => "off",
            Mode::PerConnectionUsers => "hs256 per-connection users",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Off => f.write_str("off (anonymous connections)"),
            Mode::NoWsUrl => f.write_str("off (a secret was given, but no URL is /ws)"),
            Mode::PerConnectionUsers => write!(
                f,
                "hs256 per-connection users: /ws?token=JWT, sub u<N> (N = connection index), \
                 exp +{}h, signed before the clock started",
                TOKEN_LIFETIME.as_secs() / 3600
            ),
        }
    }
}

/// Signs one token per connection with a fixed expiry.
pub struct Signer {
    key: EncodingKey,
    header: Header,
    /// Expiry of every token, seconds since the Unix epoch.
    exp: u64,
}

impl Signer {
    /// A signer whose tokens expire [`TOKEN_LIFETIME`] after `now`.
    pub fn new(secret: &Secret, now: SystemTime) -> Result<Signer, String> {
        let key = EncodingKey::from_secret(secret.0.as_bytes())
            .map_err(|e| format!("--jwt-hmac-secret: {e}"))?;
        let since_epoch = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| "the system clock is before 1970; cannot set token expiry")?;
        Ok(Signer {
            key,
            header: Header::new(Algorithm::HS256),
            exp: (since_epoch + TOKEN_LIFETIME).as_secs(),
        })
    }

    /// The token of connection `conn_idx`: claims `{"sub":"u<conn_idx>","exp":...}`.
    pub fn token(&self, conn_idx: usize) -> Result<String, String> {
        let claims = json!({ "sub": user(conn_idx), "exp": self.exp });
        jsonwebtoken::encode(&self.header, &claims, &self.key).map_err(|e| format!("signing: {e}"))
    }
}

/// The user id of connection `conn_idx`: each connection is its own user,
/// the costly case for the server's per-user index.
pub fn user(conn_idx: usize) -> String {
    format!("u{conn_idx}")
}

/// Whether connections to a URL with this path carry a token.
pub fn takes_token(path: &str) -> bool {
    let path = path.split('?').next();
    path == Some(TOKEN_PATH) || path == Some(crate::centrifugo::PATH)
}

/// Whether connections to the URL `url` (as given) carry a token; a URL
/// that does not parse takes none (the run refuses it anyway).
pub fn url_takes_token(url: &str) -> bool {
    net::split_url(url).is_ok_and(|(_, path)| takes_token(path))
}

/// Refuses a run whose `/ws` URLs lead to a local program that is not
/// corecast (a reference peer, say, reached with the env var still set):
/// tokens are corecast's. Returns warnings for ports where no listener
/// could be identified (a remote host, or a server of another user whose
/// fds cannot be read); those runs go ahead, as the secret was given.
pub fn check_targets(ports: &[u16]) -> Result<Vec<String>, String> {
    let mut warnings = Vec::new();
    for &port in ports {
        let listeners: Vec<(u32, Option<String>)> = procfs::listening_pids(port)
            .into_iter()
            .map(|pid| (pid, procfs::process_name(pid)))
            .collect();
        if let Some(w) = judge_listeners(port, &listeners)? {
            warnings.push(w);
        }
    }
    Ok(warnings)
}

/// The verdict on one port's listeners: `Err` if any is known not to be
/// corecast, a warning if none could be identified, else nothing.
fn judge_listeners(
    port: u16,
    listeners: &[(u32, Option<String>)],
) -> Result<Option<String>, String> {
    for (pid, name) in listeners {
        if let Some(name) = name.as_deref().filter(|n| *n != SERVER_NAME) {
            return Err(format!(
                "--jwt-hmac-secret / {SECRET_ENV}: port {port} is served by `{name}` (pid {pid}), \
                 not {SERVER_NAME}; tokens are sent to {SERVER_NAME} only, so unset the secret \
                 for other servers"
            ));
        }
    }
    if listeners.iter().any(|(_, name)| name.is_some()) {
        return Ok(None);
    }
    Ok(Some(format!(
        "warning: could not tell which program listens on port {port}; \
         sending tokens since a secret was given"
    )))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use jsonwebtoken::{decode, DecodingKey, Validation};
    use serde_json::Value;

    fn secret() -> Secret {
        parse_secret("bench-test-secret").unwrap()
    }

    /// Decodes `token` as the server would: HS256 only, with the same secret, `exp` enforced.
    pub(crate) fn verify(token: &str) -> Value {
        let key = DecodingKey::from_secret(b"bench-test-secret").unwrap();
        let mut v = Validation::new(Algorithm::HS256);
        v.set_required_spec_claims(&["exp", "sub"]);
        decode::<Value>(token, &key, &v).unwrap().claims
    }

    #[test]
    fn tokens_decode_to_their_connections_user_with_a_future_expiry() {
        let now = SystemTime::now();
        let signer = Signer::new(&secret(), now).unwrap();
        let unix_now = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
        for n in [0usize, 1, 199, 123_456] {
            let claims = verify(&signer.token(n).unwrap());
            assert_eq!(claims["sub"], format!("u{n}"));
            let exp = claims["exp"].as_u64().unwrap();
            assert_eq!(exp, unix_now + TOKEN_LIFETIME.as_secs());
            assert!(exp > unix_now);
        }
    }

    #[test]
    fn tokens_do_not_verify_with_another_secret() {
        let token = Signer::new(&secret(), SystemTime::now())
            .unwrap()
            .token(3)
            .unwrap();
        let other = DecodingKey::from_secret(b"another-secret").unwrap();
        assert!(decode::<Value>(&token, &other, &Validation::new(Algorithm::HS256)).is_err());
    }

    #[test]
    fn empty_secrets_are_refused_and_secrets_never_print() {
        assert!(parse_secret("").is_err());
        assert_eq!(format!("{:?}", secret()), "Secret(..)");
    }

    #[test]
    fn only_ws_paths_take_tokens() {
        assert!(takes_token("/ws"));
        assert!(takes_token("/ws?x=1"));
        assert!(!takes_token("/echo"));
        assert!(!takes_token("/wsx"));
        assert!(url_takes_token("ws://127.0.0.1:9000"));
        assert!(!url_takes_token("ws://127.0.0.1:9000/echo"));
        assert!(!url_takes_token("http://127.0.0.1:9000/ws"));
    }

    #[test]
    fn mode_follows_secret_and_urls() {
        let ws = vec!["ws://127.0.0.1:1/ws".to_string()];
        let echo = vec!["ws://127.0.0.1:1/echo".to_string()];
        assert_eq!(Mode::of(None, &ws), Mode::Off);
        assert_eq!(Mode::of(Some(&secret()), &echo), Mode::NoWsUrl);
        let on = Mode::of(Some(&secret()), &ws);
        assert_eq!(on, Mode::PerConnectionUsers);
        assert_eq!(on.label(), "hs256 per-connection users");
        assert!(on.to_string().starts_with("hs256 per-connection users"));
    }

    #[test]
    fn tokens_go_to_corecast_only() {
        let cc = |pid| (pid, Some("corecast".to_string()));
        assert_eq!(judge_listeners(1, &[cc(10), cc(11)]), Ok(None));
        let e = judge_listeners(1, &[(12, Some("node".into()))]).unwrap_err();
        assert!(e.contains("`node` (pid 12)"), "{e}");
        assert!(judge_listeners(1, &[cc(10), (13, Some("python3".into()))]).is_err());
        let w = judge_listeners(1, &[]).unwrap().unwrap();
        assert!(w.contains("could not tell"), "{w}");
        assert!(judge_listeners(1, &[(14, None)]).unwrap().is_some());
    }
}
