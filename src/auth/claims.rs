//! `Claims`: what a verified token says about its holder, parsed from the claims JSON after the signature checked out; no crypto here.
//!
//! The claims corecast reads are `sub`, `exp`, `nbf`, `channels` and `info`;
//! every other claim (`iat`, `jti`, `iss`, `aud`, ...) is ignored. A claim
//! present with the wrong type makes the whole token invalid rather than
//! being skipped, so a backend bug shows up at once instead of as a missing
//! permission.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{AuthError, LEEWAY_SECS};
use crate::message::{validate_channel, MAX_CHANNEL_BYTES};

/// Longest user id (`sub`), in bytes: one less than the longest channel
/// name, so a user's personal channel `#<user>` is always a valid channel.
pub const MAX_USER_BYTES: usize = MAX_CHANNEL_BYTES - 1;

/// Most entries a `channels` claim may hold. Checking a grant walks the list
/// (on subscribe, never per message), so the bound keeps that walk short;
/// an application granting more should use `ns:*` patterns.
pub const MAX_GRANTS: usize = 1024;

/// What a verified token says about the connection presenting it.
#[derive(Debug, Clone)]
pub struct Claims {
    /// The `sub` claim: the user id, "" for an anonymous holder (claim
    /// missing, null or empty). Valid by [`validate_user`] when not empty.
    pub user: Box<str>,
    /// The `exp` claim (unix seconds; a fraction is dropped), as the token
    /// gives it: the verifier accepted it until `exp + LEEWAY_SECS`. `None`
    /// for a token without `exp`, which never expires.
    pub expires_at: Option<u64>,
    /// The `channels` claim: exact channel names and `ns:*` patterns, as
    /// given; see [`Claims::grants`]. Empty when the claim is missing or null.
    pub channels: Box<[Box<str>]>,
    /// The `info` claim, any JSON, kept as the token's own bytes (presence
    /// shows it verbatim). `None` when missing or null.
    pub info: Option<Box<RawValue>>,
}

impl Claims {
    /// True when `channel` is granted by the `channels` claim: it is one of
    /// its exact names, or a pattern `ns:*` names its namespace (the channel
    /// starts with `ns:`). There is no other wildcard: `ns:*` grants neither
    /// `ns` nor `nsx:a`, and no entry grants every channel.
    pub fn grants(&self, channel: &str) -> bool {
        self.channels
            .iter()
            .any(|grant| match grant.strip_suffix(":*") {
                // Parsing refused every other `*`, so this is a pattern.
                Some(ns) => channel
                    .strip_prefix(ns)
                    .is_some_and(|rest| rest.starts_with(':')),
                None => **grant == *channel,
            })
    }
}

/// Checks a non-empty user id (`sub`): at most [`MAX_USER_BYTES`], no
/// control characters (it is logged and shown in presence), and neither `#`
/// nor `,`. `#` starts a personal channel (`#alice`) and `,` separates user
/// ids, so reserving both keeps `#<user>` and any later user-limited channel
/// form (Centrifugo's `chat:room#alice,bob`) unambiguous. The error is the
/// reason, for [`AuthError::Invalid`].
pub fn validate_user(user: &str) -> Result<(), &'static str> {
    if user.len() > MAX_USER_BYTES {
        return Err("sub is longer than 254 bytes");
    }
    if user.chars().any(char::is_control) {
        return Err("sub contains a control character");
    }
    if user.contains(['#', ',']) {
        return Err("sub contains '#' or ','");
    }
    Ok(())
}

/// The claims corecast reads, each kept raw so a wrong type gets its own
/// reason. A duplicated one is refused by serde (two `sub`s could be read
/// differently by the backend and by us).
#[derive(Deserialize)]
struct RawClaims<'a> {
    #[serde(borrow, default)]
    sub: Option<&'a RawValue>,
    #[serde(borrow, default)]
    exp: Option<&'a RawValue>,
    #[serde(borrow, default)]
    nbf: Option<&'a RawValue>,
    #[serde(borrow, default)]
    channels: Option<&'a RawValue>,
    #[serde(borrow, default)]
    info: Option<&'a RawValue>,
}

/// Parses the claims JSON of a token whose signature checked out, then
/// checks `exp` and `nbf` against `now` (unix seconds) with [`LEEWAY_SECS`]:
/// the token is valid while `now < exp + LEEWAY_SECS` and from
/// `nbf - LEEWAY_SECS` on. Format errors win over time errors, so a broken
/// token is reported as such whatever the clock says.
pub(super) fn parse(json: &str, now: u64) -> Result<Claims, AuthError> {
    // serde reads a struct from a JSON array too; claims are an object.
    if !json.trim_start().starts_with('{') {
        return Err(AuthError::Invalid("claims are not a JSON object"));
    }
    let raw: RawClaims<'_> =
        serde_json::from_str(json).map_err(|_| AuthError::Invalid("claims are malformed JSON"))?;
    let user = match raw.sub {
        Some(sub) => parse_user(sub)?,
        None => Box::default(),
    };
    let expires_at = raw
        .exp
        .map(|exp| numeric_date(exp, false, "exp is not a non-negative number"))
        .transpose()?;
    let not_before = raw
        .nbf
        .map(|nbf| numeric_date(nbf, true, "nbf is not a non-negative number"))
        .transpose()?;
    let channels = match raw.channels {
        Some(channels) => parse_channels(channels)?,
        None => Box::default(),
    };
    let info = raw.info.map(RawValue::to_owned);
    if expires_at.is_some_and(|exp| now >= exp.saturating_add(LEEWAY_SECS)) {
        return Err(AuthError::Expired);
    }
    if not_before.is_some_and(|nbf| now.saturating_add(LEEWAY_SECS) < nbf) {
        return Err(AuthError::Invalid("token not valid yet (nbf)"));
    }
    Ok(Claims {
        user,
        expires_at,
        channels,
        info,
    })
}

fn parse_user(sub: &RawValue) -> Result<Box<str>, AuthError> {
    let user: Box<str> =
        serde_json::from_str(sub.get()).map_err(|_| AuthError::Invalid("sub is not a string"))?;
    if !user.is_empty() {
        validate_user(&user).map_err(AuthError::Invalid)?;
    }
    Ok(user)
}

/// A NumericDate (RFC 7519 section 2): seconds, possibly fractional, here
/// also non-negative and below 2^64. A fraction is dropped, or rounded up
/// when `round_up` (for `nbf`, so neither bound is ever widened).
fn numeric_date(raw: &RawValue, round_up: bool, why: &'static str) -> Result<u64, AuthError> {
    let number: serde_json::Number =
        serde_json::from_str(raw.get()).map_err(|_| AuthError::Invalid(why))?;
    if let Some(seconds) = number.as_u64() {
        return Ok(seconds);
    }
    match number.as_f64() {
        // `as` saturates, so the ceiling of a value just below 2^64 is u64::MAX.
        Some(seconds) if (0.0..18_446_744_073_709_551_616.0).contains(&seconds) => {
            Ok(if round_up {
                seconds.ceil()
            } else {
                seconds.floor()
            } as u64)
        }
        _ => Err(AuthError::Invalid(why)),
    }
}

fn parse_channels(raw: &RawValue) -> Result<Box<[Box<str>]>, AuthError> {
    let channels: Vec<Box<str>> = serde_json::from_str(raw.get())
        .map_err(|_| AuthError::Invalid("channels is not an array of strings"))?;
    if channels.len() > MAX_GRANTS {
        return Err(AuthError::Invalid("channels has more than 1024 entries"));
    }
    for grant in &channels {
        validate_grant(grant)?;
    }
    Ok(channels.into_boxed_slice())
}

/// A grant is a valid channel name without `*`, or `ns:*` where `ns` is a
/// namespace (non-empty, no `:` or `*`). Any other `*` is refused rather
/// than taken literally, so `chat:room*` cannot be mistaken for a prefix
/// grant that silently grants nothing.
fn validate_grant(grant: &str) -> Result<(), AuthError> {
    validate_channel(grant)
        .map_err(|_| AuthError::Invalid("channels has an entry that is not a channel name"))?;
    let name = match grant.strip_suffix(":*") {
        Some(ns) if ns.is_empty() || ns.contains(':') => {
            return Err(AuthError::Invalid("channels has a pattern other than ns:*"))
        }
        Some(ns) => ns,
        None => grant,
    };
    if name.contains('*') {
        return Err(AuthError::Invalid("channels has a pattern other than ns:*"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(channels: &[&str]) -> Claims {
        Claims {
            user: "".into(),
            expires_at: None,
            channels: channels.iter().map(|c| Box::from(*c)).collect(),
            info: None,
        }
    }

    #[test]
    fn grants_exact_names() {
        let c = claims(&["news", "chat:room1"]);
        assert!(c.grants("news"));
        assert!(c.grants("chat:room1"));
        assert!(!c.grants("chat:room2"));
        assert!(!c.grants("new"));
        assert!(!c.grants("newsx"));
        assert!(!c.grants("chat:room1x"));
    }

    #[test]
    fn namespace_pattern_grants_its_namespace_only() {
        let c = claims(&["ns:*"]);
        assert!(c.grants("ns:a"));
        assert!(c.grants("ns:a:b"));
        assert!(c.grants("ns:"));
        assert!(c.grants("ns:*"));
        assert!(!c.grants("ns"));
        assert!(!c.grants("nsx:a"));
        assert!(!c.grants("n:a"));
        assert!(!c.grants("xns:a"));
        assert!(!c.grants("#ns:a"));
        assert!(!claims(&[]).grants("ns:a"));
    }

    #[test]
    fn user_rules() {
        assert_eq!(validate_user("alice"), Ok(()));
        assert_eq!(validate_user("auth0|5f3a:x@example.com é"), Ok(()));
        assert_eq!(validate_user(&"u".repeat(MAX_USER_BYTES)), Ok(()));
        assert!(validate_user(&"u".repeat(MAX_USER_BYTES + 1)).is_err());
        for bad in ["a#b", "#a", "a,b", "a\nb", "a\u{0}", "a\u{7f}", "a\u{85}"] {
            assert!(validate_user(bad).is_err(), "{bad:?}");
        }
        // The personal channel of any valid user is a valid channel.
        let longest = "é".repeat(MAX_USER_BYTES / 2);
        assert_eq!(validate_user(&longest), Ok(()));
        assert_eq!(validate_channel(&format!("#{longest}")), Ok(()));
    }

    #[test]
    fn grant_rules() {
        for good in ["a", "ns:*", "ns:a", "ns:a:b", "#alice", "a b"] {
            assert_eq!(validate_grant(good).map_err(|e| e.to_string()), Ok(()));
        }
        for bad in [
            "", "*", ":*", "a:b:*", "*:*", "ns:a*", "ns*", "a\tb", "ns:**",
        ] {
            assert!(validate_grant(bad).is_err(), "{bad:?}");
        }
        assert!(validate_grant(&"c".repeat(MAX_CHANNEL_BYTES + 1)).is_err());
    }

    #[test]
    fn numeric_dates() {
        let at = |json: &str| parse(json, 0).map(|c| c.expires_at);
        assert_eq!(at(r#"{"exp":100}"#).ok(), Some(Some(100)));
        assert_eq!(at(r#"{"exp":100.9}"#).ok(), Some(Some(100)));
        assert_eq!(at(r#"{"exp":1e3}"#).ok(), Some(Some(1000)));
        assert_eq!(at(r#"{"exp":null}"#).ok(), Some(None));
        assert_eq!(
            at(r#"{"exp":18446744073709551615}"#).ok(),
            Some(Some(u64::MAX))
        );
        for bad in [
            r#"{"exp":-1}"#,
            r#"{"exp":"100"}"#,
            r#"{"exp":1e30}"#,
            r#"{"exp":[1]}"#,
        ] {
            assert!(at(bad).is_err(), "{bad}");
        }
        // nbf rounds up: 100.5 is valid from 96 on with the 5 s leeway.
        assert!(parse(r#"{"nbf":100.5}"#, 95).is_err());
        assert!(parse(r#"{"nbf":100.5}"#, 96).is_ok());
    }
}
