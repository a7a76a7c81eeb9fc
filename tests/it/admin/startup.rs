//! Admin-related startup: no admin listener, and startup failures.

use crate::harness::{get, startup_error_line, TestServer, WAIT};

use super::latency::TempDir;

// ---- startup ----

#[test]
fn admin_addr_none_starts_without_an_admin_listener() {
    let server = TestServer::start(&["--shards", "1", "--admin-addr", "none"]);
    assert_eq!(server.admin, None);
    let line = server
        .wait_for_log("listening addr=", WAIT)
        .expect("listening line");
    assert!(line.contains(" admin=none "), "{line}");
    // The public port does not take over the admin routes.
    assert_eq!(get(&server.addr(), "/metrics").status, 404);
    let (_client, hello) = server.ws_client();
    assert_eq!(hello["type"], "connection_established");
}

#[test]
fn second_server_on_the_same_admin_addr_exits_1_naming_the_flag() {
    let first = TestServer::start(&["--shards", "1"]);
    let taken = first.admin_addr().to_string();
    let (status, log) = match TestServer::try_start(&["--shards", "1", "--admin-addr", &taken]) {
        Ok(server) => panic!("second server started on admin {:?}", server.admin),
        Err(failure) => failure,
    };
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{log}");
    let line = startup_error_line(&log);
    assert!(line.contains("--admin-addr"), "{line}");
    assert!(line.contains(&taken), "{line}");
    assert!(line.contains("address already in use"), "{line}");
    assert_eq!(
        get(&taken, "/health").status,
        200,
        "the first server still answers"
    );
}

#[test]
fn latency_report_dir_inside_a_regular_file_exits_1_with_a_clear_error() {
    let dir = TempDir::new("notadir");
    let file = dir.0.join("plain-file");
    std::fs::write(&file, "not a directory").expect("create file");
    for target in [file.join("reports"), file.clone()] {
        let arg = target.to_str().expect("utf-8 temp path");
        let (status, log) =
            match TestServer::try_start(&["--shards", "1", "--latency-report-dir", arg]) {
                Ok(_) => panic!("started with --latency-report-dir {arg}"),
                Err(failure) => failure,
            };
        assert_eq!(status.and_then(|s| s.code()), Some(1), "{log}");
        let line = startup_error_line(&log);
        assert!(line.contains("--latency-report-dir"), "{line}");
        assert!(line.contains(arg), "{line}");
    }
}
