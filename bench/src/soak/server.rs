//! What the soak watches on the server: resident memory and open fds from
//! /proc/PID, and the connection count from the admin port's `/health`.
//! Read-only; a probe that fails shows as a missing value, never an error.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::procfs;

/// How long one `/health` request may take.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// The server process(es) and where to ask for the connection count.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Server processes (summed).
    pub pids: Vec<u32>,
    /// The admin listener, for `/health`.
    pub admin: Option<SocketAddr>,
}

/// One look at the server.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// VmRSS in bytes, summed over the pids.
    pub rss: u64,
    /// Open fds, summed over the pids.
    pub fds: u64,
    /// `connections` from `/health` (upgraded WebSockets), if asked and answered.
    pub conns: Option<u64>,
    /// The machine's 1-minute load average: the box is shared, and a soak's
    /// latency means little without it.
    pub load: f64,
}

impl Probe {
    /// The processes listening on `ports` unless `pids` names them; fails if none is found.
    pub fn find(ports: &[u16], pids: &[u32], admin: Option<SocketAddr>) -> Result<Probe, String> {
        let mut pids = pids.to_vec();
        if pids.is_empty() {
            for p in ports {
                pids.extend(procfs::listening_pids(*p));
            }
            pids.sort_unstable();
            pids.dedup();
        }
        if pids.is_empty() {
            return Err("no server process listens on the --url ports; pass --server-pid".into());
        }
        Ok(Probe { pids, admin })
    }

    /// RSS and fds first, then `/health`, so the probe's own admin
    /// connection is not among the fds counted.
    pub fn sample(&self) -> Sample {
        let sum = |f: fn(u32) -> Option<u64>| self.pids.iter().filter_map(|p| f(*p)).sum();
        let rss = sum(procfs::rss_bytes);
        let fds = sum(procfs::fd_count);
        Sample {
            rss,
            fds,
            conns: self.admin.and_then(health_connections),
            load: load_average(),
        }
    }

    /// After every client has left: waits (up to `limit`) until `/health`
    /// says 0 connections and the fds are at most `fd_target`, then one more
    /// second for frees that follow the close. Returns the sample and the
    /// seconds waited, or the last sample if the limit passed.
    pub fn settle(&self, fd_target: u64, limit: Duration) -> (Sample, f64) {
        let t0 = Instant::now();
        loop {
            let s = self.sample();
            let gone = s.conns.unwrap_or(0) == 0 && s.fds <= fd_target;
            if gone || t0.elapsed() >= limit {
                if gone {
                    std::thread::sleep(Duration::from_secs(1));
                    return (self.sample(), t0.elapsed().as_secs_f64());
                }
                return (s, t0.elapsed().as_secs_f64());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// The 1-minute load average from /proc/loadavg (0 if unreadable).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// `connections` from GET /health on the admin port. The body is read on
/// any status: a draining server answers 503 with the same JSON.
fn health_connections(addr: SocketAddr) -> Option<u64> {
    let mut s = TcpStream::connect_timeout(&addr, HEALTH_TIMEOUT).ok()?;
    s.set_read_timeout(Some(HEALTH_TIMEOUT)).ok()?;
    s.set_write_timeout(Some(HEALTH_TIMEOUT)).ok()?;
    s.write_all(b"GET /health HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut buf = Vec::new();
    s.take(64 * 1024).read_to_end(&mut buf).ok()?;
    parse_health(&buf)
}

/// `connections` from a raw HTTP response carrying the /health JSON.
fn parse_health(resp: &[u8]) -> Option<u64> {
    let at = resp.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let v: serde_json::Value = serde_json::from_slice(&resp[at..]).ok()?;
    v["connections"].as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_body_gives_the_connection_count() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"status\":\"ok\",\"connections\":15010}";
        assert_eq!(parse_health(ok), Some(15010));
        let draining =
            b"HTTP/1.1 503 Service Unavailable\r\n\r\n{\"status\":\"draining\",\"connections\":0}";
        assert_eq!(parse_health(draining), Some(0));
        assert_eq!(parse_health(b"HTTP/1.1 200 OK\r\n\r\nnot json"), None);
        assert_eq!(parse_health(b"HTTP/1.1 200 OK\r\n"), None);
    }
}
