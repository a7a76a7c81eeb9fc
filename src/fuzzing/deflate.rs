//! `deflate_offer` and `inflate` oracles: permessage-deflate's offer
//! negotiation ([`crate::deflate::negotiate`]) and the shard's bounded
//! inflater ([`crate::deflate::Inflater`]).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::deflate::{negotiate, Agreement, InflateError, Inflater};

/// `deflate_offer`: one byte of mode, then either (bit 0 clear) header
/// values split at `\n`, or (bit 0 set) a spec from which offers are built
/// and the expected answer worked out independently of the parser. Raw
/// values: the answer is deterministic, is the same when the values are
/// joined into one header (without quotes, which may span a comma),
/// mentions only what the input does, and is itself an offer that
/// negotiates to the same answer. Spec: the answer is the expected one.
pub fn check_deflate_offer(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 1 {
        return check_built_offers(rest);
    }
    // The server reads a non-UTF-8 header value as empty.
    let text = std::str::from_utf8(rest).unwrap_or("");
    let values: Vec<&str> = text.split('\n').collect();
    let answer = negotiate(values.iter().copied());
    assert_eq!(
        answer,
        negotiate(values.iter().copied()),
        "not deterministic"
    );
    if !text.contains(['"', '\\']) {
        let joined = values.join(", ");
        assert_eq!(
            answer,
            negotiate([joined.as_str()]),
            "joined headers differ"
        );
    }
    let Some(agreed) = answer else {
        return;
    };
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("permessage-deflate"), "agreed to {text:?}");
    if agreed.server_max_window_bits.is_some() {
        assert!(lower.contains("server_max_window_bits"), "{text:?}");
    }
    let again = agreed.to_string();
    assert_eq!(negotiate([again.as_str()]), Some(agreed), "{again}");
}

/// Extension names a built offer may carry.
const NAMES: [&str; 4] = [
    "permessage-deflate",
    "PerMessage-Deflate",
    "x-webkit-deflate-frame",
    "permessage-deflate-x",
];
/// Parameter names (the last is unknown).
const PARAMS: [&str; 5] = [
    "server_no_context_takeover",
    "client_no_context_takeover",
    "server_max_window_bits",
    "client_max_window_bits",
    "foo",
];
/// Values a parameter may carry (index 0: none).
const VALUES: [Option<&str>; 9] = [
    None,
    Some("15"),
    Some("8"),
    Some("\"12\""),
    Some("16"),
    Some("09"),
    Some("\"1\\5\""),
    Some("x"),
    Some("9"),
];

/// Builds offers from a spec of bytes (name, params, values, whitespace,
/// header breaks) and checks the parser against the rules of RFC 7692
/// applied to the spec itself.
fn check_built_offers(spec: &[u8]) {
    let mut bytes = spec.iter().copied();
    let mut next = || bytes.next().unwrap_or(0);
    let n_offers = 1 + usize::from(next() % 4);
    let mut headers = vec![String::new()];
    let mut want: Option<Agreement> = None;
    for i in 0..n_offers {
        let layout = next();
        let name = NAMES[usize::from(layout % 4)];
        let n_params = usize::from((layout >> 2) % 4);
        let pad = if layout & 0x10 != 0 { " " } else { "" };
        if i > 0 {
            // A new header or a comma in the same one.
            if layout & 0x20 != 0 {
                headers.push(String::new());
            } else {
                headers
                    .last_mut()
                    .unwrap()
                    .push_str(&format!("{pad},{pad}"));
            }
        }
        let mut offer = name.to_owned();
        let mut ok = name.eq_ignore_ascii_case("permessage-deflate");
        let mut seen = [false; PARAMS.len()];
        let mut server_bits = None;
        for _ in 0..n_params {
            let choice = next();
            let param = usize::from(choice % 5);
            let value = VALUES[usize::from(choice / 5) % VALUES.len()];
            offer.push_str(&format!("{pad};{pad}{}", PARAMS[param]));
            if let Some(v) = value {
                offer.push_str(&format!("{pad}={pad}{v}"));
            }
            let bits = value.and_then(|v| match v.trim_matches('"') {
                "1\\5" => Some(15),
                v if !v.starts_with('0') => v.parse::<u8>().ok().filter(|b| (8..=15).contains(b)),
                _ => None,
            });
            ok &= !seen[param];
            seen[param] = true;
            ok &= match param {
                0 | 1 => value.is_none(),
                2 => bits.is_some(),
                3 => value.is_none() || bits.is_some(),
                _ => false,
            };
            if param == 2 {
                server_bits = bits;
            }
        }
        headers.last_mut().unwrap().push_str(&offer);
        if ok && want.is_none() {
            want = Some(Agreement {
                server_max_window_bits: server_bits,
            });
        }
    }
    let got = negotiate(headers.iter().map(String::as_str));
    assert_eq!(got, want, "headers {headers:?}");
}

/// `inflate`: one byte picking the message size limit, one of mode, then
/// the data. Mode bit 0 clear: the data is a compressed message as a client
/// sends it, inflated by the shard's [`Inflater`] and by a plain flate2
/// decode of the whole stream: both agree (same bytes; too big exactly when
/// the reference produced more than the limit, even in the call that then
/// failed: output before invalid data counts; invalid exactly when the
/// reference failed within it). Set: the data is compressed first (as a
/// client would) and must inflate back to itself, or be too big. Either
/// way the inflater's buffer never grows past the limit plus one step.
pub fn check_inflate(data: &[u8]) {
    let Some((&[limit_sel, mode], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let limit = [0, 1, 100, 4096, 65_536, 1 << 20][usize::from(limit_sel % 6)];
    let mut inflater = Inflater::default();
    // Twice: the second run reuses the state the first left.
    for _ in 0..2 {
        if mode & 1 == 1 {
            let compressed = client_deflate(rest);
            let got = inflater.inflate(&compressed, limit);
            if rest.len() <= limit {
                assert_eq!(got, Ok(rest), "round trip");
            } else {
                assert_eq!(got, Err(InflateError::TooBig), "{} > {limit}", rest.len());
            }
        } else {
            let want = reference_inflate(rest, limit);
            match inflater.inflate(rest, limit) {
                Ok(out) => assert_eq!(Ok(out), want.as_deref(), "inflated bytes differ"),
                Err(InflateError::TooBig) => assert_eq!(want, Err(Reference::TooBig)),
                Err(InflateError::Invalid) => assert_eq!(want, Err(Reference::Invalid)),
            }
        }
        let capacity = inflater.capacity();
        assert!(
            capacity <= (limit + 1 + 32 * 1024).max(64 * 1024),
            "inflater holds {capacity} bytes for limit {limit}"
        );
    }
}

/// What the reference decode concluded.
#[derive(Debug, PartialEq, Eq)]
enum Reference {
    TooBig,
    Invalid,
}

/// Decodes `payload` plus the `00 00 ff ff` tail with a fresh flate2
/// decompressor into one growing buffer, stopping once past `limit`.
fn reference_inflate(payload: &[u8], limit: usize) -> Result<Vec<u8>, Reference> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
    let mut d = Decompress::new(false);
    let mut out = Vec::new();
    loop {
        out.reserve(100_000);
        let before = (d.total_in(), d.total_out());
        let pos = d.total_in() as usize;
        let status = d.decompress_vec(&input[pos..], &mut out, FlushDecompress::None);
        if out.len() > limit {
            return Err(Reference::TooBig);
        }
        match status {
            Err(_) => return Err(Reference::Invalid),
            Ok(Status::StreamEnd) => return Ok(out),
            Ok(_) if (d.total_in(), d.total_out()) == before => return Ok(out),
            Ok(_) => {}
        }
    }
}

/// `data` compressed as a client would: raw DEFLATE, sync flush, tail removed.
fn client_deflate(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::fast(), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    loop {
        let pos = c.total_in() as usize;
        c.compress_vec(&data[pos..], &mut out, FlushCompress::Sync)
            .expect("compressing valid input");
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(64 + data.len() / 8);
    }
    assert!(out.ends_with(&[0x00, 0x00, 0xff, 0xff]), "sync flush tail");
    out.truncate(out.len() - 4);
    out
}
