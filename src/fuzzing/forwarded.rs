//! `forwarded` oracle: `proxy::client_addr` and `parse_forwarded_addr` on
//! arbitrary header values from a trusted or an untrusted peer.

use std::net::IpAddr;

use crate::proxy::{client_addr, parse_forwarded_addr, parse_trusted_proxies};

/// `forwarded`: one selector byte (bit 0: the peer is trusted; bit 1: the
/// input is `X-Real-IP` rather than `X-Forwarded-For`), then header values
/// separated by NUL. An untrusted peer is always logged as itself. From a
/// trusted one the answer is the peer when no header came, else an address
/// that one of the values' entries parses to, with the peer as `via`, or
/// `Malformed`; never a panic. Every address `parse_forwarded_addr`
/// accepts re-parses from its own text.
pub fn check_forwarded(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let peer: IpAddr = [127, 0, 0, 1].into();
    let list = if selector & 1 == 1 {
        "127.0.0.0/8,10.0.0.0/8,::1"
    } else {
        "192.0.2.0/24"
    };
    // A fixed valid list: parse_trusted_proxies is covered by config_file.
    let Ok(trusted) = parse_trusted_proxies(list) else {
        panic!("fixed list {list} parses");
    };
    let values: Vec<&str> = if text.is_empty() {
        Vec::new()
    } else {
        text.split('\0').collect()
    };
    let real_ip = selector & 2 == 2;
    let (xff, real): (&[&str], &[&str]) = if real_ip {
        (&[], &values)
    } else {
        (&values, &[])
    };
    let answer = client_addr(peer, &trusted, xff.iter().copied(), real.iter().copied());
    if selector & 1 == 0 || values.is_empty() {
        assert_eq!(answer.map(|a| (a.addr, a.via)), Ok((Some(peer), None)));
    } else if let Ok(found) = answer {
        assert_eq!(found.via, Some(peer), "{found:?}");
        let addr = found.addr.expect("a forwarded answer has an address");
        let named = values
            .iter()
            .flat_map(|v| v.split(','))
            .filter_map(|e| parse_forwarded_addr(e.trim_matches([' ', '\t'])))
            .any(|a| a == addr);
        assert!(named, "{addr} is in none of {values:?}");
    }
    for entry in values.iter().flat_map(|v| v.split(',')) {
        if let Some(addr) = parse_forwarded_addr(entry) {
            assert_eq!(
                parse_forwarded_addr(&addr.to_string()),
                Some(addr),
                "{entry:?}"
            );
        }
    }
}
