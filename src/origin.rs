//! `--allowed-origins`: which browser origins may open a WebSocket.
//!
//! An [`OriginPattern`] is an exact origin (`https://app.example.com`,
//! `http://localhost:3000`) or a wildcard host (`https://*.example.com`,
//! which matches any subdomain at any depth but not `example.com` itself).
//! [`Origins`] is the configured list. Only parsing and matching live here;
//! the upgrade path decides what a refusal looks like. Matching allocates
//! nothing and ignores ASCII case, as origins are case-insensitive (RFC 6454);
//! a default port (80 for http/ws, 443 for https/wss) is the same as none,
//! since browsers leave it out of `Origin`.

use std::fmt;
use std::str::FromStr;

/// One allowed origin: a scheme, a host (exact or `*.` + domain) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPattern {
    /// Lowercase scheme, e.g. `https`.
    scheme: Box<str>,
    /// Lowercase host; for a wildcard, the domain with its leading dot
    /// (`.example.com`).
    host: Box<str>,
    /// Whether `host` is a wildcard suffix.
    wildcard: bool,
    /// An explicit, non-default port.
    port: Option<u16>,
}

/// The allowed origins. Empty allows every origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins(pub Vec<OriginPattern>);

impl OriginPattern {
    /// Whether the value of an `Origin` header matches this pattern.
    pub fn matches(&self, origin: &str) -> bool {
        let Ok(parts) = split_origin(origin) else {
            return false;
        };
        if !parts.scheme.eq_ignore_ascii_case(&self.scheme)
            || effective_port(&self.scheme, parts.port) != self.port
        {
            return false;
        }
        if self.wildcard {
            // `a.example.com` ends with `.example.com` and has a label before it.
            parts.host.len() > self.host.len()
                && parts
                    .host
                    .get(parts.host.len() - self.host.len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(&self.host))
        } else {
            parts.host.eq_ignore_ascii_case(&self.host)
        }
    }
}

impl Origins {
    /// Whether a request with this `Origin` header may upgrade. A request
    /// without one (not a browser) is allowed, and so is every origin when
    /// the list is empty.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        match origin {
            None => true,
            Some(origin) => self.0.is_empty() || self.0.iter().any(|p| p.matches(origin)),
        }
    }

    /// Whether no origin is listed (every origin allowed).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Parses `--allowed-origins`: comma-separated patterns; an empty string is
/// an empty list.
pub fn parse_origins(s: &str) -> Result<Origins, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<_>, _>>()
        .map(Origins)
}

impl FromStr for OriginPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<OriginPattern, String> {
        let example = "e.g. https://app.example.com or https://*.example.com";
        let parts = split_origin(s).map_err(|why| format!("{why} in origin {s:?} ({example})"))?;
        let (wildcard, host) = match parts.host.strip_prefix("*.") {
            Some(domain) => (true, domain),
            None => (false, parts.host),
        };
        if host.contains('*') || !host.contains(|c: char| c.is_ascii_alphanumeric()) {
            return Err(format!(
                "origin {s:?}: a wildcard may only be the first label, followed by a domain \
                 ({example}; leave the list empty to allow every origin)"
            ));
        }
        Ok(OriginPattern {
            scheme: parts.scheme.to_ascii_lowercase().into(),
            host: if wildcard {
                format!(".{}", host.to_ascii_lowercase()).into()
            } else {
                host.to_ascii_lowercase().into()
            },
            wildcard,
            port: effective_port(parts.scheme, parts.port),
        })
    }
}

impl fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let star = if self.wildcard { "*" } else { "" };
        write!(f, "{}://{star}{}", self.scheme, self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for Origins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pattern) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{pattern}")?;
        }
        Ok(())
    }
}

/// An origin cut into its parts, borrowed from the input.
struct Parts<'a> {
    scheme: &'a str,
    host: &'a str,
    port: Option<u16>,
}

/// Splits `scheme://host[:port]` (RFC 6454 serialization: no path, no user
/// info). The host is a DNS name or IPv4 address (letters, digits, `.`,
/// `-`, and `*` for patterns) or a bracketed IPv6 address.
fn split_origin(s: &str) -> Result<Parts<'_>, &'static str> {
    let (scheme, rest) = s.split_once("://").ok_or("no scheme:// ")?;
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err("a bad scheme");
    }
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (addr, after) = v6.split_once(']').ok_or("an unclosed [")?;
            if addr.is_empty()
                || !addr
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
            {
                return Err("a bad IPv6 address");
            }
            (&rest[..addr.len() + 2], after)
        }
        None => {
            let end = rest.find(':').unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    if !host.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '*'))
    {
        return Err("a path, user info or bad character after the host");
    }
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => None,
        None => return Err("a path or bad character after the host"),
        Some(digits) => match digits.parse::<u16>() {
            Ok(p) if p > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => Some(p),
            _ => return Err("a bad port"),
        },
    };
    Ok(Parts { scheme, host, port })
}

/// The port that tells origins apart: none for a scheme's default port.
fn effective_port(scheme: &str, port: Option<u16>) -> Option<u16> {
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    };
    port.filter(|p| Some(*p) != default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(s: &str) -> OriginPattern {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn exact_origins_match_ignoring_case_and_default_ports() {
        let p = pattern("https://App.Example.com");
        assert!(p.matches("https://app.example.com"));
        assert!(p.matches("HTTPS://APP.EXAMPLE.COM"));
        assert!(p.matches("https://app.example.com:443"));
        assert!(!p.matches("http://app.example.com"));
        assert!(!p.matches("https://app.example.com:8443"));
        assert!(!p.matches("https://app.example.com.evil.com"));
        assert!(!p.matches("https://example.com"));
        assert!(!p.matches("https://app.example.com/"));
        let local = pattern("http://localhost:3000");
        assert!(local.matches("http://localhost:3000"));
        assert!(!local.matches("http://localhost"));
        assert!(pattern("http://[::1]:8080").matches("http://[::1]:8080"));
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let p = pattern("https://*.example.com");
        assert!(p.matches("https://app.example.com"));
        assert!(p.matches("https://a.b.example.com"));
        assert!(!p.matches("https://example.com"));
        assert!(!p.matches("https://.example.com"));
        assert!(!p.matches("https://evilexample.com"));
        assert!(!p.matches("https://app.example.com.evil.com"));
        assert!(!p.matches("http://app.example.com"));
        assert!(!p.matches("null"));
        assert_eq!(p.to_string(), "https://*.example.com");
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in [
            "example.com",
            "https://",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://user@app.example.com",
            "https://*",
            "https://*.",
            "https://a.*.example.com",
            "https://app.example.com:0",
            "https://app.example.com:99999",
            "https://app.example.com:",
            "*",
            "null",
            "1http://x",
        ] {
            assert!(bad.parse::<OriginPattern>().is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn the_list_allows_requests_without_origin_and_everything_when_empty() {
        let none = Origins::default();
        assert!(none.allows(None) && none.allows(Some("https://anything.example")));
        let list =
            parse_origins(" https://a.example.com , https://*.b.example.com,").expect("valid");
        assert_eq!(list.0.len(), 2);
        assert!(list.allows(None));
        assert!(list.allows(Some("https://a.example.com")));
        assert!(list.allows(Some("https://x.b.example.com")));
        assert!(!list.allows(Some("https://c.example.com")));
        assert!(!list.allows(Some("garbage")));
        assert_eq!(
            list.to_string(),
            "https://a.example.com,https://*.b.example.com"
        );
        assert_eq!(parse_origins(""), Ok(Origins::default()));
        assert!(parse_origins("https://ok.example.com,nope").is_err());
    }
}
