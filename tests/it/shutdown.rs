//! Process life: graceful shutdown on SIGTERM (close 1001, drain, exit 0),
//! the shutdown deadline, the forced exit on a second signal, and startup
//! failures with their exit codes and messages.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use tungstenite::Error;

use crate::harness::{
    bare_command, clients_on_both_shards, command, startup_error_line, upgrade_request, Client,
    RawClient, TestServer, WAIT,
};

#[test]
fn sigterm_closes_clients_on_every_shard_with_1001_and_exits_0() {
    let mut server = TestServer::start(&["--shards", "2"]);
    let mut clients = clients_on_both_shards(&server, 3);

    server.signal(libc::SIGTERM);
    for (_, client, _) in &mut clients {
        let (code, reason) = client.read_close();
        assert_eq!((code, reason.as_str()), (1001, "server shutting down"));
        finish_close(client);
    }
    let status = server
        .wait_exit(WAIT)
        .expect("server exits after the drain");
    assert_eq!(status.code(), Some(0), "{}", server.log_text());
    assert!(
        server.wait_for_log("shutdown complete", WAIT).is_some(),
        "{}",
        server.log_text()
    );
    assert!(
        !server.log_text().contains("shutdown timeout reached"),
        "{}",
        server.log_text()
    );
}

#[test]
fn shutdown_exits_0_after_shutdown_timeout_when_a_client_never_answers() {
    let mut server = TestServer::start(&["--shards", "1", "--shutdown-timeout", "500ms"]);
    let _silent = RawClient::connect(&server.addr(), "/ws");

    let sent = Instant::now();
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(WAIT)
        .expect("server exits after the shutdown timeout");
    assert_eq!(status.code(), Some(0), "{}", server.log_text());
    assert!(
        sent.elapsed() >= Duration::from_millis(500),
        "exited before the shutdown timeout"
    );
    let log = server.log_text();
    assert!(
        log.contains("shutdown timeout reached connections_left=1"),
        "{log}"
    );
    assert!(log.contains("shutdown complete"), "{log}");
}

#[test]
fn second_sigterm_during_drain_exits_130_at_once() {
    let mut server = TestServer::start(&["--shards", "1"]);
    let _silent = RawClient::connect(&server.addr(), "/ws");

    server.signal(libc::SIGTERM);
    assert!(
        server.wait_for_log("draining", WAIT).is_some(),
        "{}",
        server.log_text()
    );
    server.signal(libc::SIGTERM);
    // Well inside the default 10 s shutdown timeout the drain would wait for.
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("second SIGTERM exits at once");
    assert_eq!(status.code(), Some(130), "{}", server.log_text());
    assert!(
        !server.log_text().contains("shutdown complete"),
        "{}",
        server.log_text()
    );
}

#[test]
fn new_connections_are_refused_after_sigterm() {
    // A drain longer than WAIT: an attempt left hanging fails on its read timeout.
    let server = TestServer::start(&["--shards", "1", "--shutdown-timeout", "60s"]);
    // Keeps the process draining while new connections are tried.
    let _silent = RawClient::connect(&server.addr(), "/ws");
    assert_eq!(
        upgrade_attempt(&server.addr()),
        Attempt::Upgraded,
        "upgrades work before SIGTERM"
    );

    server.signal(libc::SIGTERM);
    assert!(
        server.wait_for_log("listener closed", WAIT).is_some(),
        "{}",
        server.log_text()
    );
    let attempt = upgrade_attempt(&server.addr());
    assert_ne!(attempt, Attempt::Upgraded, "{}", server.log_text());
}

#[test]
fn port_in_use_without_reuseport_exits_1_with_one_line() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind holder");
    let port = holder.local_addr().unwrap().port().to_string();
    let (status, log) = start_failure(bare_command(&[
        "--addr",
        "127.0.0.1",
        "--port",
        &port,
        "--shards",
        "1",
    ]));
    assert_eq!(status.code(), Some(1), "{log}");
    let line = startup_error_line(&log);
    assert!(line.contains("address already in use"), "{line}");
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
}

#[test]
fn zero_shards_is_rejected_at_startup() {
    let (status, log) = start_failure(command(&["--shards", "0"]));
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        startup_error_line(&log).contains("--shards must be at least 1"),
        "{log}"
    );
}

#[test]
fn unparsable_size_flag_is_a_usage_error() {
    let (status, log) = start_failure(command(&["--max-message-size", "banana"]));
    assert!(!status.success(), "{log}");
    assert_eq!(status.code(), Some(2), "clap's usage-error status: {log}");
    assert!(log.contains("--max-message-size"), "{log}");
    assert!(log.contains("banana"), "{log}");
}

#[test]
fn low_memlock_limit_exits_1_explaining_how_to_raise_it() {
    let mut cmd = command(&["--shards", "1"]);
    // SAFETY: between fork and exec only setrlimit runs, which is
    // async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 64 * 1024,
                rlim_max: 64 * 1024,
            };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (status, log) = start_failure(cmd);
    assert_eq!(status.code(), Some(1), "{log}");
    let line = startup_error_line(&log);
    assert!(line.contains("RLIMIT_MEMLOCK"), "{line}");
    assert!(line.contains("64 KiB"), "{line}");
    assert!(line.contains("ulimit -l"), "says how to raise it: {line}");
}

#[test]
fn unprivileged_server_starts_two_shards_under_an_8_mib_memlock_limit() {
    let mut cmd = command(&["--shards", "2"]);
    // glommio only warns when it cannot lock its I/O memory; show its warnings.
    cmd.env("RUST_LOG", "corecast=debug,glommio=warn");
    // SAFETY: between fork and exec only setrlimit/setgid/setuid/geteuid
    // run, all async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 8 << 20,
                rlim_max: 8 << 20,
            };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // As root, drop to nobody: root's CAP_IPC_LOCK would ignore the
            // limit and hide a server that locks too much memory.
            if libc::geteuid() == 0 && (libc::setgid(65534) != 0 || libc::setuid(65534) != 0) {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let server = match TestServer::spawn(cmd) {
        Ok(server) => server,
        Err((status, log)) => panic!("did not start unprivileged ({status:?}):\n{log}"),
    };
    assert_eq!(server.health()["shards"], 2);
    assert!(
        !server.log_text().contains("registering buffers"),
        "{}",
        server.log_text()
    );
    let mut echo = server.ws("/echo");
    echo.send_text("still serving");
    assert_eq!(echo.recv().into_text().unwrap().as_str(), "still serving");
}

#[test]
fn unavailable_cpu_is_a_clear_error() {
    let (status, log) = start_failure(command(&["--cpus", "99"]));
    assert_eq!(status.code(), Some(1), "{log}");
    let line = startup_error_line(&log);
    assert!(line.contains("CPU 99"), "{line}");
    assert!(line.contains("allowed:"), "{line}");
}

/// Runs a command that must exit instead of listening; returns its status and output.
fn start_failure(cmd: Command) -> (ExitStatus, String) {
    match TestServer::spawn(cmd) {
        Ok(server) => panic!("server started on port {} but should not have", server.port),
        Err((status, log)) => (status.expect("server exits within the wait"), log),
    }
}

/// Sends tungstenite's queued close reply and waits for the server to end TCP.
fn finish_close(client: &mut Client) {
    client.ws.flush().expect("send the close reply");
    match client.ws.read() {
        Err(Error::ConnectionClosed | Error::AlreadyClosed) => {}
        Err(Error::Io(e)) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("server did not end the connection after the close handshake: {e}"),
        Ok(m) => panic!("message after close: {m:?}"),
    }
}

/// What a new connection attempt got.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// TCP connect refused: nothing listens.
    Refused,
    /// Connected, but closed or reset without a response.
    Dropped,
    /// An HTTP response other than 101.
    Status(u16),
    /// 101 Switching Protocols.
    Upgraded,
}

/// Tries one /ws upgrade by hand.
fn upgrade_attempt(addr: &str) -> Attempt {
    let mut s = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => return Attempt::Refused,
        Err(e) => panic!("connect failed oddly: {e}"),
    };
    s.set_read_timeout(Some(WAIT)).unwrap();
    if s.write_all(upgrade_request("/ws").as_bytes()).is_err() {
        return Attempt::Dropped;
    }
    let mut head = [0u8; 12];
    let mut got = 0;
    while got < head.len() {
        match s.read(&mut head[got..]) {
            Ok(0) => return Attempt::Dropped,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Attempt::Dropped,
            Err(e) => panic!("no answer to the upgrade within {WAIT:?}: {e}"),
        }
    }
    let status = String::from_utf8_lossy(&head[9..12]).parse().unwrap_or(0);
    if status == 101 {
        Attempt::Upgraded
    } else {
        Attempt::Status(status)
    }
}
