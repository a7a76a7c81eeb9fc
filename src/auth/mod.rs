//! Token verification (JWT): [`Verifier`] turns a token into [`Claims`] or an [`AuthError`]; no I/O, no clock, no server state.
//!
//! Built once at startup from `--jwt-hmac-secret` and/or `--jwt-public-key`
//! ([`Verifier::from_config`]) and shared read-only (`Arc`) by every shard;
//! [`Verifier::verify`] is a pure function of the token and the time the
//! caller passes in. Deciding what a connection may do with its claims
//! (namespaces, personal channels, closing at expiry) is the caller's job.
//!
//! Policy, in one place:
//! - **Algorithms are pinned to the configured keys.** HS256/384/512 only
//!   with a secret; RS256/384/512 only with an RSA public key; ES256 only
//!   with a P-256 key and ES384 only with a P-384 key. The header's `alg`
//!   picks the one key of that family, so `alg: none`, PS*/EdDSA, unknown
//!   algorithms and algorithm confusion (an HS256 token "signed" with the
//!   public key's PEM bytes) are [`AuthError::Invalid`].
//! - **Bounded before parsing**: a token over [`MAX_TOKEN_BYTES`] is refused
//!   unread.
//! - **Time**: `exp` is checked with [`LEEWAY_SECS`], `nbf` if present.
//!   **A token without `exp` is accepted and never expires** (as in
//!   Centrifugo, whose clients corecast means to serve): expiry is the
//!   issuer's choice, and a backend that wants it sets `exp`. Such a token
//!   stays valid until its key is rotated, so issuers should set `exp` on
//!   tokens that travel in URLs.
//! - **Not checked**: `aud`, `iss`, `iat`, `jti` (no flags for them yet): a
//!   key shared with other services makes their tokens valid here too, so
//!   give corecast a key of its own.
//! - **Claims** (`sub`, `channels`, `info`): see [`Claims`] and
//!   [`validate_user`]; a claim of the wrong type invalidates the token.
//!
//! The header's `kid`, `jku`, `x5u` and `jwk` are ignored: nothing is ever
//! fetched, and only the configured keys verify.

mod claims;
mod key;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::Path;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::value::RawValue;

pub use claims::{validate_user, Claims, MAX_GRANTS, MAX_USER_BYTES};
use key::PublicKind;
pub use key::MIN_RSA_BITS;

/// Clock skew tolerated on `exp` and `nbf`, in seconds. Hosts running NTP
/// agree to well under a second, so 5 s covers the skew between the issuing
/// backend and corecast plus the token's trip, while an expired token stays
/// usable for 5 s at most.
pub const LEEWAY_SECS: u64 = 5;

/// Longest token accepted, in bytes; longer ones are refused before any
/// parsing. The default `--max-header-bytes` (8 KiB) already bounds a token
/// in the upgrade URL, so the `connect` message gets the same bound. An
/// RS512 token with a 4096-bit key spends under 1 KiB on header and
/// signature, leaving room for about 7 KiB of claims.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Checks tokens against the configured keys. Built once at startup from
/// the configured keys; shared read-only (`Arc`) by all shards.
pub struct Verifier {
    /// One entry per accepted algorithm, each with the only key that may
    /// verify it.
    accepted: Vec<Accepted>,
}

/// An algorithm corecast accepts and the one key that verifies it.
struct Accepted {
    alg: Algorithm,
    key: DecodingKey,
}

impl Accepted {
    /// Checks the signature of a three-part `token` with this key.
    fn check_signature(&self, token: &str) -> Result<(), AuthError> {
        // The caller counted two dots, so there is a last one.
        let (message, signature) = token.rsplit_once('.').unwrap_or_default();
        match jsonwebtoken::crypto::verify(signature, message.as_bytes(), &self.key, self.alg) {
            Ok(true) => Ok(()),
            Ok(false) => Err(AuthError::Invalid("bad signature")),
            Err(e) if matches!(e.kind(), ErrorKind::Base64(_)) => {
                Err(AuthError::Invalid("signature is not base64url"))
            }
            Err(_) => Err(AuthError::Invalid("verification failed")),
        }
    }
}

/// Why a token was refused. Client-caused: the connection gets a close code
/// or HTTP status, never a server error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// Malformed, unsigned, badly signed, not yet valid, or claims that break
    /// the rules; the reason is short and safe to send to the client.
    Invalid(&'static str),
    /// Signed and well formed, but past `exp` (plus [`LEEWAY_SECS`]).
    Expired,
}

impl Verifier {
    /// Builds a verifier from an HMAC secret (`--jwt-hmac-secret`; accepts
    /// HS256/384/512) and/or the contents of a public key PEM
    /// (`--jwt-public-key`: RSA in SPKI or PKCS#1 form accepts RS256/384/512,
    /// EC P-256 accepts ES256, EC P-384 ES384). Refused, with one line: no
    /// key at all, an empty secret, a PEM that does not parse, a private key
    /// or certificate instead of a public key (a verifier needs no private
    /// key, and holding one is needless exposure), an RSA key under
    /// [`MIN_RSA_BITS`], or another key type (Ed25519/EdDSA, other curves).
    pub fn new(
        hmac_secret: Option<&[u8]>,
        public_key_pem: Option<&[u8]>,
    ) -> Result<Verifier, String> {
        if hmac_secret.is_none() && public_key_pem.is_none() {
            return Err("no JWT key: give an HMAC secret, a public key or both".into());
        }
        let mut accepted = Vec::new();
        if let Some(secret) = hmac_secret {
            accepted.extend(hmac_algorithms(secret).map_err(|e| format!("HMAC secret {e}"))?);
        }
        if let Some(pem) = public_key_pem {
            accepted.extend(public_algorithms(pem).map_err(|e| format!("public key {e}"))?);
        }
        Ok(Verifier { accepted })
    }

    /// The verifier the flags ask for, or `None` when neither is given:
    /// reads the PEM at `public_key_path` (startup only) and builds as
    /// [`Verifier::new`] does; an error names the flag (and the path). Warns (log)
    /// about an HMAC secret shorter than 32 bytes, which RFC 7518 section
    /// 3.2 rules out for HS256 but is common in development setups.
    pub fn from_config(
        hmac_secret: Option<&str>,
        public_key_path: Option<&Path>,
    ) -> Result<Option<Verifier>, String> {
        if hmac_secret.is_none() && public_key_path.is_none() {
            return Ok(None);
        }
        let mut accepted = Vec::new();
        if let Some(secret) = hmac_secret {
            accepted.extend(
                hmac_algorithms(secret.as_bytes()).map_err(|e| format!("--jwt-hmac-secret {e}"))?,
            );
            if secret.len() < 32 {
                log::warn!(
                    "jwt hmac secret is short bytes={} (RFC 7518 asks for at least 32)",
                    secret.len()
                );
            }
        }
        if let Some(path) = public_key_path {
            let at = || format!("--jwt-public-key {}", path.display());
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", at()))?;
            accepted.extend(public_algorithms(&pem).map_err(|e| format!("{} {e}", at()))?);
        }
        Ok(Some(Verifier { accepted }))
    }

    /// Verifies `token` at `now` (unix seconds, passed in so the server and
    /// tests control time): size, structure, that its `alg` is accepted, the
    /// signature with that algorithm's key, then the claims, `exp` with
    /// [`LEEWAY_SECS`] and `nbf` if present. Never panics, whatever the bytes.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Invalid("token longer than 8 KiB"));
        }
        if token.bytes().filter(|&b| b == b'.').count() != 2 {
            return Err(AuthError::Invalid("not three dot-separated parts"));
        }
        self.pinned(token)?.check_signature(token)?;
        // Reads the claims part only (base64url, then JSON). jsonwebtoken
        // calls it insecure because it checks nothing: the signature over
        // these very bytes was checked just above, and claims::parse does
        // the rest with the caller's clock (`decode` would read the system
        // clock, and parse the claims a second time its own way).
        let claims = jsonwebtoken::dangerous::insecure_decode_claims::<Box<RawValue>>(token)
            .map_err(|e| match e.kind() {
                ErrorKind::Base64(_) => AuthError::Invalid("claims are not base64url"),
                _ => AuthError::Invalid("claims are malformed JSON"),
            })?;
        claims::parse(claims.get(), now)
    }

    /// The accepted algorithms, in configuration order (for logs and tests).
    pub fn algorithms(&self) -> impl Iterator<Item = Algorithm> + '_ {
        self.accepted.iter().map(|a| a.alg)
    }

    /// The algorithm and key for `token`, by its header's `alg`: the one
    /// key configured for that family, or refused. This is what stops
    /// algorithm confusion: the header never chooses how a key is used.
    fn pinned(&self, token: &str) -> Result<&Accepted, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::Base64(_) => AuthError::Invalid("header is not base64url"),
            _ => AuthError::Invalid("header is not JSON with a supported alg"),
        })?;
        // No JWS extension is understood (RFC 7515 section 4.1.11), and an
        // unencoded payload (RFC 7797 `b64`) is not supported.
        if header.crit.is_some() || header.extras.inner().contains_key("b64") {
            return Err(AuthError::Invalid("unsupported crit or b64 header"));
        }
        let alg_refused = AuthError::Invalid("alg not accepted by the configured keys");
        self.accepted
            .iter()
            .find(|a| a.alg == header.alg)
            .ok_or(alg_refused)
    }
}

impl fmt::Debug for Verifier {
    // Lists algorithms only: the keys stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.algorithms()).finish()
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Invalid(why) => write!(f, "invalid token: {why}"),
            AuthError::Expired => f.write_str("token expired"),
        }
    }
}

impl std::error::Error for AuthError {}

/// HS256/384/512 with `secret`; the error completes "HMAC secret ...".
fn hmac_algorithms(secret: &[u8]) -> Result<Vec<Accepted>, String> {
    let key = DecodingKey::from_secret(secret).map_err(|_| "is empty".to_string())?;
    let algs = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
    Ok(algs
        .map(|alg| Accepted {
            alg,
            key: key.clone(),
        })
        .into())
}

/// The algorithms of the public key in `pem`; the error completes
/// "public key ...".
fn public_algorithms(pem: &[u8]) -> Result<Vec<Accepted>, String> {
    let (key, kind) = key::load_public_key(pem)?;
    let algs: &[Algorithm] = match kind {
        PublicKind::Rsa => &[Algorithm::RS256, Algorithm::RS384, Algorithm::RS512],
        PublicKind::P256 => &[Algorithm::ES256],
        PublicKind::P384 => &[Algorithm::ES384],
    };
    Ok(algs
        .iter()
        .map(|&alg| Accepted {
            alg,
            key: key.clone(),
        })
        .collect())
}
