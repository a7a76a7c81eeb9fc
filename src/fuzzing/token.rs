//! `jwt_token` oracle: [`Verifier::verify`] on arbitrary bytes, and on tokens built from them that must verify exactly.
//!
//! The signing keys are the test-only ones in tests/keys/ (compiled in, so
//! the oracle reads no file); they verify nothing outside corecast's tests.

use std::sync::LazyLock;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::auth::{validate_user, AuthError, Claims, Verifier, LEEWAY_SECS, MAX_TOKEN_BYTES};
use crate::auth::{MAX_GRANTS, MAX_USER_BYTES};
use crate::message::validate_channel;

/// The time every token is verified at.
const NOW: u64 = 1_800_000_000;
/// HMAC secret of the HS256 verifier.
const SECRET: &[u8] = b"corecast-fuzzing-secret-of-32-bytes";
/// Test-only RSA key pair (tests/keys/README.md).
const RSA_PRIVATE: &[u8] = include_bytes!("../../tests/keys/rsa2048.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("../../tests/keys/rsa2048.pub.pem");
/// The base64url alphabet, to change one signature character for another.
const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// An HMAC-only verifier and an RSA-only one, as a server would hold them.
struct Keys {
    hmac: Verifier,
    rsa: Verifier,
    hmac_signer: EncodingKey,
    /// An RS256 token for user `rsa`, signed once: RSA signing takes tens
    /// of milliseconds in a sanitizer build, which signing per input would
    /// spend on every run (verifying is far cheaper).
    rs256: String,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let rsa_signer = EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("committed RSA private key");
    let claims = json!({"sub": "rsa", "exp": NOW + 60, "channels": ["rsa:*"]});
    Keys {
        hmac: Verifier::new(Some(SECRET), None).expect("fixed secret"),
        rsa: Verifier::new(None, Some(RSA_PUBLIC)).expect("committed RSA public key"),
        hmac_signer: EncodingKey::from_secret(SECRET).expect("fixed secret"),
        rs256: encode(&Header::new(Algorithm::RS256), &claims, &rsa_signer).expect("sign"),
    }
});

/// `jwt_token`: the bytes (lossily as UTF-8) are a token for both
/// verifiers, which never panic and accept only claims that keep the rules.
/// Then, with byte 0 choosing the shape (bits 1-3: exp absent, valid or
/// expired, bit 4: nbf, bits 5-6: channels and info) and byte 1 a number,
/// the rest split at NUL into user, channels and info makes an HS256 token
/// that must verify to exactly those claims (or be Expired, or too long),
/// and must fail with any one signature character changed; with bit 0 the
/// same holds for the pre-signed RS256 token. Last, the rest as JSON is
/// signed as the claims part: verify agrees with a plain serde_json
/// reading of it.
pub fn check_jwt_token(data: &[u8]) {
    let keys = &*KEYS;
    let token = String::from_utf8_lossy(data);
    for verifier in [&keys.hmac, &keys.rsa] {
        if let Ok(claims) = verifier.verify(&token, NOW) {
            check_claims(&claims);
        }
    }
    let Some((&[shape, number], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    check_built_token(keys, shape, number, rest);
    if shape & 1 == 1 {
        check_rs256(keys, number);
    }
    if let Ok(json) = std::str::from_utf8(rest) {
        check_signed_json(keys, json, number);
    }
}

/// What any accepted token's claims satisfy.
fn check_claims(claims: &Claims) {
    if !claims.user.is_empty() {
        validate_user(&claims.user).expect("accepted user id is valid");
    }
    assert!(claims.user.len() <= MAX_USER_BYTES);
    assert!(claims.channels.len() <= MAX_GRANTS);
    for grant in claims.channels.iter() {
        validate_channel(grant).expect("accepted grant is a channel name");
        let name = grant.strip_suffix(":*").unwrap_or(grant);
        assert!(!name.is_empty() && !name.contains('*'), "{grant}");
        let probes = [
            grant.to_string(),
            name.to_string(),
            format!("{name}:x"),
            format!("{name}x:y"),
            format!("x{grant}"),
        ];
        for probe in &probes {
            assert_eq!(
                claims.grants(probe),
                model_grants(&claims.channels, probe),
                "{probe}"
            );
        }
    }
    if let Some(info) = &claims.info {
        serde_json::from_str::<IgnoredAny>(info.get()).expect("info is JSON");
    }
    if let Some(exp) = claims.expires_at {
        assert!(
            NOW < exp.saturating_add(LEEWAY_SECS),
            "expired token accepted"
        );
    }
}

/// `grants` by its definition: a grant is an exact name, or `ns:*` naming
/// the channel's namespace (the part before its first `:`).
fn model_grants(channels: &[Box<str>], channel: &str) -> bool {
    let namespace = channel.split_once(':').map(|(ns, _)| ns);
    channels.iter().any(|grant| match grant.strip_suffix(":*") {
        Some(ns) if !ns.contains(':') => namespace == Some(ns),
        _ => **grant == *channel,
    })
}

/// Claims made valid by construction from the bytes, signed, verified,
/// then tampered with.
fn check_built_token(keys: &Keys, shape: u8, number: u8, rest: &[u8]) {
    let mut fields = rest.splitn(3, |&b| b == 0);
    let user = user_from(fields.next().unwrap_or_default());
    let mut claims = json!({ "sub": user });
    let offset = u64::from(number) * 997;
    let exp = match (shape >> 1) & 7 {
        0 | 1 => None,
        2..=5 => Some(NOW - LEEWAY_SECS + 1 + offset),
        _ => Some(NOW - LEEWAY_SECS - offset),
    };
    if let Some(exp) = exp {
        claims["exp"] = json!(exp);
    }
    if shape & 16 != 0 {
        claims["nbf"] = json!(NOW + LEEWAY_SECS);
    }
    let grants = grants_from(fields.next().unwrap_or_default());
    if shape & 32 != 0 {
        claims["channels"] = json!(grants);
    }
    let info = serde_json::to_string(&String::from_utf8_lossy(fields.next().unwrap_or_default()))
        .expect("a string serializes");
    if shape & 64 != 0 {
        claims["info"] = serde_json::from_str(&info).expect("a JSON string");
    }
    let header = Header::new(Algorithm::HS256);
    let token = encode(&header, &claims, &keys.hmac_signer).expect("encode");
    let result = keys.hmac.verify(&token, NOW);
    if token.len() > MAX_TOKEN_BYTES {
        assert_eq!(
            result.unwrap_err(),
            AuthError::Invalid("token longer than 8 KiB")
        );
        return;
    }
    match exp {
        Some(exp) if NOW >= exp + LEEWAY_SECS => {
            assert_eq!(result.unwrap_err(), AuthError::Expired)
        }
        _ => {
            let got = result.unwrap_or_else(|e| panic!("{e}: {claims}"));
            check_claims(&got);
            assert_eq!(*got.user, user);
            assert_eq!(got.expires_at, exp);
            let want: &[String] = if shape & 32 != 0 { &grants } else { &[] };
            assert!(got
                .channels
                .iter()
                .map(|c| &**c)
                .eq(want.iter().map(String::as_str)));
            let want_info = (shape & 64 != 0).then_some(info.as_str());
            assert_eq!(got.info.as_deref().map(RawValue::get), want_info);
        }
    }
    assert!(matches!(
        keys.rsa.verify(&token, NOW),
        Err(AuthError::Invalid(_))
    ));
    let tampered = change_signature(&token, number);
    let refused = keys.hmac.verify(&tampered, NOW);
    assert_eq!(refused.unwrap_err(), AuthError::Invalid("bad signature"));
}

/// The pre-signed RS256 token verifies with the RSA key only, and not with
/// one signature character changed.
fn check_rs256(keys: &Keys, number: u8) {
    let claims = keys
        .rsa
        .verify(&keys.rs256, NOW)
        .expect("pre-signed RS256 token");
    assert_eq!(&*claims.user, "rsa");
    check_claims(&claims);
    assert!(matches!(
        keys.hmac.verify(&keys.rs256, NOW),
        Err(AuthError::Invalid(_))
    ));
    let tampered = change_signature(&keys.rs256, number);
    let refused = keys.rsa.verify(&tampered, NOW);
    assert_eq!(refused.unwrap_err(), AuthError::Invalid("bad signature"));
}

/// A valid user id from bytes: printable characters other than `#` and
/// `,`, cut to [`MAX_USER_BYTES`] on a character boundary.
fn user_from(bytes: &[u8]) -> String {
    let mut user = String::new();
    let printable = |c: &char| !c.is_control() && !matches!(c, '#' | ',');
    for c in String::from_utf8_lossy(bytes).chars().filter(printable) {
        if user.len() + c.len_utf8() > MAX_USER_BYTES {
            break;
        }
        user.push(c);
    }
    user
}

/// Valid grants from bytes: space-separated names without control
/// characters or `*`, cut to 200 bytes; every other one without `:`
/// becomes a pattern `name:*`.
fn grants_from(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let names = text.split(' ').map(|word| {
        let mut name = String::new();
        for c in word.chars().filter(|c| !c.is_control() && *c != '*') {
            if name.len() + c.len_utf8() > 200 {
                break;
            }
            name.push(c);
        }
        name
    });
    let names = names.filter(|name| !name.is_empty()).take(MAX_GRANTS);
    let grant = |(i, name): (usize, String)| match i % 2 == 0 && !name.contains(':') {
        true => format!("{name}:*"),
        false => name,
    };
    names.enumerate().map(grant).collect()
}

/// The token with one signature character (never the last, whose low bits
/// may be padding) replaced by another base64url character.
fn change_signature(token: &str, number: u8) -> String {
    let (message, signature) = token.rsplit_once('.').expect("a three-part token");
    let mut signature = signature.as_bytes().to_vec();
    let at = usize::from(number) % (signature.len() - 1);
    let was = B64URL
        .iter()
        .position(|&c| c == signature[at])
        .expect("base64url");
    signature[at] = B64URL[(was + 1 + usize::from(number) % 63) % 64];
    let signature = String::from_utf8(signature).expect("base64url is ASCII");
    format!("{message}.{signature}")
}

/// The text, if it is JSON, signed as the claims part: verify accepts it
/// only as an object whose `sub` serde_json reads as the same user, and a
/// changed signature is refused. (Grammatical JSON that `Value` cannot hold,
/// such as 1e999 in an ignored claim, is only checked to be an object.)
fn check_signed_json(keys: &Keys, json: &str, number: u8) {
    let Ok(raw) = RawValue::from_string(json.to_string()) else {
        return;
    };
    let token = encode(&Header::new(Algorithm::HS256), &raw, &keys.hmac_signer).expect("encode");
    let result = keys.hmac.verify(&token, NOW);
    let value: Option<Value> = serde_json::from_str(json).ok();
    match &result {
        Ok(claims) => {
            check_claims(claims);
            assert!(
                json.trim_start().starts_with('{'),
                "accepted claims are an object"
            );
            if let Some(value) = &value {
                let sub = value.get("sub").and_then(Value::as_str).unwrap_or("");
                assert_eq!(&*claims.user, sub);
            }
        }
        Err(AuthError::Expired) => {
            if let Some(value) = &value {
                let exp = value.get("exp").and_then(Value::as_f64);
                assert!(
                    exp.is_some_and(|exp| exp < (NOW + LEEWAY_SECS) as f64),
                    "{json}"
                );
            }
        }
        Err(AuthError::Invalid(_)) => {}
    }
    if token.len() <= MAX_TOKEN_BYTES {
        let tampered = change_signature(&token, number);
        let refused = keys.hmac.verify(&tampered, NOW);
        assert_eq!(refused.unwrap_err(), AuthError::Invalid("bad signature"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus/jwt_token")
            .join(name);
        std::fs::read_to_string(path).expect("committed seed")
    }

    /// The seeds reach the accepting path of each verifier, so the fuzzer
    /// starts from tokens that pass and mutates towards the edges.
    #[test]
    fn seed_tokens_verify_as_intended() {
        let keys = &*KEYS;
        let alice = keys
            .hmac
            .verify(&seed("hs256-valid"), NOW)
            .expect("HS256 seed");
        assert!(alice.grants("chat:room") && alice.info.is_some());
        assert_eq!(
            &*keys
                .rsa
                .verify(&seed("rs256-valid"), NOW)
                .expect("RS256")
                .user,
            "bob"
        );
        let expired = keys.hmac.verify(&seed("hs256-expired"), NOW);
        assert_eq!(expired.unwrap_err(), AuthError::Expired);
        for name in ["alg-none", "alg-confusion"] {
            for verifier in [&keys.hmac, &keys.rsa] {
                let refused = verifier.verify(&seed(name), NOW);
                assert!(matches!(refused, Err(AuthError::Invalid(_))), "{name}");
            }
        }
    }
}
