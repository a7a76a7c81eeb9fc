//! `--allowed-origins`: a browser upgrade from another origin gets 403; a
//! request without `Origin` (not a browser) is served.

use super::*;

#[test]
fn origins_are_matched_exactly_or_by_wildcard_host() {
    let server = auth_server(&[
        "--allowed-origins",
        "https://app.example.com,https://*.example.org",
    ]);
    for (origin, want) in [
        ("Origin: https://app.example.com", 101),
        ("Origin: https://chat.example.org", 101),
        ("Origin: https://evil.example.net", 403),
        ("Origin: http://app.example.com", 403),
        ("Origin: https://example.org.evil.net", 403),
        ("", 101),
    ] {
        let (status, body) = upgrade_answer(&server, "/ws", origin);
        assert_eq!(status, want, "{origin:?}: {body}");
        if want == 403 {
            assert!(body.contains("allowed-origins"), "{body}");
        }
    }
}

#[test]
fn without_the_flag_every_origin_is_allowed() {
    let server = auth_server(&[]);
    let (status, _) = upgrade_answer(&server, "/ws", "Origin: https://anything.test");
    assert_eq!(status, 101);
}

#[test]
fn auth_without_an_origin_list_is_warned_about_at_startup() {
    let server = auth_server(&[]);
    assert!(
        server.log_text().contains("--allowed-origins is empty"),
        "{}",
        server.log_text()
    );
    let listed = auth_server(&["--allowed-origins", "https://a.test"]);
    assert!(!listed.log_text().contains("--allowed-origins is empty"));
}
