//! What the kernel says about the server under test: which processes
//! listen on a port, what they are called, their resident memory, and TCP
//! socket memory.
//! Read-only /proc parsing; nothing here changes the system.

use std::collections::BTreeSet;
use std::fs;

/// Pids of the processes (other than this one) holding a listening TCP socket on `port`.
pub fn listening_pids(port: u16) -> Vec<u32> {
    let mut inodes = BTreeSet::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = fs::read_to_string(file) {
            inodes.extend(listen_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        return Vec::new();
    }
    let me = std::process::id();
    let mut pids = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return pids;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            fs::read_link(fd.path())
                .ok()
                .and_then(|l| socket_inode(l.to_str()?))
                .is_some_and(|i| inodes.contains(&i))
        });
        if holds {
            pids.push(pid);
        }
    }
    pids
}

/// Inodes of LISTEN sockets on `port` in a /proc/net/tcp table.
fn listen_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            (local_port == port && *f.get(3)? == "0A").then(|| f.get(9)?.parse().ok())?
        })
        .collect()
}

fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Program name of `pid` (`/proc/PID/comm`: the executable's name, at most
/// 15 bytes), readable for any user's process.
pub fn process_name(pid: u32) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(text.trim_end_matches('\n').to_string())
}

/// Resident set size of `pid` in bytes (VmRSS).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&text, "VmRSS:").map(|k| k * 1024)
}

/// Open file descriptors of `pid` (entries of /proc/PID/fd).
pub fn fd_count(pid: u32) -> Option<u64> {
    Some(fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// A "Key:   123 kB" field of /proc/*/status or /proc/meminfo, in KiB.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// System-wide memory facts that socket counts move.
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelMem {
    /// TCP sockets in use (sockstat `inuse`).
    pub tcp_inuse: u64,
    /// TCP buffer memory in bytes (sockstat `mem`, which counts pages).
    pub tcp_mem_bytes: u64,
    /// Kernel slab memory in bytes (meminfo `Slab`): socket, file and epoll objects live here.
    pub slab_bytes: u64,
    /// meminfo `MemAvailable` in bytes.
    pub available_bytes: u64,
}

/// Reads /proc/net/sockstat and /proc/meminfo.
pub fn kernel_mem() -> KernelMem {
    let page = page_size();
    let sock = fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let (inuse, pages) = parse_sockstat(&sock);
    let mem = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    KernelMem {
        tcp_inuse: inuse,
        tcp_mem_bytes: pages * page,
        slab_bytes: kib_field(&mem, "Slab:").unwrap_or(0) * 1024,
        available_bytes: kib_field(&mem, "MemAvailable:").unwrap_or(0) * 1024,
    }
}

/// (`inuse`, `mem` pages) from the TCP line of /proc/net/sockstat.
fn parse_sockstat(text: &str) -> (u64, u64) {
    let Some(line) = text.lines().find(|l| l.starts_with("TCP:")) else {
        return (0, 0);
    };
    let f: Vec<&str> = line.split_whitespace().collect();
    let get = |k: &str| {
        f.iter()
            .position(|x| *x == k)
            .and_then(|i| f.get(i + 1)?.parse().ok())
            .unwrap_or(0)
    };
    (get("inuse"), get("mem"))
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_listening_inodes_by_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
            0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n   \
            1: 0100007F:1F90 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0 100 0 0 10 0\n";
        assert_eq!(listen_inodes(table, 8080), vec![4242]);
        assert!(listen_inodes(table, 8081).is_empty());
        assert_eq!(socket_inode("socket:[4242]"), Some(4242));
    }

    #[test]
    fn counts_fds_of_live_processes_only() {
        // Other tests open sockets concurrently, so only bounds are stable.
        assert!(fd_count(std::process::id()).unwrap() >= 3);
        assert_eq!(fd_count(u32::MAX), None);
    }

    #[test]
    fn names_live_processes_only() {
        let me = process_name(std::process::id()).unwrap();
        assert!(
            !me.is_empty() && me.len() <= 15 && !me.ends_with('\n'),
            "{me:?}"
        );
        assert_eq!(process_name(u32::MAX), None);
    }

    #[test]
    fn sockstat_mem_is_in_pages() {
        let text =
            "sockets: used 300\nTCP: inuse 12 orphan 0 tw 3 alloc 20 mem 7\nUDP: inuse 1 mem 2\n";
        assert_eq!(parse_sockstat(text), (12, 7));
    }
}
