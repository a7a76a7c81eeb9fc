//! The per-shard compressor and decompressor: raw DEFLATE (no zlib
//! header) as RFC 7692 frames it, from an empty window for every message.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The window the server compresses with (2^15 = 32 KiB, the most DEFLATE
/// allows). Every subscriber shares one compressed frame, so there is one
/// window for all: an offer asking for a smaller `server_max_window_bits`
/// is declined (RFC 7692 7.1.2.1 lets the server decline it) rather than
/// giving the shard a second compressor and every publish a second copy.
pub const SERVER_WINDOW_BITS: u8 = 15;

/// zlib's default level (6), node `ws`'s and uWebSockets' too: a publish is
/// compressed once per shard for all its subscribers, so a better ratio is
/// worth more than a cheaper compression here.
const LEVEL: u32 = 6;

/// RFC 7692 7.2.1: a compressed message ends in an empty stored block
/// (`00 00 ff ff`), which the sender removes and the receiver adds back.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Output grown per step while inflating, so a message is never given more
/// memory than its limit allows plus one step.
const INFLATE_STEP: usize = 32 * 1024;

/// Output capacity the inflater keeps between messages; a larger one left
/// by a big message is given back at the next message.
const INFLATE_KEEP: usize = 64 * 1024;

/// One shard's compressor: reset after every message (no context
/// takeover), so its output for a payload never depends on what came
/// before. About 370 KiB of zlib-rs state, made the first time it is used.
pub struct Deflater {
    /// Raw DEFLATE, with the window it was made for.
    compress: Compress,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deflater")
    }
}

impl Default for Deflater {
    /// A compressor with the largest window, [`SERVER_WINDOW_BITS`].
    fn default() -> Deflater {
        Deflater::new(SERVER_WINDOW_BITS)
    }
}

impl Deflater {
    /// A compressor whose output an inflater with a `window_bits` window
    /// (8 to 15; values outside are clamped) can read.
    pub fn new(window_bits: u8) -> Deflater {
        Deflater {
            compress: Compress::new_with_window_bits(
                Compression::new(LEVEL),
                false,
                window_bits.clamp(9, SERVER_WINDOW_BITS),
            ),
        }
    }

    /// Appends `input` compressed as one permessage-deflate message (the
    /// trailing `00 00 ff ff` removed) to `out`. Returns false, with `out`
    /// as it was, if the compressor failed (it does not on valid state).
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        let start = out.len();
        let ok = self.run(input, out);
        self.compress.reset();
        if ok && out.len() >= start + TAIL.len() && out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
            return true;
        }
        out.truncate(start);
        false
    }

    fn run(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        let mut consumed = 0;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(input.len() / 4 + 64);
            }
            let (in_before, out_before) = (self.compress.total_in(), self.compress.total_out());
            let status = self
                .compress
                .compress_vec(&input[consumed..], out, FlushCompress::Sync);
            let read = (self.compress.total_in() - in_before) as usize;
            let wrote = self.compress.total_out() - out_before;
            consumed += read;
            match status {
                // Room left after a sync flush: the whole input is out.
                Ok(_) if consumed == input.len() && out.len() < out.capacity() => return true,
                Ok(Status::BufError) if read == 0 && wrote == 0 => return consumed == input.len(),
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }
}

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// It inflates past the message size limit (close 1009).
    TooBig,
    /// It is not valid DEFLATE data (close 1002).
    Invalid,
}

/// One shard's decompressor and its output buffer, reset for every
/// message (the server asks clients for no context takeover).
pub struct Inflater {
    /// Raw DEFLATE with a 32 KiB window, which decodes any smaller one.
    decompress: Decompress,
    /// The last inflated message.
    out: Vec<u8>,
    /// Messages inflated since [`Inflater::take_count`] (for the metrics).
    count: u64,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("capacity", &self.out.capacity())
            .finish()
    }
}

impl Default for Inflater {
    fn default() -> Inflater {
        Inflater {
            decompress: Decompress::new_with_window_bits(false, 15),
            out: Vec::new(),
            count: 0,
        }
    }
}

impl Inflater {
    /// Inflates one whole message's payload (as received, without the
    /// `00 00 ff ff` tail, which is added here). Output beyond `limit`
    /// bytes fails with [`InflateError::TooBig`] as soon as it is produced:
    /// memory grows in steps of 32 KiB and never past `limit` plus one step.
    pub fn inflate(&mut self, input: &[u8], limit: usize) -> Result<&[u8], InflateError> {
        self.decompress.reset(false);
        self.out.clear();
        if self.out.capacity() > INFLATE_KEEP.max(limit.saturating_add(1)) {
            self.out = Vec::new();
        }
        if !self.feed(input, limit)? {
            self.feed(&TAIL, limit)?;
        }
        self.count += 1;
        Ok(&self.out)
    }

    /// Bytes the output buffer holds room for (checked by the fuzz oracle).
    pub(crate) fn capacity(&self) -> usize {
        self.out.capacity()
    }

    /// Messages inflated since the last call.
    pub fn take_count(&mut self) -> u64 {
        std::mem::take(&mut self.count)
    }

    /// Gives back a large output buffer once its message is handled.
    pub fn shrink(&mut self) {
        if self.out.capacity() > INFLATE_KEEP {
            self.out = Vec::new();
        }
    }

    /// Feeds `input`; Ok(true) once the DEFLATE stream has ended (a final
    /// block: anything after it is ignored).
    fn feed(&mut self, input: &[u8], limit: usize) -> Result<bool, InflateError> {
        let mut pos = 0;
        loop {
            if self.out.len() == self.out.capacity() {
                // One byte past the limit is enough to know it is exceeded.
                let room = INFLATE_STEP.min(limit.saturating_add(1) - self.out.len());
                self.out.reserve_exact(room);
            }
            let (in_before, out_before) = (self.decompress.total_in(), self.decompress.total_out());
            let result =
                self.decompress
                    .decompress_vec(&input[pos..], &mut self.out, FlushDecompress::Sync);
            let read = (self.decompress.total_in() - in_before) as usize;
            let wrote = self.decompress.total_out() - out_before;
            pos += read;
            // Checked first: output written before the call met invalid
            // data came earlier in the stream, so the message was too big
            // before it was invalid (whatever the step size).
            if self.out.len() > limit {
                return Err(InflateError::TooBig);
            }
            let status = result.map_err(|_| InflateError::Invalid)?;
            if status == Status::StreamEnd {
                return Ok(true);
            }
            if pos == input.len() && self.out.len() < self.out.capacity() {
                return Ok(false); // All taken, with room to spare: nothing pending.
            }
            if read == 0 && wrote == 0 && self.out.len() < self.out.capacity() {
                return Err(InflateError::Invalid); // Stuck with room and input.
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(data: &[u8]) -> Vec<u8> {
        let mut compressed = Vec::new();
        assert!(Deflater::default().compress(data, &mut compressed));
        Inflater::default()
            .inflate(&compressed, data.len())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn compresses_and_inflates_back() {
        for n in [0usize, 1, 100, 40_000, 200_000] {
            let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8 ^ (i / 7) as u8).collect();
            assert_eq!(roundtrip(&data), data, "n={n}");
        }
    }

    #[test]
    fn output_is_the_same_whatever_came_before() {
        let mut d = Deflater::default();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        d.compress(b"hello hello hello hello", &mut a);
        d.compress(b"something else entirely", &mut Vec::new());
        d.compress(b"hello hello hello hello", &mut b);
        assert_eq!(a, b);
        assert!(!a.ends_with(&TAIL));
    }

    #[test]
    fn rfc7692_example_inflates() {
        // RFC 7692 7.2.3.1: "Hello" compressed without context takeover.
        let mut i = Inflater::default();
        assert_eq!(
            i.inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 5),
            Ok(&b"Hello"[..])
        );
        // 7.2.3.3: the same with a stored (uncompressed) block.
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(i.inflate(&stored, 5), Ok(&b"Hello"[..]));
        // 7.2.3.4: a final block (BFINAL=1) ends the message too.
        assert_eq!(
            i.inflate(&[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 5),
            Ok(&b"Hello"[..])
        );
    }

    #[test]
    fn a_bomb_stops_at_the_limit_without_a_large_buffer() {
        let zeros = vec![0u8; 8 << 20];
        let mut compressed = Vec::new();
        Deflater::default().compress(&zeros, &mut compressed);
        assert!(compressed.len() < 16 * 1024);
        let mut i = Inflater::default();
        assert_eq!(i.inflate(&compressed, 100_000), Err(InflateError::TooBig));
        assert!(i.out.capacity() <= 100_001 + INFLATE_STEP);
        assert_eq!(
            i.inflate(&compressed, 8 << 20).map(<[u8]>::len),
            Ok(8 << 20)
        );
    }

    #[test]
    fn garbage_is_invalid() {
        let mut i = Inflater::default();
        // BTYPE=11 is reserved.
        assert_eq!(
            i.inflate(&[0xff, 0xff, 0xff], 1000),
            Err(InflateError::Invalid)
        );
        // A stored block whose NLEN is not LEN's complement.
        assert_eq!(
            i.inflate(&[0x00, 0x05, 0x00, 0x00, 0x00, 1, 2, 3, 4, 5], 1000),
            Err(InflateError::Invalid)
        );
    }
}
