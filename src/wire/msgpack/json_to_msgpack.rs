//! JSON to MessagePack ([`from_json`](super::from_json)): two passes over
//! the text. The first validates what MessagePack needs (numbers, escapes)
//! and counts each container's elements in the order containers open,
//! because a MessagePack header holds its count before the elements; the
//! second writes.

use super::{Error, Unrepresentable};

/// A token of JSON text (punctuation `:` and `,` skipped).
#[derive(Debug, Clone, Copy)]
enum Token<'a> {
    Open {
        map: bool,
    },
    Close,
    /// A string's raw bytes between the quotes, and whether it has escapes.
    Str(&'a [u8], bool),
    Num(&'a [u8]),
    True,
    False,
    Null,
}

/// Splits JSON text into tokens; fails on what cannot start a token.
struct Lexer<'a> {
    text: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn next(&mut self) -> Result<Option<Token<'a>>, Error> {
        let text = self.text;
        while let Some(&b) = text.get(self.pos) {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' | b',' | b':' => self.pos += 1,
                _ => break,
            }
        }
        let Some(&b) = text.get(self.pos) else {
            return Ok(None);
        };
        let start = self.pos;
        self.pos += 1;
        let token = match b {
            b'{' => Token::Open { map: true },
            b'[' => Token::Open { map: false },
            b'}' | b']' => Token::Close,
            b'"' => {
                let mut escaped = false;
                loop {
                    match text.get(self.pos) {
                        None => return Err(Error::Malformed("unterminated string")),
                        Some(b'"') => break,
                        Some(b'\\') => {
                            escaped = true;
                            self.pos += 2;
                        }
                        Some(_) => self.pos += 1,
                    }
                }
                self.pos += 1;
                Token::Str(&text[start + 1..self.pos - 1], escaped)
            }
            b'-' | b'0'..=b'9' => {
                while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = text.get(self.pos)
                {
                    self.pos += 1;
                }
                Token::Num(&text[start..self.pos])
            }
            b't' => self.word(b"true", Token::True)?,
            b'f' => self.word(b"false", Token::False)?,
            b'n' => self.word(b"null", Token::Null)?,
            _ => return Err(Error::Malformed("not JSON")),
        };
        Ok(Some(token))
    }

    fn word(&mut self, word: &[u8], token: Token<'a>) -> Result<Token<'a>, Error> {
        let start = self.pos - 1;
        if self.text.get(start..start + word.len()) != Some(word) {
            return Err(Error::Malformed("not JSON"));
        }
        self.pos = start + word.len();
        Ok(token)
    }
}

/// The first pass: validates numbers and escapes, and (given `counts`)
/// records each container's element count (map entries, not keys and
/// values), in the order containers open. UTF-8 is the caller's check.
pub(super) fn scan(json: &[u8], mut counts: Option<&mut Vec<u32>>) -> Result<(), Error> {
    let mut lexer = Lexer { text: json, pos: 0 };
    let mut n_open = 0;
    // Open containers: (index into `counts`, is a map, items seen).
    let mut open: Vec<(usize, bool, u32)> = Vec::new();
    let mut values = 0;
    while let Some(token) = lexer.next()? {
        if let Token::Close = token {
            let (idx, map, items) = open.pop().ok_or(Error::Malformed("unbalanced JSON"))?;
            if map && items % 2 != 0 {
                return Err(Error::Malformed("an object key without a value"));
            }
            if let Some(counts) = counts.as_deref_mut() {
                counts[idx] = if map { items / 2 } else { items };
            }
            continue;
        }
        match open.last_mut() {
            Some((_, _, items)) => {
                *items = items
                    .checked_add(1)
                    .ok_or(Error::Malformed("too many elements"))?
            }
            None if values == 0 => values = 1,
            None => return Err(Error::Malformed("more than one JSON value")),
        }
        match token {
            Token::Open { map } => {
                open.push((n_open, map, 0));
                n_open += 1;
                if let Some(counts) = counts.as_deref_mut() {
                    counts.push(0);
                }
            }
            Token::Num(n) => check_number(n)?,
            Token::Str(raw, true) => {
                unescape(raw, &mut Vec::new())?;
            }
            _ => {}
        }
    }
    if !open.is_empty() || values == 0 {
        return Err(Error::Malformed("incomplete JSON"));
    }
    Ok(())
}

/// [`number`]'s verdict, without parsing where the digits settle it (the
/// check runs on every publish): an integer of at most 18 digits fits 64
/// bits, and a fraction without exponent and with at most 300 digits
/// before the point is a finite double. Anything else is parsed.
fn check_number(literal: &[u8]) -> Result<(), Error> {
    let digits = literal.strip_prefix(b"-").unwrap_or(literal);
    let int_len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    let (int_ok, rest) = (int_len > 0 && int_len <= 300, &digits[int_len..]);
    let plain = match rest {
        [] => int_ok && int_len <= 18,
        [b'.', fraction @ ..] => {
            int_ok && !fraction.is_empty() && fraction.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    };
    if plain {
        return Ok(());
    }
    number(literal).map(drop)
}

/// The second pass: writes the MessagePack, headers from `counts`.
pub(super) fn emit(json: &[u8], counts: &[u32], out: &mut Vec<u8>) -> Result<(), Error> {
    let mut lexer = Lexer { text: json, pos: 0 };
    let mut next_count = counts.iter();
    let mut scratch = Vec::new();
    // Writing to a Vec cannot fail: rmp's errors are the writer's.
    while let Some(token) = lexer.next()? {
        match token {
            Token::Open { map } => {
                let n = *next_count
                    .next()
                    .ok_or(Error::Malformed("unbalanced JSON"))?;
                if map {
                    let _ = rmp::encode::write_map_len(out, n);
                } else {
                    let _ = rmp::encode::write_array_len(out, n);
                }
            }
            Token::Close => {}
            Token::Str(raw, escaped) => {
                let s = if escaped {
                    scratch.clear();
                    unescape(raw, &mut scratch)?;
                    &scratch[..]
                } else {
                    raw
                };
                let _ = rmp::encode::write_str_len(out, s.len() as u32);
                out.extend_from_slice(s);
            }
            Token::Num(n) => match number(n)? {
                Number::Unsigned(v) => {
                    let _ = rmp::encode::write_uint(out, v);
                }
                Number::Signed(v) => {
                    let _ = rmp::encode::write_sint(out, v);
                }
                Number::Float(v) => {
                    let _ = rmp::encode::write_f64(out, v);
                }
            },
            Token::True => rmp::encode::write_bool(out, true).unwrap_or(()),
            Token::False => rmp::encode::write_bool(out, false).unwrap_or(()),
            Token::Null => rmp::encode::write_nil(out).unwrap_or(()),
        }
    }
    Ok(())
}

/// A JSON number as MessagePack holds it.
enum Number {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

/// Reads a JSON number literal: an integer when it has no fraction or
/// exponent (within the 64-bit ranges), a double otherwise.
fn number(literal: &[u8]) -> Result<Number, Error> {
    // The lexer took only ASCII bytes, so this is text.
    let text = std::str::from_utf8(literal).map_err(|_| Error::Malformed("not JSON"))?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.as_bytes()[0].is_ascii_digit() {
        return Err(Error::Malformed("invalid JSON number"));
    }
    let integer = digits.bytes().all(|b| b.is_ascii_digit());
    if integer && text != "-0" {
        let big = Error::Unrepresentable(Unrepresentable::BigInteger);
        return if text.starts_with('-') {
            text.parse().map(Number::Signed).map_err(|_| big)
        } else {
            text.parse().map(Number::Unsigned).map_err(|_| big)
        };
    }
    let v: f64 = text
        .parse()
        .map_err(|_| Error::Malformed("invalid JSON number"))?;
    if !v.is_finite() {
        return Err(Error::Unrepresentable(Unrepresentable::HugeNumber));
    }
    Ok(Number::Float(v))
}

/// Decodes a JSON string's escapes (`raw` is what lies between the
/// quotes) into `out` as UTF-8.
fn unescape(raw: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let bad = Error::Malformed("invalid JSON string escape");
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let e = *raw.get(i + 1).ok_or(bad.clone())?;
        i += 2;
        let c = match e {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(raw.get(i..i + 4)).ok_or(bad.clone())?;
                i += 4;
                let lone = Error::Unrepresentable(Unrepresentable::LoneSurrogate);
                match hi {
                    0xD800..=0xDBFF => {
                        if raw.get(i..i + 2) != Some(b"\\u") {
                            return Err(lone);
                        }
                        let lo = hex4(raw.get(i + 2..i + 6)).ok_or(bad.clone())?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return Err(lone);
                        }
                        i += 6;
                        let code = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                        char::from_u32(code).ok_or(lone)?
                    }
                    0xDC00..=0xDFFF => return Err(lone),
                    _ => char::from_u32(hi).ok_or(lone)?,
                }
            }
            _ => return Err(bad),
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    Ok(())
}

fn hex4(digits: Option<&[u8]>) -> Option<u32> {
    let digits = std::str::from_utf8(digits?).ok()?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}
