//! The `Sec-WebSocket-Extensions` offers of an upgrade request, and the
//! server's answer (RFC 7692 5 and 7.1; syntax from RFC 6455 9.1).
//!
//! The first acceptable `permessage-deflate` offer wins. An offer with an
//! unknown, duplicated or malformed parameter, or one the server cannot
//! honour, is declined and the next one tried; other extensions are
//! ignored; nothing here ever fails the handshake.

use std::borrow::Cow;
use std::fmt;

use super::SERVER_WINDOW_BITS;
use crate::wire::WindowBits;

/// The extension's registered name.
pub const EXTENSION: &str = "permessage-deflate";

/// An accepted offer: what the response's `Sec-WebSocket-Extensions`
/// says. Both `no_context_takeover` parameters are always in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreement {
    /// The offer's `server_max_window_bits`, echoed in the response (RFC
    /// 7692 7.1.2.1: a response may only carry it when the offer did).
    /// Never below [`SERVER_WINDOW_BITS`]: such offers are declined.
    pub server_max_window_bits: Option<u8>,
}

impl Agreement {
    /// The window the server compresses with: the offer's
    /// `server_max_window_bits`, or the largest when it named none.
    pub fn window(&self) -> WindowBits {
        self.server_max_window_bits
            .and_then(WindowBits::new)
            .unwrap_or(WindowBits::MAX)
    }
}

impl fmt::Display for Agreement {
    /// The response header's value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{EXTENSION}; server_no_context_takeover; client_no_context_takeover"
        )?;
        if let Some(bits) = self.server_max_window_bits {
            write!(f, "; server_max_window_bits={bits}")?;
        }
        Ok(())
    }
}

/// The first acceptable permessage-deflate offer in the request's
/// `Sec-WebSocket-Extensions` header values (in order; several headers are
/// one comma-separated list), or `None`.
pub fn negotiate<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Agreement> {
    values
        .into_iter()
        .flat_map(|value| Split::new(value, b','))
        .find_map(accept)
}

/// Parameters, one bit each, to refuse a duplicate.
const SERVER_NO_TAKEOVER: u8 = 1;
const CLIENT_NO_TAKEOVER: u8 = 2;
const SERVER_BITS: u8 = 4;
const CLIENT_BITS: u8 = 8;

/// One list element: `None` unless it is an acceptable permessage-deflate offer.
fn accept(extension: &str) -> Option<Agreement> {
    let mut parts = Split::new(extension, b';');
    if !parts.next()?.trim().eq_ignore_ascii_case(EXTENSION) {
        return None;
    }
    let mut seen = 0u8;
    let mut agreement = Agreement {
        server_max_window_bits: None,
    };
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name.trim(), Some(unquote(value.trim())?)),
            None => (param.trim(), None),
        };
        let bit = match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" if value.is_none() => SERVER_NO_TAKEOVER,
            "client_no_context_takeover" if value.is_none() => CLIENT_NO_TAKEOVER,
            "server_max_window_bits" => {
                // The window the server compresses with must fit the client's.
                let bits = window_bits(value.as_deref()?)?;
                if bits < SERVER_WINDOW_BITS {
                    return None;
                }
                agreement.server_max_window_bits = Some(bits);
                SERVER_BITS
            }
            "client_max_window_bits" => {
                // Any window inflates with the server's 32 KiB one, so the
                // value (optional here) is only checked, never answered.
                if let Some(value) = value.as_deref() {
                    window_bits(value)?;
                }
                CLIENT_BITS
            }
            _ => return None,
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
    }
    Some(agreement)
}

/// A window-bits value: 8 to 15, decimal, no leading zero (RFC 7692 7.1.2).
fn window_bits(value: &str) -> Option<u8> {
    if value.is_empty() || value.len() > 2 || value.starts_with('0') {
        return None;
    }
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = value.parse().ok()?;
    (8..=15).contains(&bits).then_some(bits)
}

/// A parameter value: a token, or a quoted string whose unescaped content
/// is a token (RFC 6455 9.1).
fn unquote(value: &str) -> Option<Cow<'_, str>> {
    let Some(inner) = value.strip_prefix('"') else {
        return is_token(value).then_some(Cow::Borrowed(value));
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    is_token(&out).then_some(Cow::Owned(out))
}

/// RFC 7230 `token`: one or more visible ASCII characters but separators.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Splits on `sep` outside quoted strings (a backslash escapes the next
/// character inside one), skipping empty elements as the `#` list rule
/// allows. An unterminated quote runs to the end of the input.
struct Split<'a> {
    rest: &'a str,
    sep: u8,
}

impl<'a> Split<'a> {
    fn new(s: &'a str, sep: u8) -> Split<'a> {
        Split { rest: s, sep }
    }
}

impl<'a> Iterator for Split<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let bytes = self.rest.as_bytes();
            let (mut quoted, mut escaped, mut end) = (false, false, bytes.len());
            for (i, &b) in bytes.iter().enumerate() {
                match b {
                    _ if escaped => escaped = false,
                    b'\\' if quoted => escaped = true,
                    b'"' => quoted = !quoted,
                    _ if b == self.sep && !quoted => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            // `end` is an ASCII separator or the end, so both cuts are on
            // character boundaries.
            let item = &self.rest[..end];
            self.rest = self.rest.get(end + 1..).unwrap_or("");
            if self.sep == b';' || !item.trim().is_empty() {
                return Some(item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

    fn answer(headers: &[&str]) -> Option<String> {
        negotiate(headers.iter().copied()).map(|a| a.to_string())
    }

    #[test]
    fn browsers_offers_are_accepted() {
        // Chrome, then Firefox.
        let chrome = answer(&["permessage-deflate; client_max_window_bits"]);
        assert_eq!(chrome.as_deref(), Some(FULL));
        assert_eq!(answer(&["permessage-deflate"]).as_deref(), Some(FULL));
        assert_eq!(answer(&[" PerMessage-Deflate "]).as_deref(), Some(FULL));
    }

    #[test]
    fn nothing_offered_nothing_agreed() {
        assert_eq!(answer(&[]), None);
        assert_eq!(answer(&[""]), None);
        assert_eq!(answer(&["x-webkit-deflate-frame"]), None);
        assert_eq!(answer(&["permessage-deflate-x"]), None);
    }

    #[test]
    fn a_declined_offer_falls_through_to_the_next() {
        let cases = [
            "permessage-deflate; server_max_window_bits=10, permessage-deflate",
            "permessage-deflate; foo, permessage-deflate",
            "permessage-deflate; foo=1, permessage-deflate",
            "permessage-deflate; client_max_window_bits; client_max_window_bits, permessage-deflate",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover, permessage-deflate",
            "permessage-deflate; server_no_context_takeover=1, permessage-deflate",
            "permessage-deflate; client_max_window_bits=16, permessage-deflate",
            "permessage-deflate; client_max_window_bits=7, permessage-deflate",
            "permessage-deflate; client_max_window_bits=09, permessage-deflate",
            "permessage-deflate; client_max_window_bits=1a, permessage-deflate",
            "permessage-deflate; server_max_window_bits, permessage-deflate",
            "permessage-deflate; server_max_window_bits=8, permessage-deflate",
            "permessage-deflate; server_max_window_bits=\"1\"5, permessage-deflate",
            "permessage-deflate;, permessage-deflate",
            "x-webkit-deflate-frame, permessage-deflate",
        ];
        for offer in cases {
            assert_eq!(answer(&[offer]).as_deref(), Some(FULL), "{offer}");
        }
        // The same across two headers, and nothing when no offer is left.
        let two = answer(&[
            "permessage-deflate; server_max_window_bits=9",
            "permessage-deflate",
        ]);
        assert_eq!(two.as_deref(), Some(FULL));
        assert_eq!(
            answer(&["permessage-deflate; a", "permessage-deflate; b"]),
            None
        );
    }

    #[test]
    fn window_bits_with_and_without_values() {
        for offer in [
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; client_max_window_bits=8",
            "permessage-deflate; client_max_window_bits=15",
            "permessage-deflate; client_max_window_bits=\"10\"",
            "permessage-deflate;client_max_window_bits = 12 ;server_no_context_takeover",
        ] {
            assert_eq!(answer(&[offer]).as_deref(), Some(FULL), "{offer}");
        }
        let with_server = format!("{FULL}; server_max_window_bits=15");
        for offer in [
            "permessage-deflate; server_max_window_bits=15",
            "permessage-deflate; server_max_window_bits=\"15\"; client_max_window_bits",
            "permessage-deflate; server_max_window_bits=\"1\\5\"",
        ] {
            assert_eq!(answer(&[offer]), Some(with_server.clone()), "{offer}");
        }
    }

    #[test]
    fn quoted_separators_do_not_split() {
        // The comma inside the quotes is part of one (declined) offer.
        assert_eq!(
            answer(&["permessage-deflate; x=\"a,permessage-deflate\""]),
            None
        );
        assert_eq!(
            answer(&["permessage-deflate; x=\"a;b\", permessage-deflate"]).as_deref(),
            Some(FULL)
        );
        assert_eq!(
            answer(&["permessage-deflate; x=\"unterminated, permessage-deflate"]),
            None
        );
    }

    #[test]
    fn the_answer_is_itself_an_acceptable_offer() {
        for offer in [
            "permessage-deflate",
            "permessage-deflate; server_max_window_bits=15",
        ] {
            let first = negotiate([offer]).unwrap();
            assert_eq!(negotiate([first.to_string().as_str()]), Some(first));
        }
    }
}
