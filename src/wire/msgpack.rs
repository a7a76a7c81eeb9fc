//! MessagePack for /ws clients that chose `corecast.msgpack`: a native
//! JSON message transcoded to MessagePack ([`from_json`], server to
//! client), a client's MessagePack request transcoded to JSON text
//! ([`to_json`], client to server, then parsed as any JSON request), and
//! the check that JSON data has an exact MessagePack form ([`check_json`]).
//! Pure and bounded: no I/O, no recursion (depth costs heap, not stack),
//! no allocation sized by what a header claims. docs/protocol.md has the
//! mapping; a value with no exact form on the other side is an error,
//! never altered.

use std::fmt;

/// Deepest nesting of arrays and maps accepted in a client's MessagePack
/// request (serde_json's own limit for a JSON request is 128 too).
pub const MAX_DEPTH: usize = 128;

/// Why a value has no exact form in the other encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unrepresentable {
    /// A JSON integer outside the 64-bit range MessagePack integers have.
    BigInteger,
    /// A JSON number too large for a 64-bit float.
    HugeNumber,
    /// A JSON `\u` escape of a lone UTF-16 surrogate (no UTF-8 form).
    LoneSurrogate,
    /// MessagePack `bin` (JSON has no byte strings).
    Binary,
    /// MessagePack `ext`, timestamps included.
    Extension,
    /// A MessagePack map key that is not a string.
    NonStringKey,
    /// A NaN or infinite MessagePack float (JSON numbers are finite).
    NonFinite,
}

impl fmt::Display for Unrepresentable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unrepresentable::BigInteger => {
                "an integer outside the 64-bit range MessagePack integers have"
            }
            Unrepresentable::HugeNumber => "a number too large for a 64-bit float",
            Unrepresentable::LoneSurrogate => "a \\u escape of a lone UTF-16 surrogate",
            Unrepresentable::Binary => "MessagePack bin (JSON has no byte strings)",
            Unrepresentable::Extension => "a MessagePack ext type",
            Unrepresentable::NonStringKey => "a map key that is not a string",
            Unrepresentable::NonFinite => "a NaN or infinite float",
        })
    }
}

/// Why a transcoding failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The input is not one well-formed value of its encoding (truncated,
    /// trailing bytes, a reserved byte, invalid UTF-8, nested deeper than
    /// [`MAX_DEPTH`]).
    Malformed(&'static str),
    /// A well-formed value with no exact form in the other encoding.
    Unrepresentable(Unrepresentable),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Malformed(why) => write!(f, "not MessagePack: {why}"),
            Error::Unrepresentable(what) => write!(f, "no exact form: {what}"),
        }
    }
}

/// One JSON value (`json`, as serde_json validated or the server wrote
/// it) appended to `out` as MessagePack. Objects become maps with string
/// keys in the same order, arrays arrays, strings strings (escapes
/// decoded), `true`/`false`/`null` the same; a number without fraction or
/// exponent is an integer (the smallest MessagePack int that holds it),
/// any other a float 64 (the nearest double, as JSON parsers read it;
/// `-0` too, as serde_json reads it). Integers outside -2^63..2^64 and
/// numbers past the double range are errors.
pub fn from_json(json: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let counts = scan(json)?;
    let start = out.len();
    let result = emit(json, &counts, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Checks that `json` (one valid JSON value) has an exact MessagePack form
/// ([`from_json`] would succeed), without making it: one pass, no output.
pub fn check_json(json: &[u8]) -> Result<(), Error> {
    scan(json).map(drop)
}

/// One MessagePack value (a client's request) appended to `out` as JSON
/// text: maps with string keys become objects, arrays arrays, strings
/// strings, integers integers, floats (32 or 64 bits) the shortest text
/// that reads back as the same double; nil/true/false the same. `bin`,
/// `ext`, non-string keys and non-finite floats are errors, as are
/// trailing bytes and nesting deeper than [`MAX_DEPTH`].
pub fn to_json(msgpack: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let start = out.len();
    let result = Transcoder::new(msgpack, out, false).run();
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Like [`to_json`], but what has no JSON form is written as `null` (a
/// non-string key as `""`) and the first such loss returned: for reading
/// the `id` of a request that is then answered with an error.
pub fn to_json_lossy(msgpack: &[u8], out: &mut Vec<u8>) -> Result<Option<Unrepresentable>, Error> {
    let start = out.len();
    let mut t = Transcoder::new(msgpack, out, true);
    let result = t.run();
    let lost = t.lost.take();
    match result {
        Ok(()) => Ok(lost),
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

// JSON to MessagePack: two passes over the text. The first validates what
// MessagePack needs (numbers, escapes) and counts each container's
// elements in the order containers open, because a MessagePack header
// holds its count before the elements; the second writes.

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

/// The first pass: validates numbers and escapes, and returns each
/// container's element count (map entries, not keys and values), in the
/// order containers open.
fn scan(json: &[u8]) -> Result<Vec<u32>, Error> {
    std::str::from_utf8(json).map_err(|_| Error::Malformed("JSON text is not UTF-8"))?;
    let mut lexer = Lexer { text: json, pos: 0 };
    let mut counts: Vec<u32> = Vec::new();
    // Open containers: (index into `counts`, is a map, items seen).
    let mut open: Vec<(usize, bool, u32)> = Vec::new();
    let mut values = 0;
    while let Some(token) = lexer.next()? {
        if let Token::Close = token {
            let (idx, map, items) = open.pop().ok_or(Error::Malformed("unbalanced JSON"))?;
            if map && items % 2 != 0 {
                return Err(Error::Malformed("an object key without a value"));
            }
            counts[idx] = if map { items / 2 } else { items };
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
                open.push((counts.len(), map, 0));
                counts.push(0);
            }
            Token::Num(n) => {
                number(n)?;
            }
            Token::Str(raw, true) => {
                unescape(raw, &mut Vec::new())?;
            }
            _ => {}
        }
    }
    if !open.is_empty() || values == 0 {
        return Err(Error::Malformed("incomplete JSON"));
    }
    Ok(counts)
}

/// The second pass: writes the MessagePack, headers from `counts`.
fn emit(json: &[u8], counts: &[u32], out: &mut Vec<u8>) -> Result<(), Error> {
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

// MessagePack to JSON: one pass, an explicit stack of open containers.

/// One open array or map while transcoding to JSON.
struct Level {
    map: bool,
    /// Items (map keys and values counted apart) still to come.
    left: u64,
    /// Items in all.
    total: u64,
    /// A non-string key being read past (lossy mode): its output is dropped.
    muted: bool,
}

struct Transcoder<'a, 'o> {
    input: &'a [u8],
    out: &'o mut Vec<u8>,
    /// Write `null` (or `""` for a key) for what has no JSON form.
    lossy: bool,
    /// The first loss, in lossy mode.
    lost: Option<Unrepresentable>,
    /// Open levels whose output is dropped; while above 0, writes go to
    /// `trash`.
    muted: usize,
    trash: Vec<u8>,
}

impl<'a, 'o> Transcoder<'a, 'o> {
    fn new(input: &'a [u8], out: &'o mut Vec<u8>, lossy: bool) -> Transcoder<'a, 'o> {
        Transcoder {
            input,
            out,
            lossy,
            lost: None,
            muted: 0,
            trash: Vec::new(),
        }
    }

    fn run(&mut self) -> Result<(), Error> {
        let mut stack: Vec<Level> = Vec::new();
        loop {
            let mut key = false;
            if let Some(level) = stack.last_mut() {
                if level.left == 0 {
                    let (map, muted) = (level.map, level.muted);
                    stack.pop();
                    self.sink().push(if map { b'}' } else { b']' });
                    self.muted -= usize::from(muted);
                    if stack.is_empty() {
                        break;
                    }
                    continue;
                }
                key = level.map && level.left % 2 == 0;
                let first = level.left == level.total;
                level.left -= 1;
                if !first {
                    let sep = if level.map && !key { b':' } else { b',' };
                    self.sink().push(sep);
                }
            }
            let marker = *self.input.first().ok_or(Error::Malformed("truncated"))?;
            let opened = if key && !is_str(marker) {
                // A key JSON cannot have: in lossy mode written as "" and
                // the key itself read past, muted.
                self.lose(Unrepresentable::NonStringKey, true)?;
                self.muted += 1;
                let opened = self.value()?;
                match opened {
                    Some(mut level) => {
                        level.muted = true;
                        Some(level)
                    }
                    None => {
                        self.muted -= 1;
                        None
                    }
                }
            } else {
                self.value()?
            };
            if let Some(level) = opened {
                if stack.len() >= MAX_DEPTH {
                    return Err(Error::Malformed("nested too deep"));
                }
                stack.push(level);
            } else if stack.is_empty() {
                break;
            }
        }
        if !self.input.is_empty() {
            return Err(Error::Malformed("bytes after the value"));
        }
        Ok(())
    }

    /// Where output goes: `out`, or nowhere while muted.
    fn sink(&mut self) -> &mut Vec<u8> {
        if self.muted > 0 {
            self.trash.clear();
            &mut self.trash
        } else {
            self.out
        }
    }

    /// Reads one value's head and writes it (a whole scalar, or a
    /// container's opening bracket, returned as the new level).
    fn value(&mut self) -> Result<Option<Level>, Error> {
        let marker = self.take(1)?[0];
        match marker {
            0x00..=0x7f => self.write_num(u64::from(marker)),
            0xe0..=0xff => self.write_num(i64::from(marker as i8)),
            0xc0 => self.sink().extend_from_slice(b"null"),
            0xc2 => self.sink().extend_from_slice(b"false"),
            0xc3 => self.sink().extend_from_slice(b"true"),
            0xcc..=0xcf => {
                let v = self.uint(1 << (marker - 0xcc))?;
                self.write_num(v);
            }
            0xd0 => {
                let v = self.uint(1)? as u8 as i8;
                self.write_num(i64::from(v));
            }
            0xd1 => {
                let v = self.uint(2)? as u16 as i16;
                self.write_num(i64::from(v));
            }
            0xd2 => {
                let v = self.uint(4)? as u32 as i32;
                self.write_num(i64::from(v));
            }
            0xd3 => {
                let v = self.uint(8)? as i64;
                self.write_num(v);
            }
            0xca => {
                let v = f32::from_bits(self.uint(4)? as u32);
                self.write_float(f64::from(v))?;
            }
            0xcb => {
                let v = f64::from_bits(self.uint(8)?);
                self.write_float(v)?;
            }
            0xa0..=0xbf => self.write_str(usize::from(marker & 0x1f))?,
            0xd9..=0xdb => {
                let n = self.uint(1 << (marker - 0xd9))? as usize;
                self.write_str(n)?;
            }
            0x90..=0x9f => return Ok(Some(self.open(false, u64::from(marker & 0x0f)))),
            0xdc | 0xdd => {
                let n = self.uint(2 << (marker - 0xdc))?;
                return Ok(Some(self.open(false, n)));
            }
            0x80..=0x8f => return Ok(Some(self.open(true, u64::from(marker & 0x0f)))),
            0xde | 0xdf => {
                let n = self.uint(2 << (marker - 0xde))?;
                return Ok(Some(self.open(true, n)));
            }
            0xc4..=0xc6 => {
                let n = self.uint(1 << (marker - 0xc4))? as usize;
                self.take(n)?;
                self.lose(Unrepresentable::Binary, false)?;
            }
            0xd4..=0xd8 => {
                self.take(1 + (1 << (marker - 0xd4)))?;
                self.lose(Unrepresentable::Extension, false)?;
            }
            0xc7..=0xc9 => {
                let n = self.uint(1 << (marker - 0xc7))? as usize;
                self.take(1 + n)?;
                self.lose(Unrepresentable::Extension, false)?;
            }
            0xc1 => return Err(Error::Malformed("the reserved byte 0xc1")),
        }
        Ok(None)
    }

    fn open(&mut self, map: bool, n: u64) -> Level {
        self.sink().push(if map { b'{' } else { b'[' });
        let total = if map { n * 2 } else { n };
        Level {
            map,
            left: total,
            total,
            muted: false,
        }
    }

    fn lose(&mut self, what: Unrepresentable, key: bool) -> Result<(), Error> {
        if !self.lossy {
            return Err(Error::Unrepresentable(what));
        }
        self.lost.get_or_insert(what);
        self.sink()
            .extend_from_slice(if key { &b"\"\""[..] } else { &b"null"[..] });
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let input = self.input;
        if input.len() < n {
            return Err(Error::Malformed("truncated"));
        }
        let (head, rest) = input.split_at(n);
        self.input = rest;
        Ok(head)
    }

    /// A big-endian unsigned integer of `n` bytes (1, 2, 4 or 8).
    fn uint(&mut self, n: usize) -> Result<u64, Error> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn write_num<N: serde::Serialize>(&mut self, n: N) {
        // Writing a number to a Vec cannot fail.
        let _ = serde_json::to_writer(self.sink(), &n);
    }

    fn write_float(&mut self, v: f64) -> Result<(), Error> {
        if !v.is_finite() {
            return self.lose(Unrepresentable::NonFinite, false);
        }
        self.write_num(v);
        Ok(())
    }

    fn write_str(&mut self, n: usize) -> Result<(), Error> {
        let bytes = self.take(n)?;
        let s =
            std::str::from_utf8(bytes).map_err(|_| Error::Malformed("a string is not UTF-8"))?;
        // serde_json escapes quotes, backslashes and control characters.
        let _ = serde_json::to_writer(self.sink(), s);
        Ok(())
    }
}

fn is_str(marker: u8) -> bool {
    matches!(marker, 0xa0..=0xbf | 0xd9..=0xdb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmpv::Value;

    fn mp(json: &str) -> Result<Value, Error> {
        let mut out = Vec::new();
        from_json(json.as_bytes(), &mut out)?;
        let mut rd = &out[..];
        let v = rmpv::decode::read_value(&mut rd).expect("valid MessagePack");
        assert!(rd.is_empty(), "one value exactly");
        Ok(v)
    }

    fn js(v: &Value) -> Result<String, Error> {
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, v).unwrap();
        let mut out = Vec::new();
        to_json(&bytes, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn map(entries: Vec<(&str, Value)>) -> Value {
        Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Value::from(k), v))
                .collect(),
        )
    }

    #[test]
    fn json_becomes_the_same_msgpack_value() {
        assert_eq!(
            mp(
                r#" {"type":"message","n":[1,-1,300,-300,18446744073709551615,-9223372036854775808],"f":[1.5,1.0,1e2,-0,-0.0],"b":[true,false,null],"e":{},"a":[]} "#
            ),
            Ok(map(vec![
                ("type", Value::from("message")),
                (
                    "n",
                    Value::Array(vec![
                        Value::from(1),
                        Value::from(-1),
                        Value::from(300),
                        Value::from(-300),
                        Value::from(u64::MAX),
                        Value::from(i64::MIN),
                    ])
                ),
                (
                    "f",
                    Value::Array(vec![
                        Value::F64(1.5),
                        Value::F64(1.0),
                        Value::F64(100.0),
                        Value::F64(-0.0),
                        Value::F64(-0.0),
                    ])
                ),
                (
                    "b",
                    Value::Array(vec![
                        Value::Boolean(true),
                        Value::Boolean(false),
                        Value::Nil
                    ])
                ),
                ("e", Value::Map(vec![])),
                ("a", Value::Array(vec![])),
            ]))
        );
    }

    #[test]
    fn integers_take_the_smallest_msgpack_form() {
        let mut out = Vec::new();
        from_json(b"[0,127,128,-32,-33]", &mut out).unwrap();
        assert_eq!(out, [0x95, 0x00, 0x7f, 0xcc, 0x80, 0xe0, 0xd0, 0xdf]);
    }

    #[test]
    fn json_string_escapes_are_decoded() {
        assert_eq!(
            mp(r#""a\"b\\c\/\b\f\n\r\t\u00e9\ud83d\ude00 é""#),
            Ok(Value::from("a\"b\\c/\u{8}\u{c}\n\r\t\u{e9}\u{1f600} é"))
        );
    }

    #[test]
    fn json_without_an_exact_msgpack_form_is_refused() {
        let no = |what| Err(Error::Unrepresentable(what));
        assert_eq!(mp("18446744073709551616"), no(Unrepresentable::BigInteger));
        assert_eq!(mp("-9223372036854775809"), no(Unrepresentable::BigInteger));
        assert_eq!(mp("[1e400]"), no(Unrepresentable::HugeNumber));
        assert_eq!(mp(r#"{"a":"\ud800"}"#), no(Unrepresentable::LoneSurrogate));
        assert_eq!(mp(r#""\udc00\ud800""#), no(Unrepresentable::LoneSurrogate));
        assert_eq!(mp(r#""\ud800x""#), no(Unrepresentable::LoneSurrogate));
        assert_eq!(
            check_json(br#"{"x":[1,{"y":123456789012345678901234567890}]}"#),
            Err(Error::Unrepresentable(Unrepresentable::BigInteger))
        );
        assert_eq!(check_json(br#"{"x":[1.5e300,"\u0041"]}"#), Ok(()));
        // Tiny numbers are the nearest double (0), as any JSON parser reads them.
        assert_eq!(mp("1e-400"), Ok(Value::F64(0.0)));
    }

    #[test]
    fn broken_json_is_an_error_not_a_panic() {
        for bad in [
            "",
            "[",
            "]",
            "{\"a\"}",
            "\"abc",
            "\"a\\",
            "tru",
            "-",
            "[1]]",
            "1 2",
            "\"\\u12\"",
            "\"\\x\"",
            "+1",
            "@",
        ] {
            assert!(
                matches!(mp(bad), Err(Error::Malformed(_))),
                "{bad:?}: {:?}",
                mp(bad)
            );
        }
        assert!(from_json(&[b'"', 0xff, b'"'], &mut Vec::new()).is_err());
    }

    #[test]
    fn msgpack_becomes_the_same_json_value() {
        let v = map(vec![
            ("type", Value::from("publish")),
            ("id", Value::from(7)),
            (
                "data",
                Value::Array(vec![
                    Value::from(u64::MAX),
                    Value::from(i64::MIN),
                    Value::from(-1),
                    Value::F64(0.1),
                    Value::F64(1.0),
                    Value::F32(0.5),
                    Value::from("q\"\\\u{1}é"),
                    Value::Nil,
                    Value::Boolean(true),
                    map(vec![("k", Value::Array(vec![]))]),
                ]),
            ),
        ]);
        assert_eq!(
            js(&v).unwrap(),
            r#"{"type":"publish","id":7,"data":[18446744073709551615,-9223372036854775808,-1,0.1,1.0,0.5,"q\"\\\u0001é",null,true,{"k":[]}]}"#
        );
    }

    #[test]
    fn json_to_msgpack_and_back_is_the_identity_on_server_text() {
        let text = r#"{"type":"message","channel":"a\"b","data":{"x":[1,-2,3.25,"é",null,true,{}],"y":""},"offset":18446744073709551615}"#;
        let mut packed = Vec::new();
        from_json(text.as_bytes(), &mut packed).unwrap();
        let mut back = Vec::new();
        to_json(&packed, &mut back).unwrap();
        assert_eq!(String::from_utf8(back).unwrap(), text);
    }

    #[test]
    fn msgpack_without_a_json_form_is_refused() {
        let no = |what| Err(Error::Unrepresentable(what));
        assert_eq!(js(&Value::Binary(vec![1, 2])), no(Unrepresentable::Binary));
        assert_eq!(
            js(&Value::Ext(-1, vec![0; 4])),
            no(Unrepresentable::Extension)
        );
        assert_eq!(
            js(&Value::Ext(5, vec![0; 3])),
            no(Unrepresentable::Extension)
        );
        assert_eq!(js(&Value::F64(f64::NAN)), no(Unrepresentable::NonFinite));
        assert_eq!(
            js(&Value::F32(f32::INFINITY)),
            no(Unrepresentable::NonFinite)
        );
        let int_key = Value::Map(vec![(Value::from(1), Value::from(2))]);
        assert_eq!(js(&int_key), no(Unrepresentable::NonStringKey));
    }

    #[test]
    fn lossy_transcoding_keeps_the_rest_readable() {
        let v = map(vec![
            ("type", Value::from("publish")),
            ("id", Value::from("x")),
            (
                "data",
                Value::Map(vec![
                    (
                        Value::Array(vec![Value::from(1), Value::Binary(vec![])]),
                        Value::from(1),
                    ),
                    (Value::from(2), Value::Binary(vec![9])),
                    (Value::from("ok"), Value::Ext(1, vec![1])),
                ]),
            ),
        ]);
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &v).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            to_json_lossy(&bytes, &mut out),
            Ok(Some(Unrepresentable::NonStringKey))
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            r#"{"type":"publish","id":"x","data":{"":1,"":null,"ok":null}}"#
        );
    }

    #[test]
    fn malformed_msgpack_is_an_error_not_a_panic() {
        let cases: &[&[u8]] = &[
            &[],
            &[0xc1],
            &[0x92, 0x01],                   // array of 2, one element
            &[0xdd, 0xff, 0xff, 0xff, 0xff], // 4 billion elements claimed, none there
            &[0xdf, 0xff, 0xff, 0xff, 0xff],
            &[0xdb, 0xff, 0xff, 0xff, 0xff, b'a'],
            &[0xa2, 0xff, 0xfe], // not UTF-8
            &[0x01, 0x02],       // trailing bytes
            &[0xc6, 0xff, 0xff, 0xff, 0xff],
            &[0xcb, 0x00],
        ];
        for bad in cases {
            let mut out = Vec::new();
            assert!(
                matches!(to_json(bad, &mut out), Err(Error::Malformed(_))),
                "{bad:x?}"
            );
            assert!(out.is_empty());
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |depth: usize| {
            let mut bytes = vec![0x91; depth];
            bytes.push(0xc0);
            bytes
        };
        let mut out = Vec::new();
        assert_eq!(to_json(&nested(MAX_DEPTH), &mut out), Ok(()));
        assert_eq!(out.len(), 2 * MAX_DEPTH + 4);
        assert_eq!(
            to_json(&nested(MAX_DEPTH + 1), &mut Vec::new()),
            Err(Error::Malformed("nested too deep"))
        );
        // JSON from the server has no depth limit (no recursion either).
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let mut packed = Vec::new();
        from_json(deep.as_bytes(), &mut packed).unwrap();
        assert_eq!(packed.len(), 100_000);
    }
}
