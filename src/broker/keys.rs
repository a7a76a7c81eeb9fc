//! Names in Redis (keys and pub/sub channels under `--redis-prefix`) and the
//! jump consistent hash that spreads channels over the `--redis` instances.

use bytes::{BufMut, Bytes, BytesMut};

/// The names one process uses in Redis, all under one prefix so that
/// several deployments can share an instance.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Names under `prefix` (`--redis-prefix`).
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    fn join(&self, kind: &str, name: &str) -> Bytes {
        let mut out = BytesMut::with_capacity(self.prefix.len() + kind.len() + name.len() + 2);
        out.put_slice(self.prefix.as_bytes());
        out.put_u8(b'.');
        out.put_slice(kind.as_bytes());
        out.put_u8(b'.');
        out.put_slice(name.as_bytes());
        out.freeze()
    }

    /// The pub/sub channel that carries `channel`'s publications.
    pub fn pubsub(&self, channel: &str) -> Bytes {
        self.join("ch", channel)
    }

    /// The channel name inside a pub/sub channel name, if it is one of ours.
    pub fn channel_of<'a>(&self, pubsub: &'a [u8]) -> Option<&'a str> {
        let rest = pubsub.strip_prefix(self.prefix.as_bytes())?;
        let name = rest.strip_prefix(b".ch.")?;
        std::str::from_utf8(name).ok()
    }

    /// The pub/sub channel every process listens to for user-targeted
    /// messages and disconnects.
    pub fn control(&self) -> Bytes {
        self.join("control", "all")
    }

    /// True when `pubsub` is [`Keys::control`].
    pub fn is_control(&self, pubsub: &[u8]) -> bool {
        pubsub == &self.control()[..]
    }

    /// The stream holding `channel`'s publications (entry id = offset).
    pub fn stream(&self, channel: &str) -> Bytes {
        self.join("stream", channel)
    }

    /// The hash holding `channel`'s epoch (`e`) and top offset (`s`).
    pub fn meta(&self, channel: &str) -> Bytes {
        self.join("meta", channel)
    }

    /// The hash of `channel`'s present clients (field: connection id).
    pub fn presence(&self, channel: &str) -> Bytes {
        self.join("presence", channel)
    }

    /// The sorted set of `channel`'s present clients by expiry (ms).
    pub fn presence_expiry(&self, channel: &str) -> Bytes {
        self.join("presence.exp", channel)
    }
}

/// Which of `n` Redis instances serves `channel`: Lamping and Veach's jump
/// consistent hash over a stable 64-bit FNV-1a of the name, so every
/// process (whatever its build) agrees, and adding an instance moves only
/// about 1/(n+1) of the channels (all of them to the new instance).
pub fn instance_of(channel: &str, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    jump(fnv1a(channel.as_bytes()), n)
}

/// FNV-1a, 64 bits: stable across processes, builds and platforms.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Jump consistent hash (Lamping & Veach, 2014): a bucket in `0..n`.
fn jump(mut key: u64, n: usize) -> usize {
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < n as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_under_the_prefix() {
        let keys = Keys::new("corecast");
        assert_eq!(&keys.pubsub("chat:room")[..], b"corecast.ch.chat:room");
        assert_eq!(keys.channel_of(b"corecast.ch.chat:room"), Some("chat:room"));
        assert_eq!(keys.channel_of(b"other.ch.chat:room"), None);
        assert_eq!(keys.channel_of(b"corecast.stream.x"), None);
        assert!(keys.is_control(&keys.control()));
        assert!(!keys.is_control(&keys.pubsub("all")));
    }

    #[test]
    fn jump_hash_is_stable_balanced_and_moves_little() {
        // Fixed values: a change here would split a running cluster.
        assert_eq!(instance_of("news", 1), 0);
        let names: Vec<String> = (0..10_000).map(|i| format!("channel-{i}")).collect();
        let mut counts = [0usize; 4];
        for name in &names {
            counts[instance_of(name, 4)] += 1;
        }
        for c in counts {
            assert!((2_000..3_000).contains(&c), "{counts:?}");
        }
        // From 4 to 5 instances, only channels that move go to the new one.
        let moved = names
            .iter()
            .filter(|n| instance_of(n, 4) != instance_of(n, 5))
            .inspect(|n| assert_eq!(instance_of(n, 5), 4))
            .count();
        assert!((1_500..2_500).contains(&moved), "{moved}");
    }
}
