//! A real nginx in front of test servers, run with the project's own
//! docs/examples/nginx.conf: the file users are told to run is the one
//! tested.
//!
//! The config is rendered by replacing its marked placeholder lines (the
//! `# corecast-upstream` server lines and the `# corecast-listen` line, see
//! the file's header) and runs from a temporary prefix, where its relative
//! pid, log and temp paths land. Readiness is nginx's own `start worker
//! process` notice on stderr, written after its listening socket is bound.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{TestServer, WAIT};

/// Where Debian installs nginx (scripts/deps.sh).
const NGINX: &str = "/usr/sbin/nginx";
/// The config the tests run, as users get it.
const CONF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/nginx.conf");
/// Fresh ports tried when another process took the one picked for nginx
/// between the pick and nginx's bind.
const BIND_ATTEMPTS: usize = 3;

/// A running nginx; stopped (and its prefix removed) on drop.
pub struct Nginx {
    child: Child,
    port: u16,
    prefix: PathBuf,
}

impl Nginx {
    /// Starts nginx balancing over `127.0.0.1:PORT` for each of
    /// `upstream_ports` and waits until it accepts. Panics when nginx is
    /// not installed or does not start.
    pub fn start(upstream_ports: &[u16]) -> Nginx {
        assert!(
            std::path::Path::new(NGINX).exists(),
            "nginx not installed: run scripts/deps.sh"
        );
        let mut last_error = String::new();
        for _ in 0..BIND_ATTEMPTS {
            match Self::try_start(upstream_ports, free_port()) {
                Ok(nginx) => return nginx,
                Err(log) if log.contains("Address already in use") => last_error = log,
                Err(log) => panic!("nginx did not start:\n{log}"),
            }
        }
        panic!("nginx could not bind a port in {BIND_ATTEMPTS} tries:\n{last_error}");
    }

    /// The port nginx listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, nginx's address.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn try_start(upstream_ports: &[u16], port: u16) -> Result<Nginx, String> {
        let prefix = temp_prefix();
        for dir in ["logs", "temp"] {
            std::fs::create_dir_all(prefix.join(dir)).expect("create nginx prefix");
        }
        let conf = prefix.join("nginx.conf");
        let template = std::fs::read_to_string(CONF).expect("read docs/examples/nginx.conf");
        std::fs::write(&conf, render(&template, upstream_ports, port)).expect("write nginx.conf");
        let mut child = Command::new(NGINX)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf)
            // In the foreground, so the test owns the master process, and
            // notices on stderr too, for the readiness line.
            .args(["-g", "daemon off; error_log stderr notice;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nginx");
        let stderr = child.stderr.take().expect("piped stderr");
        let (lines_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let nginx = Nginx {
            child,
            port,
            prefix,
        };
        let deadline = Instant::now() + WAIT;
        let mut log = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                // The master forks workers after binding its sockets.
                Ok(line) if line.contains("start worker process") => break,
                Ok(line) => log += &(line + "\n"),
                // Stderr closed (nginx exited) or the deadline passed.
                Err(_) => return Err(log),
            }
        }
        // Keep draining stderr so nginx never blocks on a full pipe.
        std::thread::spawn(move || while lines.recv().is_ok() {});
        Ok(nginx)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM is nginx's fast shutdown: the master stops its workers
        // before it exits. A SIGKILL would leave them serving the port.
        // SAFETY: kill(2) with our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        if wait_exit(&mut self.child, WAIT) {
            let _ = std::fs::remove_dir_all(&self.prefix);
        } else {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits up to `timeout` for `child` to exit, on a pidfd (readable once
/// it has); true when it did.
fn wait_exit(child: &mut Child, timeout: Duration) -> bool {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) } as i32;
    if pidfd >= 0 {
        let mut pfd = libc::pollfd {
            fd: pidfd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe {
            libc::poll(
                &mut pfd,
                1,
                timeout.as_millis().min(i32::MAX as u128) as i32,
            )
        };
        // SAFETY: closing the pidfd opened above, once.
        unsafe { libc::close(pidfd) };
    }
    matches!(child.try_wait(), Ok(Some(_)))
}

/// Starts `n` corecast processes with `args` and nginx in front of them;
/// the servers come back in upstream order. The place for tests that need
/// several processes behind one address (cross-process delivery, once a
/// broker connects them).
pub fn servers_behind_nginx(n: usize, args: &[&str]) -> (Nginx, Vec<TestServer>) {
    let servers: Vec<TestServer> = (0..n).map(|_| TestServer::start(args)).collect();
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    (Nginx::start(&ports), servers)
}

/// docs/examples/nginx.conf with its placeholder lines replaced: the
/// `# corecast-upstream` lines by one `server` line per port, the
/// `# corecast-listen` line by a loopback listen on `port`.
fn render(template: &str, upstream_ports: &[u16], port: u16) -> String {
    let mut out = String::new();
    let mut upstreams_written = false;
    for line in template.lines() {
        if line.trim_end().ends_with("# corecast-upstream") {
            if !upstreams_written {
                for p in upstream_ports {
                    out += &format!("        server 127.0.0.1:{p};\n");
                }
                upstreams_written = true;
            }
        } else if line.trim_end().ends_with("# corecast-listen") {
            out += &format!("        listen 127.0.0.1:{port};\n");
        } else {
            out += line;
            out.push('\n');
        }
    }
    assert!(
        upstreams_written && out.contains(&format!("listen 127.0.0.1:{port};")),
        "docs/examples/nginx.conf lost its placeholder lines"
    );
    out
}

/// A port nothing listens on right now (the kernel's pick for port 0).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind :0");
    listener.local_addr().expect("local addr").port()
}

/// A new, empty directory for one nginx's pid, logs and temp files.
fn temp_prefix() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("corecast-it-nginx-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
