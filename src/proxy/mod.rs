//! `--trusted-proxies` and the client address a proxy forwards; no I/O.
//!
//! The handshake passes in the TCP peer and the header values; nothing
//! here reads a socket or keeps anything per connection.
//!
//! A [`ProxyNet`] is one address or CIDR block (`10.0.0.0/8`, `::1`);
//! [`TrustedProxies`] is the configured list, empty by default (no header
//! is believed). [`client_addr`] decides who a handshake is logged as:
//! the TCP peer, unless the peer is a trusted proxy, in which case the
//! right-most `X-Forwarded-For` entry that is not itself a trusted proxy
//! (entries to its left were written by the client and prove nothing), or
//! else `X-Real-IP`. Nothing here allocates after startup: a header walk
//! is a reverse split over the bytes httparse already holds.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Longest `X-Forwarded-For` entry parsed: a full IPv6 address in brackets
/// with a port is 47 bytes, so anything longer is garbage and is refused
/// before an address parser sees it.
const MAX_ENTRY_LEN: usize = 64;

/// One trusted address or CIDR block; IPv4-mapped IPv6 addresses are
/// compared as IPv4, so `127.0.0.1` also covers `::ffff:127.0.0.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyNet {
    /// The network address (host bits zero).
    addr: IpAddr,
    /// Prefix length in bits (32 or 128 for a single address).
    prefix: u8,
}

/// The `--trusted-proxies` list. Empty trusts nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<ProxyNet>);

/// Where a handshake's client address came from, for log lines: the
/// address, and the peer it was forwarded by when a header supplied it.
/// `Copy` and small on purpose: it lives on the handshake's stack only and
/// is never kept in the connection's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientAddr {
    /// The client, or None when the peer was not looked up (debug logging
    /// off) or `getpeername` failed.
    pub addr: Option<IpAddr>,
    /// The trusted proxy that forwarded `addr`, when a header supplied it.
    pub via: Option<IpAddr>,
}

/// A forwarding header a trusted proxy sent that could not be read; the
/// peer address is used instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed {
    /// The header's name, for the debug line.
    pub header: &'static str,
}

impl ClientAddr {
    /// The TCP peer itself, no proxy involved.
    pub fn direct(peer: Option<IpAddr>) -> ClientAddr {
        ClientAddr {
            addr: peer,
            via: None,
        }
    }
}

impl ProxyNet {
    /// Whether `ip` is inside this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask_v4(ip, self.prefix) == net,
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask_v6(ip, self.prefix) == net,
            _ => false,
        }
    }
}

impl TrustedProxies {
    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// Whether no proxy is trusted (forwarding headers are never read).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Parses `--trusted-proxies`: comma-separated addresses and CIDR blocks,
/// IPv4 or IPv6; an empty string is an empty list. The error names the
/// bad entry.
pub fn parse_trusted_proxies(s: &str) -> Result<TrustedProxies, String> {
    s.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<_>, _>>()
        .map(TrustedProxies)
}

/// The address a handshake from `peer` is logged as. `forwarded_for` is
/// every `X-Forwarded-For` value in the order the fields came (several
/// fields form one list), `real_ip` every `X-Real-IP` value. Headers are
/// read only when `peer` is a trusted proxy; a header that is present but
/// unreadable is an error, and the caller falls back to the peer.
pub fn client_addr<'a>(
    peer: IpAddr,
    trusted: &TrustedProxies,
    forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    mut real_ip: impl Iterator<Item = &'a str>,
) -> Result<ClientAddr, Malformed> {
    let direct = ClientAddr::direct(Some(peer));
    if !trusted.contains(peer) {
        return Ok(direct);
    }
    let forwarded = |addr| ClientAddr {
        addr: Some(addr),
        via: Some(peer),
    };
    let xff = Malformed {
        header: "X-Forwarded-For",
    };
    let mut fields = forwarded_for.rev().peekable();
    if fields.peek().is_some() {
        // Right to left: each trusted hop vouches for the entry before it.
        // If every entry is a trusted proxy, the left-most is the furthest.
        let mut leftmost = None;
        for entry in fields.flat_map(|field| field.rsplit(',')) {
            let entry = entry.trim_matches([' ', '\t']);
            if entry.is_empty() {
                continue;
            }
            let addr = parse_forwarded_addr(entry).ok_or(xff)?;
            if !trusted.contains(addr) {
                return Ok(forwarded(addr));
            }
            leftmost = Some(addr);
        }
        return leftmost.map(forwarded).ok_or(xff);
    }
    let real = Malformed {
        header: "X-Real-IP",
    };
    match (real_ip.next(), real_ip.next()) {
        (None, _) => Ok(direct),
        // Two values leave no way to tell which one the proxy wrote.
        (Some(_), Some(_)) => Err(real),
        (Some(value), None) => parse_forwarded_addr(value.trim_matches([' ', '\t']))
            .map(forwarded)
            .ok_or(real),
    }
}

/// One forwarded address: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:5678` (some proxies add the port).
/// None for anything else: names, `unknown`, zone ids, obfuscated
/// identifiers (RFC 7239), or an entry longer than any address.
pub fn parse_forwarded_addr(entry: &str) -> Option<IpAddr> {
    if entry.len() > MAX_ENTRY_LEN {
        return None;
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return inside
            .parse::<Ipv6Addr>()
            .ok()
            .map(|ip| IpAddr::V6(ip).to_canonical());
    }
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    let (host, port) = entry.split_once(':')?;
    if !is_port(port) {
        return None;
    }
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

impl FromStr for ProxyNet {
    type Err = String;

    fn from_str(s: &str) -> Result<ProxyNet, String> {
        let example = "e.g. 10.0.0.0/8, 192.168.1.10 or fd00::/8";
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("entry {s:?} is not an IP address or CIDR block ({example})"))?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                // Plain decimal only: "+8" parses as a u8 but is no prefix.
                Ok(n) if n <= max && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(format!(
                        "entry {s:?}: the prefix length must be 0 to {max} ({example})"
                    ))
                }
            },
        };
        let net = ProxyNet {
            addr: match addr {
                IpAddr::V4(ip) => IpAddr::V4(mask_v4(ip, prefix)),
                IpAddr::V6(ip) => IpAddr::V6(mask_v6(ip, prefix)),
            },
            prefix,
        };
        if net.addr != addr {
            return Err(format!(
                "entry {s:?} has bits set past its /{prefix} prefix (did you mean {net}?)"
            ));
        }
        Ok(net)
    }
}

impl fmt::Display for ProxyNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, net) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ClientAddr {
    /// `203.0.113.7`, `203.0.113.7 via=127.0.0.1` when forwarded, or
    /// `unknown`; meant to follow `client=` in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            Some(addr) => write!(f, "{addr}")?,
            None => f.write_str("unknown")?,
        }
        match self.via {
            Some(via) => write!(f, " via={via}"),
            None => Ok(()),
        }
    }
}

/// 1 to 5 ASCII digits.
fn is_port(s: &str) -> bool {
    (1..=5).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

fn mask_v4(ip: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let bits = u32::from(ip);
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    Ipv4Addr::from(bits & mask)
}

fn mask_v6(ip: Ipv6Addr, prefix: u8) -> Ipv6Addr {
    let bits = u128::from(ip);
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    Ipv6Addr::from(bits & mask)
}

#[cfg(test)]
mod tests;
