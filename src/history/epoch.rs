//! [`Epoch`]: the name of one incarnation of a channel's history, and the
//! seeded generator that makes them. No randomness source of its own: the
//! caller passes OS random bits once, at startup.

use std::fmt;

/// Characters in a rendered epoch: 12 base32 digits carry 60 bits.
pub const EPOCH_LEN: usize = 12;

/// Crockford's base32 alphabet, lowercase (no `i`, `l`, `o`, `u`).
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Epochs live in a 60-bit space, so 12 base32 digits render them exactly.
const MASK_60: u64 = (1 << 60) - 1;

/// One incarnation of a channel's history: an offset means something only
/// together with its epoch, and a new epoch says "the history was lost".
///
/// A `Copy` value (12 ASCII bytes, always [`EPOCH_LEN`] characters of
/// lowercase Crockford base32, never empty) rather than an `Rc<str>`/`Arc<str>`: it is
/// `Send`, so it rides the bus in a publish without a refcount shared
/// between cores, costs 12 bytes per channel instead of a 16-byte pointer
/// plus a heap block, and [`Epoch::as_str`] writes it into a reply without
/// formatting.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Epoch([u8; EPOCH_LEN]);

impl Epoch {
    /// The epoch as sent to clients: [`EPOCH_LEN`] lowercase base32 characters.
    pub fn as_str(&self) -> &str {
        // Always Ok: every byte comes from ALPHABET, which is ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// True when a client's `epoch` names this one. An empty or malformed
    /// string never matches: it is a mismatch, not a wildcard.
    pub fn matches(&self, client: &str) -> bool {
        self.0 == client.as_bytes()
    }

    /// Reads an epoch another process rendered (the Redis engine keeps them
    /// in Redis): exactly [`EPOCH_LEN`] characters of the alphabet, else None.
    pub fn parse(text: &[u8]) -> Option<Epoch> {
        let bytes: [u8; EPOCH_LEN] = text.try_into().ok()?;
        bytes
            .iter()
            .all(|b| ALPHABET.contains(b))
            .then_some(Epoch(bytes))
    }

    /// Renders the low 60 bits of `value`, most significant digit first.
    fn from_bits(value: u64) -> Epoch {
        let mut out = [0u8; EPOCH_LEN];
        for (i, byte) in out.iter_mut().enumerate() {
            let shift = 5 * (EPOCH_LEN - 1 - i);
            *byte = ALPHABET[((value >> shift) & 31) as usize];
        }
        Epoch(out)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Epoch({})", self.as_str())
    }
}

/// Makes a store's epochs: the n-th is a keyed bijection of n on 60 bits,
/// so one store never repeats an epoch (until 2^60 of them), and stores
/// with different seeds produce unrelated-looking sequences.
#[derive(Debug)]
pub struct EpochSource {
    /// Added before the first permutation.
    key_in: u64,
    /// Mixed in between the two permutations.
    key_out: u64,
    /// Epochs made so far.
    counter: u64,
}

impl EpochSource {
    /// A source keyed by `seed` (OS random bits, different per shard).
    pub fn new(seed: u64) -> EpochSource {
        EpochSource {
            key_in: splitmix64(seed),
            key_out: splitmix64(seed ^ 0x5851_f42d_4c95_7f2d),
            counter: 0,
        }
    }

    /// The next epoch, distinct from every earlier one of this source.
    pub fn next_epoch(&mut self) -> Epoch {
        self.counter = self.counter.wrapping_add(1);
        let x = permute_60(self.counter.wrapping_add(self.key_in));
        Epoch::from_bits(permute_60(x ^ self.key_out))
    }
}

/// A bijection on the low 60 bits (xorshifts and odd multipliers modulo
/// 2^60 are each invertible), with splitmix64's constants for good mixing.
fn permute_60(x: u64) -> u64 {
    let mut x = x & MASK_60;
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9) & MASK_60;
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb) & MASK_60;
    x ^ (x >> 31)
}

/// splitmix64's finaliser: spreads a seed's bits before it keys the source.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn epochs_are_distinct_fixed_length_base32() {
        let mut source = EpochSource::new(42);
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let epoch = source.next_epoch();
            assert_eq!(epoch.as_str().len(), EPOCH_LEN);
            assert!(epoch.as_str().bytes().all(|b| ALPHABET.contains(&b)));
            assert!(seen.insert(epoch));
        }
    }

    #[test]
    fn seeds_give_different_sequences() {
        let (mut a, mut b) = (EpochSource::new(1), EpochSource::new(2));
        let a: HashSet<Epoch> = (0..100).map(|_| a.next_epoch()).collect();
        assert!((0..100).all(|_| !a.contains(&b.next_epoch())));
    }

    #[test]
    fn empty_or_other_strings_never_match() {
        let epoch = EpochSource::new(7).next_epoch();
        assert!(epoch.matches(epoch.as_str()));
        assert!(!epoch.matches(""));
        assert!(!epoch.matches(&epoch.as_str()[1..]));
        let mut other = epoch.as_str().as_bytes().to_vec();
        other[0] = if other[0] == b'0' { b'1' } else { b'0' };
        assert!(!epoch.matches(std::str::from_utf8(&other).unwrap()));
    }
}
