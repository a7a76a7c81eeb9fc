//! `EpollSet`: one epoll instance per shard, through which every upgraded
//! connection's socket reports readiness.
//!
//! glommio waits on a socket by keeping an io_uring poll and its `Source`
//! (about 500 B of heap) armed per socket; with a million mostly idle
//! connections that would be the largest per-connection cost. Instead each
//! upgraded socket is registered once, edge-triggered, in its shard's epoll
//! set, and one task per shard waits on the epoll fd (a single io_uring
//! poll, through the vendored glommio's `wait_readable`), collects the
//! events, marks the connections ready and wakes their tasks. The
//! connection's readiness bits live in its `ConnState`.
//!
//! Handshakes and admin connections still use glommio's own streams: they
//! are short-lived, and the socket moves here only once it is upgraded.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use crate::shard::{ConnKey, Shard};
use crate::sys;

/// Events taken per `epoll_wait`; a full batch is followed by another
/// (after yielding) before the shard waits on the epoll fd again.
const EVENTS_PER_WAIT: usize = 256;

/// A shard's epoll set of upgraded sockets.
#[derive(Debug)]
pub struct EpollSet {
    /// The epoll instance; closing a socket removes it from the set.
    fd: OwnedFd,
}

impl EpollSet {
    /// A new, empty set.
    pub fn new() -> io::Result<EpollSet> {
        Ok(EpollSet {
            fd: sys::epoll_create()?,
        })
    }

    /// Watches `socket` for connection `key` (`seq` tells a reused key's
    /// new owner from a closed one whose events are still in flight).
    pub fn add(&self, socket: RawFd, key: ConnKey, seq: u64) -> io::Result<()> {
        sys::epoll_add(&self.fd, socket, token(key, seq))
    }

    /// Waits for events and hands them to the shard's connections; runs for
    /// the shard's life.
    pub async fn dispatch_forever(shard: Rc<Shard>) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT];
        loop {
            if let Err(e) = glommio::net::wait_readable(shard.epoll.fd.as_raw_fd()).await {
                log::error!("cannot wait on the epoll set, connections stall: {e}");
                return;
            }
            loop {
                let n = match sys::epoll_wait(&shard.epoll.fd, &mut events) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        log::error!("epoll_wait failed, connections stall: {e}");
                        return;
                    }
                };
                shard.on_readiness(events[..n].iter().map(|event| {
                    // Copies out of the packed struct.
                    let (bits, token) = (event.events, event.u64);
                    (ConnKey(token as u32), (token >> 32) as u32, bits)
                }));
                if n < events.len() {
                    break;
                }
                glommio::yield_if_needed().await;
            }
        }
    }
}

/// An event's tag: the key in the low half, the low bits of `seq` above.
fn token(key: ConnKey, seq: u64) -> u64 {
    u64::from(key.0) | (seq & 0xffff_ffff) << 32
}
