//! Thin, checked wrappers over the few libc calls std does not offer:
//! resource limits, signal masks, non-blocking socket I/O, epoll.
//!
//! Every `unsafe` block in the crate lives here, each with its reason.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Soft and hard values of one resource limit.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Current (soft) limit.
    pub soft: u64,
    /// Ceiling (hard) limit.
    pub hard: u64,
}

fn getrlimit(resource: libc::__rlimit_resource_t) -> io::Result<Limit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(resource, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Limit {
        soft: lim.rlim_cur,
        hard: lim.rlim_max,
    })
}

fn raise_soft_to_hard(resource: libc::__rlimit_resource_t) -> io::Result<(Limit, Limit)> {
    let before = getrlimit(resource)?;
    if before.soft < before.hard {
        let lim = libc::rlimit {
            rlim_cur: before.hard,
            rlim_max: before.hard,
        };
        // SAFETY: `lim` is a valid rlimit; raising soft up to hard needs no privilege.
        if unsafe { libc::setrlimit(resource, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((before, getrlimit(resource)?))
}

/// Raises the open-files soft limit to the hard limit; returns (before, after).
pub fn raise_nofile() -> io::Result<(Limit, Limit)> {
    raise_soft_to_hard(libc::RLIMIT_NOFILE)
}

/// Raises the locked-memory soft limit to the hard limit; returns (before, after).
pub fn raise_memlock() -> io::Result<(Limit, Limit)> {
    raise_soft_to_hard(libc::RLIMIT_MEMLOCK)
}

/// Blocks SIGINT and SIGTERM in the calling thread (and threads it spawns
/// later), so [`wait_for_signal`] receives them instead of the default
/// handler killing the process mid-drain.
pub fn block_shutdown_signals() -> io::Result<()> {
    let set = shutdown_sigset();
    // SAFETY: `set` is an initialised sigset; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Waits for SIGINT or SIGTERM (which must be blocked); returns its name.
pub fn wait_for_signal() -> io::Result<&'static str> {
    let set = shutdown_sigset();
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is initialised and `sig` is writable.
    let rc = unsafe { libc::sigwait(&set, &mut sig) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(if sig == libc::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    })
}

fn shutdown_sigset() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the zeroed set before sigaddset uses it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// One non-blocking `sendmsg` of several buffers: the whole corked outbox in
/// one syscall. `WouldBlock` means the socket buffer is full.
pub fn send_vectored(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is guaranteed ABI-compatible with iovec on Unix.
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len() as _;
    // SAFETY: msg points at `bufs`, which outlive the call; the kernel only reads them.
    let rc = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// One non-blocking `recv` into `buf`. `WouldBlock` means nothing is queued.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid and writable for `buf.len()` bytes for the call.
    let rc = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// Readiness bits of an epoll event, as [`epoll_wait`] reports them.
pub mod epoll_bits {
    /// Data to read (an edge).
    pub const IN: u32 = libc::EPOLLIN as u32;
    /// Room in the send buffer (an edge).
    pub const OUT: u32 = libc::EPOLLOUT as u32;
    /// The peer shut its sending side, or the connection ended: reads
    /// return EOF or an error from now on (a state, not an edge).
    pub const READ_CLOSED: u32 = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
    /// The connection is hung up or failed: writes fail from now on.
    pub const CLOSED: u32 = (libc::EPOLLHUP | libc::EPOLLERR) as u32;
}

/// A new epoll instance (close-on-exec).
pub fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: no pointers; a non-negative result is a new fd we own.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Watches `fd` edge-triggered for input, output and hang-up, tagged `token`.
pub fn epoll_add(epoll: &OwnedFd, fd: RawFd, token: u64) -> io::Result<()> {
    epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, token)
}

/// Changes the tag of `fd`, already in `epoll` (same edge-triggered interest).
pub fn epoll_modify(epoll: &OwnedFd, fd: RawFd, token: u64) -> io::Result<()> {
    epoll_ctl(epoll, libc::EPOLL_CTL_MOD, fd, token)
}

fn epoll_ctl(epoll: &OwnedFd, op: libc::c_int, fd: RawFd, token: u64) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
        u64: token,
    };
    // SAFETY: `event` is a valid epoll_event; the kernel copies it.
    let rc = unsafe { libc::epoll_ctl(epoll.as_raw_fd(), op, fd, &mut event) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Collects ready events without waiting; returns how many were filled.
pub fn epoll_wait(epoll: &OwnedFd, events: &mut [libc::epoll_event]) -> io::Result<usize> {
    let max = events.len().min(i32::MAX as usize) as i32;
    // SAFETY: `events` is writable for `max` entries for the call.
    let rc = unsafe { libc::epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), max, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// `shutdown(fd, SHUT_RD)` on a listening socket: pending and future
/// accepts fail and queued connections are reset. Errors are ignored (the
/// socket is being abandoned either way).
pub fn shutdown_read(fd: RawFd) {
    // SAFETY: shutdown(2) on a descriptor we own; no memory is involved.
    unsafe { libc::shutdown(fd, libc::SHUT_RD) };
}

/// `shutdown(fd, SHUT_WR)` on a connection: our FIN goes out after what is
/// queued. Errors are ignored (the peer may be gone already).
pub fn shutdown_write(fd: RawFd) {
    // SAFETY: shutdown(2) on a descriptor we own; no memory is involved.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
}

/// Creates and closes a tiny io_uring, so that a kernel without it (too
/// old, `kernel.io_uring_disabled`, a seccomp filter) is reported clearly
/// instead of panicking inside glommio.
pub fn probe_io_uring() -> io::Result<()> {
    // struct io_uring_params is 120 bytes; zeroed asks for defaults.
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup writes at most sizeof(io_uring_params) into `params`.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned to us and is closed exactly once.
    unsafe { libc::close(fd as RawFd) };
    Ok(())
}

/// Returns the heap's free memory to the kernel (glibc's `malloc_trim`,
/// every arena; a no-op with other C libraries). Costs a walk of the free
/// lists, so it is for rare moments, such as the last connection leaving.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim takes a size and touches only the allocator's state.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// CPU time this thread has used, in nanoseconds (0 if the clock fails):
/// measures work without the time the thread spent descheduled.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec the kernel writes.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The kernel's page size in bytes (4 KiB on x86-64, up to 64 KiB on arm64).
pub fn page_size() -> u64 {
    // SAFETY: sysconf takes no pointers.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

/// Reads one integer from a /proc/sys file, e.g. net.core.somaxconn.
pub fn read_sysctl(path: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
