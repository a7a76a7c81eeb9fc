//! A real `redis-server` for tests: started on a free port in 23000-23999, never the system service, killed on drop.
//!
//! Self-contained (std only) so the unit tests of src/redis/ include this
//! same file with `#[path]`. Readiness is redis-server's own "Ready to
//! accept connections" line, never a sleep; its stdout is drained for the
//! whole run so the server never blocks on a full pipe.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Ports this harness may use (the range agreed for these tests).
const PORTS: std::ops::Range<u16> = 23000..24000;
/// How long redis-server may take to say it is ready.
const READY_WAIT: Duration = Duration::from_secs(10);

/// Next port to try; starts at a per-process offset so test binaries run
/// side by side rarely probe the same ports.
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A running redis-server (no persistence); killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    /// Starts redis-server on a free port and waits until it accepts
    /// connections. Panics if redis-server is not installed.
    pub fn start() -> RedisServer {
        for _ in 0..20 {
            let port = probe_free_port();
            if let Some(child) = spawn(port) {
                return RedisServer {
                    child: Some(child),
                    port,
                };
            }
            // Lost a race for the port with another process: take the next.
        }
        panic!("redis-server did not start on any of 20 ports");
    }

    /// Starts redis-server on `port`, probed free earlier (for a server
    /// told the port before Redis runs); `None` when it cannot start there:
    /// another process may have taken the port since the probe, so the
    /// caller must be ready to start over on another one.
    pub fn try_start_on(port: u16) -> Option<RedisServer> {
        spawn(port).map(|child| RedisServer {
            child: Some(child),
            port,
        })
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGTERM and wait for the exit (redis-server closes its clients).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }

    /// SIGKILL and reap: the abrupt death of a server.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a stopped or killed server again on the same port (empty:
    /// nothing is persisted).
    pub fn restart(&mut self) {
        self.kill();
        for _ in 0..50 {
            if let Some(child) = spawn(self.port) {
                self.child = Some(child);
                return;
            }
            // The old socket may linger for a moment after a kill.
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("redis-server did not restart on port {}", self.port);
    }

    /// Runs `redis-cli -p PORT ARGS...` and returns its trimmed stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .output()
            .expect("redis-cli not installed: run scripts/deps.sh");
        assert!(out.status.success(), "redis-cli {args:?} failed: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port in [`PORTS`] that nothing listens on right now (also for
/// tests' own fake servers).
pub fn probe_free_port() -> u16 {
    let span = PORTS.end - PORTS.start;
    let _ = NEXT_PORT.compare_exchange(
        0,
        (std::process::id() % u32::from(span)) as u16 + 1,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..span {
        let n = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        let port = PORTS.start + n % span;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {PORTS:?}");
}

/// Spawns redis-server on `port`; `None` if it exited before it was
/// ready (port taken).
fn spawn(port: u16) -> Option<Child> {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                panic!("redis-server not installed: run scripts/deps.sh")
            }
            _ => panic!("spawn redis-server: {e}"),
        });
    let stdout = child.stdout.take().expect("piped stdout");
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut ready_tx = Some(ready_tx);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("Ready to accept connections") {
                if let Some(tx) = ready_tx.take() {
                    let _ = tx.send(());
                }
            }
        }
        // EOF: the server exited; dropping the sender tells the waiter.
    });
    match ready_rx.recv_timeout(READY_WAIT) {
        Ok(()) => Some(child),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}
