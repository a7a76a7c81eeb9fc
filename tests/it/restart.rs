//! Restarting the server right after a clean exit: the same fixed ports
//! must be free the moment the process is gone (as `systemctl restart`
//! expects), while a second server beside a running one still fails.

use crate::harness::{bare_command, get, startup_error_line, HttpConn, TestServer, WAIT};

/// Restarts in a row; before the fix about half of them failed.
const RESTARTS: usize = 20;

#[test]
fn immediate_restart_on_the_same_ports_always_starts() {
    let (port, admin) = (free_port(), free_port());
    let admin_addr = format!("127.0.0.1:{admin}");
    for round in 1..=RESTARTS {
        let mut server = match TestServer::spawn(fixed_ports(port, &admin_addr)) {
            Ok(server) => server,
            Err((status, log)) => panic!("start {round} of {RESTARTS} failed ({status:?}):\n{log}"),
        };
        assert_eq!(server.admin_addr(), admin_addr);
        // An admin connection still open at exit, and one that has made a
        // request: both leave the admin port's side in TIME_WAIT.
        assert_eq!(get(&admin_addr, "/health").status, 200);
        let mut idle = HttpConn::open(&admin_addr);
        assert_eq!(idle.request("GET", "/health", &[], "").status, 200);
        server.signal(libc::SIGTERM);
        let status = server.wait_exit(WAIT).expect("exits after SIGTERM");
        assert_eq!(
            status.code(),
            Some(0),
            "round {round}:\n{}",
            server.log_text()
        );
    }
}

#[test]
fn second_server_on_a_running_servers_admin_port_fails_naming_it() {
    let admin_addr = format!("127.0.0.1:{}", free_port());
    let first = TestServer::spawn(fixed_ports(0, &admin_addr)).expect("first server starts");
    let (status, log) = match TestServer::spawn(fixed_ports(0, &admin_addr)) {
        Ok(second) => panic!("second server started beside the first: {:?}", second.admin),
        Err(failure) => failure,
    };
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{log}");
    let line = startup_error_line(&log);
    assert!(line.contains(&admin_addr), "{line}");
    assert!(line.contains("--admin-addr"), "{line}");
    assert!(line.contains("address already in use"), "{line}");
    // The server cannot know whose socket it is: it may be this same
    // program, or a socket the kernel has not closed yet.
    assert!(!line.contains("another process"), "{line}");
    assert_eq!(get(first.admin_addr(), "/health").status, 200);
}

/// `corecast` on `127.0.0.1:port` (0: any) with its admin listener on
/// `admin_addr`, two shards (so the admin socket is shared by two).
fn fixed_ports(port: u16, admin_addr: &str) -> std::process::Command {
    let port = port.to_string();
    bare_command(&[
        "--addr",
        "127.0.0.1",
        "--port",
        &port,
        "--admin-addr",
        admin_addr,
        "--shards",
        "2",
    ])
}

/// A port no one listens on now (the kernel's pick for an ephemeral bind).
fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe");
    probe.local_addr().expect("probe address").port()
}

#[test]
fn immediate_restart_after_a_forced_exit_always_starts() {
    let (port, admin) = (free_port(), free_port());
    let admin_addr = format!("127.0.0.1:{admin}");
    for round in 1..=5 {
        let mut cmd = fixed_ports(port, &admin_addr);
        cmd.args(["--shutdown-timeout", "30s"]);
        let mut server = match TestServer::spawn(cmd) {
            Ok(server) => server,
            Err((status, log)) => panic!("start {round} failed ({status:?}):\n{log}"),
        };
        // A client that never answers the close keeps the drain going, so
        // the second signal cuts it short.
        let _stubborn = crate::harness::RawClient::connect(&server.addr(), "/ws");
        assert_eq!(get(&admin_addr, "/health").status, 200);
        server.signal(libc::SIGTERM);
        assert!(
            server.wait_for_log("draining", WAIT).is_some(),
            "{}",
            server.log_text()
        );
        server.signal(libc::SIGTERM);
        let status = server
            .wait_exit(WAIT)
            .expect("exits after a second SIGTERM");
        assert_eq!(
            status.code(),
            Some(130),
            "round {round}:\n{}",
            server.log_text()
        );
    }
}
