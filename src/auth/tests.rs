//! Verifier tests with real tokens, made by jsonwebtoken with the test-only keys in tests/keys/.

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

use super::*;

/// "Now" for every test: 2027-01-15.
const NOW: u64 = 1_800_000_000;
const SECRET: &[u8] = b"a-test-secret-of-at-least-32-bytes!";

fn key_file(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name);
    std::fs::read(&path).expect("committed test key")
}

fn hmac_verifier() -> Verifier {
    Verifier::new(Some(SECRET), None).expect("secret")
}

fn public_verifier(name: &str) -> Verifier {
    Verifier::new(None, Some(&key_file(name))).expect(name)
}

fn signing_key(alg: Algorithm) -> EncodingKey {
    let key = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => EncodingKey::from_secret(SECRET),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&key_file("ec256.pem")),
        Algorithm::ES384 => EncodingKey::from_ec_pem(&key_file("ec384.pem")),
        _ => EncodingKey::from_rsa_pem(&key_file("rsa2048.pem")),
    };
    key.expect("test signing key")
}

/// A token for `claims` signed the proper way for `alg`.
fn token(alg: Algorithm, claims: &serde_json::Value) -> String {
    encode(&Header::new(alg), claims, &signing_key(alg)).expect("encode")
}

/// A token whose claims part is exactly `payload` (valid JSON).
fn raw_token(alg: Algorithm, payload: &str) -> String {
    let raw = RawValue::from_string(payload.to_string()).expect("JSON payload");
    // encode serializes a RawValue as its own text, byte for byte.
    encode(&Header::new(alg), &raw, &signing_key(alg)).expect("encode")
}

/// A token with any header and payload bytes, signed for `alg`.
fn hand_signed(header: &str, payload: &[u8], alg: Algorithm) -> String {
    let message = format!("{}.{}", b64url(header.as_bytes()), b64url(payload));
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &signing_key(alg), alg).expect("sign");
    format!("{message}.{signature}")
}

/// `message` (header and claims parts, as text) with an HS256 signature.
fn hand_signed_text(message: &str) -> String {
    let key = signing_key(Algorithm::HS256);
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).expect("sign");
    format!("{message}.{signature}")
}

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn parts(token: &str) -> Vec<&str> {
    token.split('.').collect()
}

fn invalid<T: fmt::Debug>(result: Result<T, AuthError>) -> &'static str {
    match result {
        Err(AuthError::Invalid(why)) => why,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn hmac_tokens_verify_with_their_claims() {
    let verifier = hmac_verifier();
    let claims = json!({
        "sub": "alice",
        "exp": NOW + 60,
        "channels": ["chat:*", "news"],
        "info": {"name": "Alice"},
        "iat": NOW,
        "aud": "someone-else",
    });
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let got = verifier.verify(&token(alg, &claims), NOW).expect("valid");
        assert_eq!(&*got.user, "alice");
        assert_eq!(got.expires_at, Some(NOW + 60));
        assert_eq!(got.channels.len(), 2);
        assert!(got.grants("chat:room") && got.grants("news") && !got.grants("sport"));
        assert_eq!(
            got.info.as_deref().map(RawValue::get),
            Some(r#"{"name":"Alice"}"#)
        );
    }
}

#[test]
fn rsa_tokens_verify_with_either_public_key_form() {
    let claims = json!({"sub": "bob", "exp": NOW + 60});
    for key in ["rsa2048.pub.pem", "rsa2048.pkcs1.pub.pem"] {
        let verifier = public_verifier(key);
        for alg in [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512] {
            let got = verifier.verify(&token(alg, &claims), NOW).expect(key);
            assert_eq!(&*got.user, "bob");
        }
    }
}

#[test]
fn ec_tokens_verify_with_the_matching_curve_only() {
    let claims = json!({"sub": "carol", "exp": NOW + 60});
    let es256 = token(Algorithm::ES256, &claims);
    let es384 = token(Algorithm::ES384, &claims);
    let p256 = public_verifier("ec256.pub.pem");
    let p384 = public_verifier("ec384.pub.pem");
    assert_eq!(&*p256.verify(&es256, NOW).expect("ES256").user, "carol");
    assert_eq!(&*p384.verify(&es384, NOW).expect("ES384").user, "carol");
    assert_eq!(
        invalid(p256.verify(&es384, NOW)),
        "alg not accepted by the configured keys"
    );
    assert_eq!(
        invalid(p384.verify(&es256, NOW)),
        "alg not accepted by the configured keys"
    );
}

#[test]
fn accepted_algorithms_follow_the_keys() {
    let both = Verifier::new(Some(SECRET), Some(&key_file("ec256.pub.pem"))).expect("both");
    let algs: Vec<_> = both.algorithms().collect();
    use Algorithm::*;
    assert_eq!(algs, [HS256, HS384, HS512, ES256]);
    assert_eq!(format!("{both:?}"), "[HS256, HS384, HS512, ES256]");
    let rsa: Vec<_> = public_verifier("rsa2048.pub.pem").algorithms().collect();
    assert_eq!(rsa, [RS256, RS384, RS512]);
    // PS256 would verify with an RSA key, but only RS* are accepted.
    let ps256 = token(PS256, &json!({"sub": "x"}));
    let verifier = public_verifier("rsa2048.pub.pem");
    assert_eq!(
        invalid(verifier.verify(&ps256, NOW)),
        "alg not accepted by the configured keys"
    );
    // An HMAC token where only a public key is configured, and the reverse.
    let hs256 = token(HS256, &json!({"sub": "x"}));
    assert!(verifier.verify(&hs256, NOW).is_err());
    let rs256 = token(RS256, &json!({"sub": "x"}));
    assert!(hmac_verifier().verify(&rs256, NOW).is_err());
}

#[test]
fn expiry_allows_the_leeway_and_no_more() {
    let verifier = hmac_verifier();
    let at = |exp: u64| verifier.verify(&token(Algorithm::HS256, &json!({"exp": exp})), NOW);
    assert!(at(NOW + 1).is_ok());
    assert!(at(NOW).is_ok());
    assert!(at(NOW - LEEWAY_SECS + 1).is_ok());
    assert_eq!(at(NOW - LEEWAY_SECS).unwrap_err(), AuthError::Expired);
    assert_eq!(at(NOW - 3600).unwrap_err(), AuthError::Expired);
    assert_eq!(at(0).unwrap_err(), AuthError::Expired);
    assert!(at(u64::MAX).is_ok());
}

#[test]
fn token_without_exp_is_accepted_and_never_expires() {
    let verifier = hmac_verifier();
    let got = verifier
        .verify(&token(Algorithm::HS256, &json!({"sub": "dave"})), u64::MAX)
        .expect("no exp");
    assert_eq!(got.expires_at, None);
}

#[test]
fn not_before_allows_the_leeway() {
    let verifier = hmac_verifier();
    let at = |nbf: u64| verifier.verify(&token(Algorithm::HS256, &json!({"nbf": nbf})), NOW);
    assert!(at(NOW).is_ok());
    assert!(at(NOW + LEEWAY_SECS).is_ok());
    assert_eq!(
        invalid(at(NOW + LEEWAY_SECS + 1)),
        "token not valid yet (nbf)"
    );
}

#[test]
fn bad_signatures_are_refused() {
    let claims = json!({"sub": "eve", "exp": NOW + 60});
    let other = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"another-secret").expect("secret"),
    )
    .expect("encode");
    assert_eq!(
        invalid(hmac_verifier().verify(&other, NOW)),
        "bad signature"
    );
    // Claims changed after signing: alice's signature on eve's claims.
    let alice = token(Algorithm::HS256, &json!({"sub": "alice", "exp": NOW + 60}));
    let eve = token(Algorithm::HS256, &claims);
    let spliced = format!("{}.{}.{}", parts(&eve)[0], parts(&eve)[1], parts(&alice)[2]);
    assert_eq!(
        invalid(hmac_verifier().verify(&spliced, NOW)),
        "bad signature"
    );
    for (alg, key) in [
        (Algorithm::RS256, "rsa2048.pub.pem"),
        (Algorithm::ES256, "ec256.pub.pem"),
    ] {
        let good = token(alg, &claims);
        let [head, body, sig] = parts(&good)[..] else {
            unreachable!()
        };
        // Change one signature character (not the last, whose low bits may be padding).
        let flipped = if sig.starts_with('A') { "B" } else { "A" };
        let tampered = format!("{head}.{body}.{flipped}{}", &sig[1..]);
        assert_eq!(
            invalid(public_verifier(key).verify(&tampered, NOW)),
            "bad signature"
        );
        let empty = format!("{head}.{body}.");
        assert!(public_verifier(key).verify(&empty, NOW).is_err());
    }
}

#[test]
fn alg_none_is_refused() {
    let good = token(Algorithm::HS256, &json!({"sub": "mallory"}));
    let body = parts(&good)[1];
    for header in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"None"}"#,
        r#"{"alg":"NONE","typ":"JWT"}"#,
    ] {
        for sig in ["", parts(&good)[2]] {
            let unsigned = format!("{}.{body}.{sig}", b64url(header.as_bytes()));
            let verifier = Verifier::new(Some(SECRET), Some(&key_file("rsa2048.pub.pem")));
            let why = invalid(verifier.expect("keys").verify(&unsigned, NOW));
            assert_eq!(why, "header is not JSON with a supported alg");
        }
    }
}

#[test]
fn unknown_and_unaccepted_algorithms_are_refused() {
    let body = parts(&token(Algorithm::HS256, &json!({})))[1].to_string();
    let verifier = Verifier::new(Some(SECRET), Some(&key_file("rsa2048.pub.pem"))).expect("keys");
    for alg in ["HS1", "RS1", "ES512", "hs256", "", "EdDSA", "PS256"] {
        let header = b64url(format!(r#"{{"alg":"{alg}"}}"#).as_bytes());
        assert!(
            verifier
                .verify(&format!("{header}.{body}.c2ln"), NOW)
                .is_err(),
            "{alg}"
        );
    }
}

#[test]
fn algorithm_confusion_is_refused() {
    // The classic attack: the public key's PEM, which is public, used as an
    // HMAC secret for a token whose header says HS256.
    for pem_name in ["rsa2048.pub.pem", "rsa2048.pkcs1.pub.pem", "ec256.pub.pem"] {
        let pem = key_file(pem_name);
        let forged = encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub": "admin", "exp": NOW + 60}),
            &EncodingKey::from_secret(&pem).expect("PEM bytes as a secret"),
        )
        .expect("encode");
        // Only the public key configured: no HMAC key, so no HS*.
        let public_only = Verifier::new(None, Some(&pem)).expect("public key");
        assert_eq!(
            invalid(public_only.verify(&forged, NOW)),
            "alg not accepted by the configured keys"
        );
        // Both configured: HS256 is checked with the secret, never the PEM.
        let both = Verifier::new(Some(SECRET), Some(&pem)).expect("both");
        assert_eq!(invalid(both.verify(&forged, NOW)), "bad signature");
    }
}

#[test]
fn ec_signature_presented_as_rs256_is_refused() {
    let es = token(Algorithm::ES256, &json!({"sub": "x", "exp": NOW + 60}));
    let rs = token(Algorithm::RS256, &json!({"sub": "x", "exp": NOW + 60}));
    // ES256 body and signature under an RS256 header.
    let relabeled = format!("{}.{}.{}", parts(&rs)[0], parts(&es)[1], parts(&es)[2]);
    let rsa = public_verifier("rsa2048.pub.pem");
    assert_eq!(invalid(rsa.verify(&relabeled, NOW)), "bad signature");
    let ec = public_verifier("ec256.pub.pem");
    assert_eq!(
        invalid(ec.verify(&relabeled, NOW)),
        "alg not accepted by the configured keys"
    );
    // And the reverse: an RSA signature under an ES256 header.
    let relabeled = format!("{}.{}.{}", parts(&es)[0], parts(&rs)[1], parts(&rs)[2]);
    assert_eq!(invalid(ec.verify(&relabeled, NOW)), "bad signature");
}

#[test]
fn malformed_tokens_are_refused() {
    let verifier = hmac_verifier();
    let good = token(Algorithm::HS256, &json!({"sub": "x"}));
    let [head, body, sig] = parts(&good)[..] else {
        unreachable!()
    };
    let structure = "not three dot-separated parts";
    for bad in [
        "",
        ".",
        "abc",
        "a.b",
        "a.b.c.d",
        "....",
        &format!("{good}."),
    ] {
        assert_eq!(invalid(verifier.verify(bad, NOW)), structure, "{bad:?}");
    }
    assert_eq!(
        invalid(verifier.verify("..", NOW)),
        "header is not JSON with a supported alg"
    );
    let bad_b64 = format!("{head}!.{body}.{sig}");
    assert_eq!(
        invalid(verifier.verify(&bad_b64, NOW)),
        "header is not base64url"
    );
    let padded = format!("{head}.{body}=.{sig}");
    assert_eq!(invalid(verifier.verify(&padded, NOW)), "bad signature");
    let bad_sig = format!("{head}.{body}.{sig}=");
    assert_eq!(
        invalid(verifier.verify(&bad_sig, NOW)),
        "signature is not base64url"
    );
    let bad_body = hand_signed_text(&format!("{head}.{body}!"));
    assert_eq!(
        invalid(verifier.verify(&bad_body, NOW)),
        "claims are not base64url"
    );
    let not_json = format!("{}.{body}.{sig}", b64url(b"hello"));
    assert_eq!(
        invalid(verifier.verify(&not_json, NOW)),
        "header is not JSON with a supported alg"
    );
    // Signed correctly, but the claims are not a JSON object.
    for payload in [
        "hello",
        "[\"x\",1]",
        "\"x\"",
        "1",
        "null",
        "{",
        "{\"sub\":\"a\"}x",
    ] {
        let token = hand_signed(r#"{"alg":"HS256"}"#, payload.as_bytes(), Algorithm::HS256);
        let why = invalid(verifier.verify(&token, NOW));
        assert!(why.starts_with("claims are"), "{payload}: {why}");
    }
    let not_utf8 = hand_signed(
        r#"{"alg":"HS256"}"#,
        b"{\"sub\":\"\xff\"}",
        Algorithm::HS256,
    );
    assert_eq!(
        invalid(verifier.verify(&not_utf8, NOW)),
        "claims are malformed JSON"
    );
}

#[test]
fn jws_extension_headers_are_refused() {
    for header in [
        r#"{"alg":"HS256","crit":["exp"],"exp":1}"#,
        r#"{"alg":"HS256","crit":["b64"],"b64":false}"#,
        r#"{"alg":"HS256","b64":true}"#,
        r#"{"alg":"HS256","crit":[]}"#,
    ] {
        let token = hand_signed(header, br#"{"sub":"x"}"#, Algorithm::HS256);
        let why = invalid(hmac_verifier().verify(&token, NOW));
        assert_eq!(why, "unsupported crit or b64 header", "{header}");
    }
    // A second `alg` could be read differently elsewhere: refused.
    let twice = hand_signed(r#"{"alg":"RS256","alg":"HS256"}"#, b"{}", Algorithm::HS256);
    assert!(hmac_verifier().verify(&twice, NOW).is_err());
    // Key hints are ignored: only the configured keys verify.
    let hinted = r#"{"alg":"HS256","kid":"other","jku":"http://127.0.0.1:1/keys"}"#;
    let token = hand_signed(hinted, br#"{"sub":"x"}"#, Algorithm::HS256);
    assert!(hmac_verifier().verify(&token, NOW).is_ok());
}

#[test]
fn oversized_tokens_are_refused_before_parsing() {
    let verifier = hmac_verifier();
    let token_with = |pad: usize| token(Algorithm::HS256, &json!({"info": "p".repeat(pad)}));
    let mut pad = 5000;
    while token_with(pad + 1).len() <= MAX_TOKEN_BYTES {
        pad += 1;
    }
    let largest = token_with(pad);
    assert!(largest.len() <= MAX_TOKEN_BYTES);
    assert!(verifier.verify(&largest, NOW).is_ok());
    let over = token_with(pad + 1);
    assert!(over.len() > MAX_TOKEN_BYTES);
    assert_eq!(
        invalid(verifier.verify(&over, NOW)),
        "token longer than 8 KiB"
    );
    let junk = "a".repeat(MAX_TOKEN_BYTES + 1);
    assert_eq!(
        invalid(verifier.verify(&junk, NOW)),
        "token longer than 8 KiB"
    );
}

#[test]
fn sub_must_be_a_valid_user_id() {
    let verifier = hmac_verifier();
    let user = |sub: serde_json::Value| {
        let token = token(Algorithm::HS256, &json!({ "sub": sub }));
        verifier.verify(&token, NOW).map(|c| c.user)
    };
    assert_eq!(user(json!("alice")).as_deref(), Ok("alice"));
    assert_eq!(user(json!("")).as_deref(), Ok(""));
    assert_eq!(user(json!(null)).as_deref(), Ok(""));
    assert_eq!(
        user(json!("u".repeat(MAX_USER_BYTES))).map(|u| u.len()),
        Ok(MAX_USER_BYTES)
    );
    let missing = verifier.verify(&token(Algorithm::HS256, &json!({})), NOW);
    assert_eq!(&*missing.expect("anonymous").user, "");
    for bad in [
        json!(5),
        json!(true),
        json!(["alice"]),
        json!({"id": "alice"}),
    ] {
        assert_eq!(invalid(user(bad)), "sub is not a string");
    }
    for bad in [
        "a#b",
        "a,b",
        "a\nb",
        "a\u{1b}[31m",
        &"u".repeat(MAX_USER_BYTES + 1),
    ] {
        assert!(user(json!(bad)).is_err(), "{bad:?}");
    }
}

#[test]
fn channels_must_be_an_array_of_grants() {
    let verifier = hmac_verifier();
    let grants = |channels: serde_json::Value| {
        let token = token(Algorithm::HS256, &json!({ "channels": channels }));
        verifier.verify(&token, NOW)
    };
    let got = grants(json!(["a", "ns:*"])).expect("grants");
    assert!(got.grants("a") && got.grants("ns:x") && !got.grants("nsx:a") && !got.grants("ns"));
    assert!(grants(json!(null)).expect("null").channels.is_empty());
    assert!(grants(json!([])).expect("empty").channels.is_empty());
    for bad in [
        json!("a"),
        json!({"a": 1}),
        json!(1),
        json!([1]),
        json!(["a", null]),
        json!([["a"]]),
    ] {
        assert_eq!(invalid(grants(bad)), "channels is not an array of strings");
    }
    for bad in [
        json!(["*"]),
        json!(["ns:a*"]),
        json!(["a:b:*"]),
        json!([""]),
        json!(["a\u{0}"]),
    ] {
        assert!(grants(bad.clone()).is_err(), "{bad}");
    }
    let most: Vec<String> = (0..MAX_GRANTS).map(|i| format!("{i:x}")).collect();
    assert_eq!(
        grants(json!(most)).expect("1024").channels.len(),
        MAX_GRANTS
    );
    let too_many: Vec<&str> = vec!["a"; MAX_GRANTS + 1];
    assert_eq!(
        invalid(grants(json!(too_many))),
        "channels has more than 1024 entries"
    );
}

#[test]
fn info_is_kept_byte_exact() {
    let verifier = hmac_verifier();
    for info in [
        r#"{"b": 1.50, "a":"\u00e9\n", "c":[ 1e2 ,{}]}"#,
        r#""just a string""#,
        "-0.0",
        "[]",
        "true",
    ] {
        let payload = format!(r#"{{"sub":"x","info": {info} }}"#);
        let got = verifier
            .verify(&raw_token(Algorithm::HS256, &payload), NOW)
            .expect(info);
        assert_eq!(got.info.as_deref().map(RawValue::get), Some(info));
    }
    let none = verifier.verify(&raw_token(Algorithm::HS256, r#"{"info":null}"#), NOW);
    assert!(none.expect("null info").info.is_none());
}

#[test]
fn duplicated_claims_are_refused() {
    let verifier = hmac_verifier();
    for payload in [
        r#"{"sub":"alice","sub":"admin"}"#,
        r#"{"channels":[],"channels":["admin:*"]}"#,
        r#"{"exp":1,"exp":99999999999}"#,
        r#"{"info":1,"info":2}"#,
    ] {
        let token = raw_token(Algorithm::HS256, payload);
        assert!(verifier.verify(&token, NOW).is_err(), "{payload}");
    }
}

#[test]
fn mangled_tokens_never_panic() {
    let verifiers = [
        Verifier::new(Some(SECRET), Some(&key_file("rsa2048.pub.pem"))).expect("keys"),
        public_verifier("ec256.pub.pem"),
    ];
    let tokens = [
        token(
            Algorithm::HS256,
            &json!({"sub": "x", "exp": NOW, "channels": ["a"]}),
        ),
        token(Algorithm::RS256, &json!({"sub": "x"})),
        token(Algorithm::ES256, &json!({"sub": "x"})),
    ];
    for good in &tokens {
        for at in 0..good.len() {
            for replacement in ["", "A", "_", ".", "=", "\u{0}", "é"] {
                let mut mangled = good.clone();
                if mangled.is_char_boundary(at) && mangled.is_char_boundary(at + 1) {
                    mangled.replace_range(at..at + 1, replacement);
                }
                for verifier in &verifiers {
                    let _ = verifier.verify(&mangled, NOW);
                }
            }
        }
    }
}

#[test]
fn auth_error_display() {
    assert_eq!(AuthError::Expired.to_string(), "token expired");
    assert_eq!(
        AuthError::Invalid("bad signature").to_string(),
        "invalid token: bad signature"
    );
}

#[test]
fn verifier_is_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Verifier>();
    send_sync::<Claims>();
}

#[test]
fn keys_are_checked_at_construction() {
    let err = |r: Result<Verifier, String>| r.expect_err("refused");
    assert!(err(Verifier::new(None, None)).contains("no JWT key"));
    assert_eq!(err(Verifier::new(Some(b""), None)), "HMAC secret is empty");
    let private = err(Verifier::new(None, Some(&key_file("rsa2048.pem"))));
    assert!(
        private.starts_with("public key is a private key"),
        "{private}"
    );
    let garbage = err(Verifier::new(Some(SECRET), Some(b"not a pem")));
    assert!(
        garbage.starts_with("public key not a PEM file"),
        "{garbage}"
    );
    // The secret is not printed by Debug.
    let debug = format!("{:?}", hmac_verifier());
    assert!(!debug.contains("a-test-secret"), "{debug}");
}

#[test]
fn from_config_reads_the_key_file_and_names_it() {
    assert!(Verifier::from_config(None, None)
        .expect("nothing")
        .is_none());
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys");
    let rsa = Verifier::from_config(Some("s"), Some(&keys.join("rsa2048.pub.pem")))
        .expect("configured")
        .expect("some");
    assert_eq!(rsa.algorithms().count(), 6);
    let missing = keys.join("no-such.pem");
    let err = Verifier::from_config(None, Some(&missing)).expect_err("missing");
    assert!(
        err.starts_with(&format!("--jwt-public-key {}: ", missing.display())),
        "{err}"
    );
    let err = Verifier::from_config(None, Some(&keys.join("ed25519.pub.pem"))).expect_err("ed");
    assert!(err.contains("ed25519.pub.pem is an Ed25519 key"), "{err}");
    let err = Verifier::from_config(Some(""), None).expect_err("empty");
    assert_eq!(err, "--jwt-hmac-secret is empty");
}
