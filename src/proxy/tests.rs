use std::net::IpAddr;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn list(s: &str) -> TrustedProxies {
    parse_trusted_proxies(s).expect("valid test list")
}

/// `client_addr` with `xff` and `real` as header fields (one per element).
fn resolve(
    peer: &str,
    trusted: &str,
    xff: &[&str],
    real: &[&str],
) -> Result<ClientAddr, Malformed> {
    client_addr(
        ip(peer),
        &list(trusted),
        xff.iter().copied(),
        real.iter().copied(),
    )
}

fn forwarded(addr: &str, via: &str) -> Result<ClientAddr, Malformed> {
    Ok(ClientAddr {
        addr: Some(ip(addr)),
        via: Some(ip(via)),
    })
}

fn direct(addr: &str) -> Result<ClientAddr, Malformed> {
    Ok(ClientAddr {
        addr: Some(ip(addr)),
        via: None,
    })
}

const XFF: Result<ClientAddr, Malformed> = Err(Malformed {
    header: "X-Forwarded-For",
});

#[test]
fn lists_parse_addresses_and_blocks_of_both_families() {
    let l = list(" 127.0.0.1 , 10.0.0.0/8,::1, fd00::/8,");
    assert_eq!(l.0.len(), 4);
    assert_eq!(l.to_string(), "127.0.0.1/32,10.0.0.0/8,::1/128,fd00::/8");
    assert!(l.contains(ip("127.0.0.1")));
    assert!(!l.contains(ip("127.0.0.2")));
    assert!(l.contains(ip("10.255.1.2")));
    assert!(!l.contains(ip("11.0.0.1")));
    assert!(l.contains(ip("::1")));
    assert!(l.contains(ip("fdab::7")));
    assert!(!l.contains(ip("fe80::1")));
    assert!(
        l.contains(ip("::ffff:127.0.0.1")),
        "a dual-stack socket's view of an IPv4 peer"
    );
    assert!(list("0.0.0.0/0").contains(ip("198.51.100.1")));
    assert!(!list("0.0.0.0/0").contains(ip("2001:db8::1")));
    assert!(list("::/0").contains(ip("2001:db8::1")));
    assert_eq!(parse_trusted_proxies(""), Ok(TrustedProxies::default()));
    assert!(parse_trusted_proxies("").unwrap().is_empty());
}

#[test]
fn bad_list_entries_are_named() {
    for (input, bad, why) in [
        ("127.0.0.1,localhost", "\"localhost\"", "not an IP address"),
        ("10.0.0.0/33", "\"10.0.0.0/33\"", "0 to 32"),
        ("::/129", "\"::/129\"", "0 to 128"),
        ("10.0.0.0/", "\"10.0.0.0/\"", "prefix length"),
        ("10.0.0.0/+8", "\"10.0.0.0/+8\"", "prefix length"),
        ("10.0.0.0/8/8", "\"10.0.0.0/8/8\"", "prefix length"),
        ("10.0.0.1/8", "\"10.0.0.1/8\"", "did you mean 10.0.0.0/8"),
        ("fd00::1/8", "\"fd00::1/8\"", "did you mean fd00::/8"),
        ("10.0.0.0 /8", "\"10.0.0.0 /8\"", "not an IP address"),
        ("[::1]", "\"[::1]\"", "not an IP address"),
    ] {
        let e = parse_trusted_proxies(input).expect_err(input);
        assert!(e.contains(bad) && e.contains(why), "{input}: {e}");
    }
}

#[test]
fn headers_from_an_untrusted_peer_are_ignored() {
    assert_eq!(
        resolve("198.51.100.9", "", &["203.0.113.7"], &["203.0.113.8"]),
        direct("198.51.100.9")
    );
    assert_eq!(
        resolve("198.51.100.9", "10.0.0.0/8", &["203.0.113.7"], &[]),
        direct("198.51.100.9")
    );
    assert_eq!(
        resolve(
            "198.51.100.9",
            "10.0.0.0/8",
            &["garbage"],
            &["more garbage"]
        ),
        direct("198.51.100.9"),
        "not even parsed"
    );
}

#[test]
fn the_rightmost_untrusted_forwarded_address_wins() {
    let trusted = "127.0.0.1,10.0.0.0/8";
    assert_eq!(
        resolve("127.0.0.1", trusted, &["203.0.113.7"], &[]),
        forwarded("203.0.113.7", "127.0.0.1")
    );
    // A client's own X-Forwarded-For, then what nginx appended.
    assert_eq!(
        resolve("127.0.0.1", trusted, &["6.6.6.6, 203.0.113.7"], &[]),
        forwarded("203.0.113.7", "127.0.0.1")
    );
    // Trusted hops on the right are skipped.
    assert_eq!(
        resolve(
            "127.0.0.1",
            trusted,
            &["6.6.6.6,203.0.113.7, 10.1.1.1,10.2.2.2"],
            &[]
        ),
        forwarded("203.0.113.7", "127.0.0.1")
    );
    // Several fields are one list, in field order.
    assert_eq!(
        resolve(
            "127.0.0.1",
            trusted,
            &["6.6.6.6", "203.0.113.7", "10.1.1.1"],
            &[]
        ),
        forwarded("203.0.113.7", "127.0.0.1")
    );
    // Every hop trusted: the furthest one.
    assert_eq!(
        resolve("127.0.0.1", trusted, &["10.3.3.3, 10.1.1.1"], &[]),
        forwarded("10.3.3.3", "127.0.0.1")
    );
    // X-Forwarded-For beats X-Real-IP.
    assert_eq!(
        resolve("127.0.0.1", trusted, &["203.0.113.7"], &["203.0.113.8"]),
        forwarded("203.0.113.7", "127.0.0.1")
    );
}

#[test]
fn garbage_left_of_the_chosen_entry_does_not_matter() {
    assert_eq!(
        resolve(
            "127.0.0.1",
            "127.0.0.1",
            &["<script>, unknown, 203.0.113.7"],
            &[]
        ),
        forwarded("203.0.113.7", "127.0.0.1")
    );
}

#[test]
fn x_real_ip_is_the_fallback() {
    assert_eq!(
        resolve("127.0.0.1", "127.0.0.1", &[], &[" 203.0.113.8 "]),
        forwarded("203.0.113.8", "127.0.0.1")
    );
    assert_eq!(
        resolve("127.0.0.1", "127.0.0.1", &[], &[]),
        direct("127.0.0.1"),
        "no header at all"
    );
    let real = Err(Malformed {
        header: "X-Real-IP",
    });
    assert_eq!(resolve("127.0.0.1", "127.0.0.1", &[], &["nope"]), real);
    assert_eq!(
        resolve("127.0.0.1", "127.0.0.1", &[], &["1.1.1.1", "2.2.2.2"]),
        real,
        "two values: which one did the proxy write?"
    );
}

#[test]
fn forwarded_entries_may_carry_ports_and_brackets() {
    for (entry, want) in [
        ("203.0.113.7:5678", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("[::ffff:203.0.113.7]:1", "203.0.113.7"),
    ] {
        assert_eq!(parse_forwarded_addr(entry), Some(ip(want)), "{entry}");
    }
}

#[test]
fn hostile_forwarded_values_fall_back_to_the_peer() {
    let long = "1".repeat(10_000);
    let long_v6 = format!("[{}::1]", "0:".repeat(30));
    let commas = ",".repeat(8_000);
    let many = "garbage,".to_string() + &"10.0.0.1,".repeat(800);
    for value in [
        "unknown",
        "_hidden",
        "example.com",
        "203.0.113.7:",
        "203.0.113.7:123456",
        "203.0.113.7:http",
        "203.0.113.7:1:2",
        "[2001:db8::1",
        "[2001:db8::1]x",
        "[2001:db8::1]:",
        "[203.0.113.7]",
        "2001:db8::1:443x",
        "fe80::1%eth0",
        "1.2.3.4.5",
        "256.1.1.1",
        "\u{0}",
        "203.0.113.7 203.0.113.8",
        "for=203.0.113.7",
        long.as_str(),
        long_v6.as_str(),
        commas.as_str(),
        "  , ,\t,",
    ] {
        assert_eq!(
            resolve("127.0.0.1", "127.0.0.1", &[value], &["203.0.113.8"]),
            XFF,
            "{value:.40}"
        );
    }
    // A long chain of trusted hops is walked to the garbage at its left.
    assert_eq!(
        resolve("127.0.0.1", "10.0.0.0/8,127.0.0.1", &[&many], &[]),
        XFF
    );
    // The same chain with a real client at its left end.
    let chain = "203.0.113.7,".to_string() + &"10.0.0.1,".repeat(800);
    assert_eq!(
        resolve("127.0.0.1", "10.0.0.0/8,127.0.0.1", &[&chain], &[]),
        forwarded("203.0.113.7", "127.0.0.1")
    );
}

#[test]
fn the_log_form_names_the_proxy() {
    assert_eq!(
        forwarded("203.0.113.7", "127.0.0.1").unwrap().to_string(),
        "203.0.113.7 via=127.0.0.1"
    );
    assert_eq!(direct("::1").unwrap().to_string(), "::1");
    assert_eq!(ClientAddr::default().to_string(), "unknown");
}
