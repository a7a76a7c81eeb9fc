//! A DEFLATE walker (RFC 1951) that decodes block structure and Huffman
//! codes but keeps no output, to learn how far back the matches of a
//! compressed message reach: the window a `server_max_window_bits`
//! client must hold. Inflaters are no help here: zlib-rs keeps a 32 KiB
//! window whatever size it is given, so it reads matches a real 8-bit
//! window could not. Test support only.

/// RFC 1951 3.2.5: base lengths of symbols 257..285, and their extra bits.
const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
/// Base distances of symbols 0..29, and their extra bits.
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// The order code-length code lengths come in (RFC 1951 3.2.7).
const CL_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// The longest match distance in a raw DEFLATE stream (blocks until the
/// input ends, as a permessage-deflate message with its `00 00 ff ff` tail
/// does, or until a final block), and the bytes it decodes to; an error
/// for a stream that is not DEFLATE.
pub fn max_match_distance(stream: &[u8]) -> Result<(usize, usize), &'static str> {
    let mut bits = Bits {
        data: stream,
        pos: 0,
    };
    let (mut longest, mut produced) = (0usize, 0usize);
    while bits.pos + 3 <= stream.len() * 8 {
        let last = bits.take(1)? == 1;
        match bits.take(2)? {
            0 => {
                bits.pos = bits.pos.div_ceil(8) * 8;
                let len = bits.take(16)? as usize;
                let nlen = bits.take(16)? as usize;
                if len != !nlen & 0xffff {
                    return Err("stored block length");
                }
                bits.pos += 8 * len;
                if bits.pos > stream.len() * 8 {
                    return Err("stored block past the end");
                }
                produced += len;
            }
            kind @ (1 | 2) => {
                let (lit, dist) = if kind == 1 {
                    fixed_codes()
                } else {
                    dynamic_codes(&mut bits)?
                };
                loop {
                    let sym = lit.decode(&mut bits)?;
                    match sym {
                        0..=255 => produced += 1,
                        256 => break,
                        257..=285 => {
                            let i = usize::from(sym - 257);
                            let len = LEN_BASE[i] as usize + bits.take(LEN_EXTRA[i])? as usize;
                            let d = usize::from(dist.decode(&mut bits)?);
                            if d >= 30 {
                                return Err("distance symbol");
                            }
                            let d = DIST_BASE[d] as usize + bits.take(DIST_EXTRA[d])? as usize;
                            if d > produced {
                                return Err("distance before the start");
                            }
                            longest = longest.max(d);
                            produced += len;
                        }
                        _ => return Err("length symbol"),
                    }
                }
            }
            _ => return Err("reserved block type"),
        }
        if last {
            break;
        }
    }
    Ok((longest, produced))
}

/// LSB-first bit reader.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn take(&mut self, n: u8) -> Result<u32, &'static str> {
        let mut v = 0;
        for i in 0..n {
            let byte = *self.data.get(self.pos / 8).ok_or("truncated")?;
            v |= u32::from(byte >> (self.pos % 8) & 1) << i;
            self.pos += 1;
        }
        Ok(v)
    }
}

/// A canonical Huffman code, decoded a bit at a time (as zlib's puff does).
struct Code {
    /// Codes of each length, 0..=15.
    counts: [u16; 16],
    /// Symbols in code order.
    symbols: Vec<u16>,
}

impl Code {
    fn new(lengths: &[u8]) -> Code {
        let mut counts = [0u16; 16];
        for &l in lengths {
            counts[usize::from(l)] += 1;
        }
        counts[0] = 0;
        let mut symbols: Vec<u16> = (0..lengths.len() as u16)
            .filter(|&s| lengths[usize::from(s)] != 0)
            .collect();
        symbols.sort_by_key(|&s| lengths[usize::from(s)]);
        Code { counts, symbols }
    }

    fn decode(&self, bits: &mut Bits<'_>) -> Result<u16, &'static str> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= bits.take(1)? as i32;
            let count = i32::from(self.counts[len]);
            if code - first < count {
                let at = (index + code - first) as usize;
                return self.symbols.get(at).copied().ok_or("code");
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err("no such code")
    }
}

fn fixed_codes() -> (Code, Code) {
    let mut lit = [8u8; 288];
    lit[144..256].fill(9);
    lit[256..280].fill(7);
    (Code::new(&lit), Code::new(&[5u8; 30]))
}

fn dynamic_codes(bits: &mut Bits<'_>) -> Result<(Code, Code), &'static str> {
    let n_lit = bits.take(5)? as usize + 257;
    let n_dist = bits.take(5)? as usize + 1;
    let n_cl = bits.take(4)? as usize + 4;
    let mut cl = [0u8; 19];
    for &i in &CL_ORDER[..n_cl] {
        cl[i] = bits.take(3)? as u8;
    }
    let cl = Code::new(&cl);
    let mut lengths = Vec::with_capacity(n_lit + n_dist);
    while lengths.len() < n_lit + n_dist {
        let (value, repeat) = match cl.decode(bits)? {
            sym @ 0..=15 => (sym as u8, 1),
            16 => (*lengths.last().ok_or("repeat first")?, 3 + bits.take(2)?),
            17 => (0, 3 + bits.take(3)?),
            18 => (0, 11 + bits.take(7)?),
            _ => return Err("code length symbol"),
        };
        lengths.extend(std::iter::repeat_n(value, repeat as usize));
    }
    if lengths.len() != n_lit + n_dist {
        return Err("code lengths overrun");
    }
    Ok((Code::new(&lengths[..n_lit]), Code::new(&lengths[n_lit..])))
}
