//! The server process: starting `corecast`, its log lines, signals and exit.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::client::greeted;
use super::{get, Client, WAIT};

/// The line the stderr reader appends after the last real one, once the
/// server closed stderr (it exited).
const EOF_LINE: &str = "<eof>";

/// Log lines of one server, appended by a reader thread.
#[derive(Default)]
struct Log {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

/// A running `corecast` process; killed on drop.
pub struct TestServer {
    child: Child,
    /// The port the server bound.
    pub port: u16,
    /// The admin listener's address, unless started with `--admin-addr none`.
    pub admin: Option<String>,
    log: Arc<Log>,
}

impl TestServer {
    /// Counter `name` of /metrics summed over every shard (its
    /// `{shard="N",...}` lines), e.g. `corecast_converted_frames_total`.
    pub fn counter(&self, name: &str) -> u64 {
        super::get(self.admin_addr(), "/metrics")
            .body
            .lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// Starts the server with `args` (plus `--addr 127.0.0.1 --port 0`) and
    /// waits for its `listening` line.
    pub fn start(args: &[&str]) -> TestServer {
        match Self::try_start(args) {
            Ok(server) => server,
            Err((status, log)) => panic!("server failed to start ({status:?}):\n{log}"),
        }
    }

    /// Like [`TestServer::start`], but returns the exit status and output
    /// when the server exits instead of listening.
    pub fn try_start(args: &[&str]) -> Result<TestServer, (Option<ExitStatus>, String)> {
        Self::spawn(command(args))
    }

    /// Starts a prepared command (for tests that need their own flags or limits).
    pub fn spawn(mut cmd: Command) -> Result<TestServer, (Option<ExitStatus>, String)> {
        if !cmd.get_envs().any(|(key, _)| key == "RUST_LOG") {
            cmd.env("RUST_LOG", "corecast=debug");
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn corecast");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Log::default());
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lines.lock().unwrap().push(line);
                sink.grew.notify_all();
            }
            // EOF: the process closed stderr (it exited). Wake waiters.
            sink.lines.lock().unwrap().push(EOF_LINE.into());
            sink.grew.notify_all();
        });
        let mut server = TestServer {
            child,
            port: 0,
            admin: None,
            log,
        };
        match server.wait_for_log("listening addr=", WAIT) {
            Some(line) => {
                server.port = log_field(&line, " port=")
                    .parse()
                    .expect("port in listening line");
                server.admin = Some(log_field(&line, " admin="))
                    .filter(|a| *a != "none")
                    .map(str::to_string);
                Ok(server)
            }
            None => {
                let status = server.wait_exit(WAIT);
                Err((status, server.log_text()))
            }
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Waits until a log line contains `needle` (looking at lines already
    /// seen too); returns it, or None on timeout or process exit.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.wait_for_log_count(needle, 1, timeout)
    }

    /// Waits until `n` log lines contain `needle`; returns the last.
    pub fn wait_for_log_count(&self, needle: &str, n: usize, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.log.lines.lock().unwrap();
        loop {
            let hits: Vec<&String> = lines.iter().filter(|l| l.contains(needle)).collect();
            if hits.len() >= n {
                return hits.last().map(|s| s.to_string());
            }
            if lines.last().is_some_and(|l| l == EOF_LINE) {
                return None;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            lines = self.log.grew.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// Everything the server logged so far.
    pub fn log_text(&self) -> String {
        self.log.lines.lock().unwrap().join("\n")
    }

    /// The server's process id (for /proc readings: RSS, open fds).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (e.g. `libc::SIGTERM`) to the server.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with our child's pid; no memory is involved.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits for the process to exit; None if it is still running at timeout.
    /// After an exit, [`TestServer::log_text`] holds every line it wrote.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        // A pidfd becomes readable when the process exits: wait on that
        // instead of polling try_wait.
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let pidfd =
            unsafe { libc::syscall(libc::SYS_pidfd_open, self.child.id() as libc::pid_t, 0) }
                as i32;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break Some(status);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || pidfd < 0 {
                break None;
            }
            let mut pfd = libc::pollfd {
                fd: pidfd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        };
        if pidfd >= 0 {
            // SAFETY: closing the pidfd opened above, once.
            unsafe { libc::close(pidfd) };
        }
        if status.is_some() {
            self.wait_log_eof();
        }
        status
    }

    /// Waits until the reader thread has seen stderr end. The process exiting
    /// does not mean its last lines were read: without this, a check that a
    /// line is absent could pass only because it was not read yet.
    fn wait_log_eof(&self) {
        let deadline = Instant::now() + WAIT;
        let mut lines = self.log.lines.lock().unwrap();
        while lines.last().map(String::as_str) != Some(EOF_LINE) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the server exited but its stderr stayed open for {WAIT:?}:\n{}",
                lines.join("\n")
            );
            lines = self.log.grew.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// The admin listener's address; panics if it was started without one.
    pub fn admin_addr(&self) -> &str {
        self.admin.as_deref().expect("server has an admin listener")
    }

    /// GET /health, parsed.
    pub fn health(&self) -> Value {
        let response = get(&self.addr(), "/health");
        assert_eq!(response.status, 200, "{response:?}");
        response.json()
    }

    /// Opens a WebSocket to `path` ("/ws" or "/echo").
    pub fn ws(&self, path: &str) -> Client {
        Client::connect(&self.addr(), path, None)
    }

    /// Opens /ws and reads the `connection_established` greeting.
    pub fn ws_client(&self) -> (Client, Value) {
        greeted(self.ws("/ws"))
    }

    /// Like [`TestServer::ws_client`], but with a 4 KiB receive buffer, so a
    /// client that stops reading backs the server up quickly (slow-consumer
    /// tests).
    pub fn ws_client_small_rcvbuf(&self) -> (Client, Value) {
        greeted(Client::connect_small_rcvbuf(&self.addr()))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `corecast --addr 127.0.0.1 --port 0` plus `args`, with the admin
/// listener on a free loopback port unless `args` choose one (tests run in
/// parallel, so the default 9090 would collide).
pub fn command(args: &[&str]) -> Command {
    let mut cmd = bare_command(&["--addr", "127.0.0.1", "--port", "0"]);
    if !args.contains(&"--admin-addr") {
        cmd.args(["--admin-addr", "127.0.0.1:0"]);
    }
    cmd.args(args);
    cmd
}

/// `corecast` with exactly `args`. Every flag also reads a `CORECAST_*`
/// variable, so none is passed on from the environment the tests run in:
/// a test's server is configured by its arguments alone.
pub fn bare_command(args: &[&str]) -> Command {
    // CORECAST_TEST_BINARY runs the suite against another build (e.g. to
    // check that a new test fails on the code before a fix).
    let binary = std::env::var_os("CORECAST_TEST_BINARY")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_corecast").into());
    let mut cmd = Command::new(binary);
    for (key, _) in std::env::vars_os() {
        if key.as_encoded_bytes().starts_with(b"CORECAST_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args);
    cmd
}

/// The value after the first `key` in a `key=value` log line (up to the
/// next space); panics naming the line when `key` is missing.
pub fn log_field<'a>(line: &'a str, key: &str) -> &'a str {
    let rest = line
        .split_once(key)
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        .1;
    rest.split_whitespace().next().unwrap_or("")
}

/// The one `corecast: error:` line a failed start prints (asserts there is
/// exactly one).
pub fn startup_error_line(log: &str) -> String {
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("corecast: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "expected exactly one error line:\n{log}");
    errors[0].to_string()
}
