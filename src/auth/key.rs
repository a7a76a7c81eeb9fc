//! Reading `--jwt-public-key` at startup: which kind of key the PEM holds, checked with the crates that later verify with it.
//!
//! jsonwebtoken takes a PEM without saying much about it (a private key is
//! read as a key too, and an EC key's curve is only found out when a token
//! arrives), so the PEM is parsed here first: a private key, a certificate,
//! a short RSA key or an unsupported algorithm or curve is refused with one
//! line saying what to give instead, and the curve of an EC key decides
//! whether ES256 or ES384 is accepted.

use jsonwebtoken::DecodingKey;
use p256::pkcs8::DecodePublicKey;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};
use rsa::traits::PublicKeyParts;

/// Shortest RSA modulus accepted, in bits (NIST SP 800-131A: 1024 is no
/// longer acceptable for signatures).
pub const MIN_RSA_BITS: usize = 2048;

/// What a public key verifies, so only its algorithms are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PublicKind {
    /// RSA: RS256, RS384, RS512.
    Rsa,
    /// EC on P-256: ES256.
    P256,
    /// EC on P-384: ES384.
    P384,
}

/// rsaEncryption (RFC 8017 appendix C).
const RSA_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// id-ecPublicKey (RFC 5480 section 2.1.1).
const EC_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp256r1, a.k.a. P-256 (RFC 5480 section 2.1.1.1).
const P256_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// secp384r1, a.k.a. P-384.
const P384_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
/// id-Ed25519 (RFC 8410 section 3).
const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Reads the first PEM block of `pem` as a public key: SPKI (`PUBLIC KEY`)
/// for RSA, P-256 or P-384, or PKCS#1 (`RSA PUBLIC KEY`). The error says why
/// not, in one line without the file name (the caller adds it).
pub(super) fn load_public_key(pem: &[u8]) -> Result<(DecodingKey, PublicKind), String> {
    let block = pem::parse(pem).map_err(|e| format!("not a PEM file ({e})"))?;
    let der = block.contents();
    let kind = match block.tag() {
        "PUBLIC KEY" => spki_kind(der)?,
        "RSA PUBLIC KEY" => {
            let key = rsa::PublicKey::from_pkcs1_der(der)
                .map_err(|e| format!("not a valid RSA public key ({e})"))?;
            check_rsa_size(&key)?;
            PublicKind::Rsa
        }
        tag if tag.ends_with("PRIVATE KEY") => {
            return Err("is a private key; give the public key only \
                        (openssl pkey -in KEY -pubout)"
                .into())
        }
        "CERTIFICATE" => {
            return Err("is a certificate; give its public key \
                        (openssl x509 -in CERT -pubkey -noout)"
                .into())
        }
        tag => return Err(format!("holds a {tag:?} PEM block, not a public key")),
    };
    // The same bytes, read again by jsonwebtoken for verification; they
    // parsed above, so this fails only if the two crates disagree.
    let key = match kind {
        PublicKind::Rsa => DecodingKey::from_rsa_pem(pem),
        PublicKind::P256 | PublicKind::P384 => DecodingKey::from_ec_pem(pem),
    };
    let key = key.map_err(|e| format!("not read by jsonwebtoken ({e})"))?;
    Ok((key, kind))
}

/// The kind of an SPKI public key, refusing algorithms and curves
/// corecast does not verify with.
fn spki_kind(der: &[u8]) -> Result<PublicKind, String> {
    let spki = SubjectPublicKeyInfoRef::try_from(der)
        .map_err(|e| format!("not a valid public key ({e})"))?;
    let oid = spki.algorithm.oid;
    if oid == RSA_OID {
        let key = rsa::PublicKey::try_from(spki)
            .map_err(|e| format!("not a valid RSA public key ({e})"))?;
        check_rsa_size(&key)?;
        return Ok(PublicKind::Rsa);
    }
    if oid == ED25519_OID {
        return Err(
            "is an Ed25519 key; EdDSA is not supported (use RSA, EC P-256 or EC P-384)".into(),
        );
    }
    if oid != EC_OID {
        return Err(format!(
            "has key algorithm {oid}; supported are RSA, EC P-256 and EC P-384"
        ));
    }
    let invalid = |e: p256::pkcs8::spki::Error| format!("not a valid EC public key ({e})");
    match spki.algorithm.parameters_oid() {
        Ok(curve) if curve == P256_OID => {
            p256::PublicKey::from_public_key_der(der).map_err(invalid)?;
            Ok(PublicKind::P256)
        }
        Ok(curve) if curve == P384_OID => {
            p384::PublicKey::from_public_key_der(der).map_err(invalid)?;
            Ok(PublicKind::P384)
        }
        Ok(curve) => Err(format!(
            "is an EC key on curve {curve}; supported are P-256 and P-384"
        )),
        Err(e) => Err(invalid(e)),
    }
}

fn check_rsa_size(key: &rsa::PublicKey) -> Result<(), String> {
    let bits = key.n().bit_width();
    if (bits as usize) < MIN_RSA_BITS {
        return Err(format!(
            "is a {bits}-bit RSA key; at least {MIN_RSA_BITS} bits are required"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_file(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/keys")
            .join(name);
        std::fs::read(&path).expect("committed test key")
    }

    fn kind(name: &str) -> Result<PublicKind, String> {
        load_public_key(&key_file(name)).map(|(_, kind)| kind)
    }

    #[test]
    fn public_keys_are_classified() {
        assert_eq!(kind("rsa2048.pub.pem"), Ok(PublicKind::Rsa));
        assert_eq!(kind("rsa2048.pkcs1.pub.pem"), Ok(PublicKind::Rsa));
        assert_eq!(kind("ec256.pub.pem"), Ok(PublicKind::P256));
        assert_eq!(kind("ec384.pub.pem"), Ok(PublicKind::P384));
    }

    #[test]
    fn unusable_keys_are_refused_with_a_reason() {
        let refused = |name: &str, why: &str| {
            let err = kind(name).expect_err(name);
            assert!(err.contains(why), "{name}: {err}");
        };
        refused("rsa2048.pem", "private key");
        refused("ec256.pem", "private key");
        refused("ed25519.pub.pem", "EdDSA is not supported");
        refused("rsa1024.pub.pem", "1024-bit RSA key");
        refused("secp256k1.pub.pem", "curve 1.3.132.0.10");
    }

    #[test]
    fn garbage_is_refused() {
        assert!(load_public_key(b"").is_err());
        assert!(load_public_key(b"secret").is_err());
        let cert = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(load_public_key(cert).unwrap_err().contains("certificate"));
        let bad = b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert!(load_public_key(bad)
            .unwrap_err()
            .contains("not a valid public key"));
    }
}
