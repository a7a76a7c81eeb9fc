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

mod json_to_msgpack;
mod msgpack_to_json;
#[cfg(test)]
mod tests;

use json_to_msgpack::{emit, scan};
use msgpack_to_json::Transcoder;

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
    std::str::from_utf8(json).map_err(|_| Error::Malformed("JSON text is not UTF-8"))?;
    let mut counts = Vec::new();
    scan(json, Some(&mut counts))?;
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
    std::str::from_utf8(json).map_err(|_| Error::Malformed("JSON text is not UTF-8"))?;
    scan(json, None)
}

/// [`check_json`] of text already known to be UTF-8 (a publish's data).
pub fn check_json_text(json: &str) -> Result<(), Error> {
    scan(json.as_bytes(), None)
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
