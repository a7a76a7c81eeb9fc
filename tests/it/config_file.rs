//! `--config FILE` and `--check-config FILE`: the file's values reach the
//! server under flags and `CORECAST_*` variables, and a bad file is refused
//! with one line naming the file, the key and why.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::harness::{bare_command, command, log_field, startup_error_line, TestServer, WAIT};

#[test]
fn a_file_value_is_used() {
    let file = TempFile::new("used", "max_connections = 7\n");
    let server = start(command(&["--shards", "1", "--config", file.arg()]));
    assert_eq!(max_connections(&server), "7");
    assert!(
        server.wait_for_log("config file=", WAIT).is_some(),
        "{}",
        server.log_text()
    );
}

#[test]
fn a_file_named_by_corecast_config_is_used() {
    let file = TempFile::new("env-file", "max_connections = 7\n");
    let mut cmd = command(&["--shards", "1"]);
    cmd.env("CORECAST_CONFIG", file.arg());
    assert_eq!(max_connections(&start(cmd)), "7");
}

#[test]
fn a_flag_beats_the_file() {
    let file = TempFile::new("flag", "max_connections = 7\n");
    let cmd = command(&[
        "--shards",
        "1",
        "--config",
        file.arg(),
        "--max-connections",
        "9",
    ]);
    assert_eq!(max_connections(&start(cmd)), "9");
}

#[test]
fn the_environment_beats_the_file() {
    let file = TempFile::new("env", "max_connections = 7\n");
    let mut cmd = command(&["--shards", "1", "--config", file.arg()]);
    cmd.env("CORECAST_MAX_CONNECTIONS", "8");
    assert_eq!(max_connections(&start(cmd)), "8");
}

#[test]
fn a_flag_beats_the_environment_and_the_file() {
    let file = TempFile::new("flag-env", "max_connections = 7\n");
    let mut cmd = command(&[
        "--shards",
        "1",
        "--config",
        file.arg(),
        "--max-connections",
        "9",
    ]);
    cmd.env("CORECAST_MAX_CONNECTIONS", "8");
    assert_eq!(max_connections(&start(cmd)), "9");
}

#[test]
fn an_unknown_key_is_refused_with_one_line() {
    let file = TempFile::new("unknown", "max_conections = 7\n");
    let line = refused(&file);
    assert!(line.contains("key max_conections: unknown key"), "{line}");
}

#[test]
fn a_wrong_type_is_refused_with_one_line() {
    let file = TempFile::new("type", "max_connections = { a = 1 }\n");
    let line = refused(&file);
    assert!(
        line.contains("key max_connections: expected a number, got a table"),
        "{line}"
    );
}

#[test]
fn a_bad_value_is_refused_with_one_line() {
    let file = TempFile::new("value", "ping_interval = \"soon\"\n");
    let line = refused(&file);
    assert!(
        line.contains("key ping_interval: invalid value \"soon\": not a duration"),
        "{line}"
    );
    let file = TempFile::new("value-abc", "max_connections = \"abc\"\n");
    let line = refused(&file);
    assert!(
        line.ends_with("key max_connections: invalid value \"abc\": expected a number"),
        "{line}"
    );
    let file = TempFile::new("validate", "max_message_size = 0\n");
    let line = refused(&file);
    assert!(
        line.ends_with("key max_message_size: must be at least 1 byte"),
        "{line}"
    );
}

#[test]
fn a_missing_file_is_refused_with_one_line() {
    let path = std::env::temp_dir().join("corecast-it-config-no-such-file.toml");
    let (status, log) = start_failure(command(&["--config", path.to_str().expect("utf-8")]));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{log}");
    let line = startup_error_line(&log);
    assert!(
        line.starts_with(&format!(
            "corecast: error: config {}: cannot read: ",
            path.display()
        )),
        "{line}"
    );
}

#[test]
fn check_config_prints_the_effective_configuration_and_exits_0() {
    let file = TempFile::new(
        "check",
        "max_connections = 7\nadmin_token = \"tok-secret\"\n\
         jwt_hmac_secret = \"hmac-secret\"\n[namespaces.chat]\npresence = true\n",
    );
    // A port another socket holds: checking binds nothing, so it still passes.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind holder");
    let port = holder.local_addr().expect("addr").port().to_string();
    let mut cmd = bare_command(&["--check-config", file.arg(), "--addr", "127.0.0.1"]);
    cmd.args(["--port", &port])
        .env("CORECAST_PONG_TIMEOUT", "45s");
    let out = run_to_exit(cmd);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    for line in [
        "max_connections = 7",
        &format!("port = {port}"),
        "pong_timeout = \"45s\"",
        "ping_interval = \"30s\"",
        "admin_token = \"***\"",
        "jwt_hmac_secret = \"***\"",
        "[namespaces.chat]",
        "presence = true",
    ] {
        assert!(out.stdout.contains(line), "no {line:?} in:\n{}", out.stdout);
    }
    for (key, source) in [
        ("max_connections", "# file"),
        ("port", "# flag --port"),
        ("pong_timeout", "# env CORECAST_PONG_TIMEOUT"),
        ("ping_interval", "# default"),
    ] {
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} =")))
            .unwrap_or_else(|| panic!("no {key} in:\n{}", out.stdout));
        assert!(line.ends_with(source), "{line}");
    }
    assert!(!out.stdout.contains("tok-secret"), "{}", out.stdout);
    assert!(!out.stdout.contains("hmac-secret"), "{}", out.stdout);
}

#[test]
fn check_config_refuses_a_bad_file_with_one_line_and_exits_1() {
    let file = TempFile::new("check-bad", "port = 8080\nping_interval = \"soon\"\n");
    let out = run_to_exit(bare_command(&["--check-config", file.arg()]));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let line = startup_error_line(&out.stderr);
    assert!(
        line.starts_with(&format!(
            "corecast: error: config {}: key ping_interval:",
            file.arg()
        )),
        "{line}"
    );
    // Config::validate's checks count too.
    let file = TempFile::new("check-validate", "shards = 0\n");
    let out = run_to_exit(bare_command(&["--check-config", file.arg()]));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.contains("key shards: must be at least 1"),
        "{out:?}"
    );
}

#[test]
fn the_chat_example_is_a_valid_config() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/chat.toml");
    let out = run_to_exit(bare_command(&[
        "--check-config",
        example.to_str().expect("utf-8"),
    ]));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    for line in [
        "[namespaces.chat]",
        "[namespaces.private]",
        "[namespaces.news]",
    ] {
        assert!(out.stdout.contains(line), "{}", out.stdout);
    }
}

#[test]
fn namespace_options_are_parsed() {
    let file = TempFile::new(
        "namespaces",
        "[namespaces.default]\nanonymous = false\n\
         [namespaces.chat]\npresence = true\njoin_leave = true\nhistory_size = 10\nhistory_ttl = \"5m\"\n\
         [namespaces.news]\nclient_publish = false\n",
    );
    let out = run_to_exit(bare_command(&["--check-config", file.arg()]));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let section = |name: &str| -> String {
        let start = out
            .stdout
            .find(&format!("[namespaces.{name}]"))
            .unwrap_or_else(|| panic!("no {name}:\n{}", out.stdout));
        let rest = &out.stdout[start + 1..];
        rest[..rest.find("\n[").unwrap_or(rest.len())].to_string()
    };
    assert!(
        section("default").contains("anonymous = false"),
        "{}",
        out.stdout
    );
    let chat = section("chat");
    for line in [
        "presence = true",
        "join_leave = true",
        "history_size = 10",
        "history_ttl = \"5m\"",
    ] {
        assert!(chat.contains(line), "{chat}");
    }
    assert!(
        section("news").contains("client_publish = false"),
        "{}",
        out.stdout
    );
    // And a server starts with them.
    drop(start(command(&["--shards", "1", "--config", file.arg()])));
}

#[test]
fn an_unknown_namespace_option_is_refused() {
    let file = TempFile::new("ns-unknown", "[namespaces.chat]\npresense = true\n");
    let line = refused(&file);
    assert!(
        line.contains("key namespaces.chat.presense: unknown field"),
        "{line}"
    );
}

#[test]
fn history_size_without_ttl_is_refused() {
    let file = TempFile::new("ns-history", "[namespaces.chat]\nhistory_size = 10\n");
    let line = refused(&file);
    assert!(line.contains("key namespaces.chat:"), "{line}");
    assert!(line.contains("history_ttl"), "{line}");
}

/// The value of `max_connections=` in the server's limits line.
fn max_connections(server: &TestServer) -> String {
    let line = server
        .wait_for_log("max_connections=", WAIT)
        .unwrap_or_else(|| panic!("no limits line:\n{}", server.log_text()));
    log_field(&line, "max_connections=").to_string()
}

fn start(cmd: Command) -> TestServer {
    TestServer::spawn(cmd)
        .unwrap_or_else(|(status, log)| panic!("did not start ({status:?}):\n{log}"))
}

/// Starts a server on `file`, expects exit 1 with one error line naming the
/// file, and returns that line.
fn refused(file: &TempFile) -> String {
    let (status, log) = start_failure(command(&["--config", file.arg()]));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{log}");
    let line = startup_error_line(&log);
    let prefix = format!("corecast: error: config {}: ", file.arg());
    assert!(line.starts_with(&prefix), "{line}");
    line
}

fn start_failure(cmd: Command) -> (Option<ExitStatus>, String) {
    match TestServer::spawn(cmd) {
        Ok(server) => panic!("started on port {}:\n{}", server.port, server.log_text()),
        Err(failure) => failure,
    }
}

/// A finished process's status and output.
#[derive(Debug)]
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs a command that must exit on its own (`--check-config`), killing it
/// after [`WAIT`] so a server that starts instead fails the test.
fn run_to_exit(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn corecast");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            pipe.read_to_string(&mut text).expect("utf-8 output");
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let pid = child.id();
    let (done, exited) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait().expect("wait")));
    let Ok(status) = exited.recv_timeout(WAIT) else {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        panic!("still running after {WAIT:?}");
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// A config file in the temp directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, text: &str) -> TempFile {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_nanos();
        let name = format!(
            "corecast-it-config-{tag}-{}-{nanos}.toml",
            std::process::id()
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, text).expect("write config file");
        TempFile(path)
    }

    fn arg(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
