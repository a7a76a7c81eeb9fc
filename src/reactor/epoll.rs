//! `EpollSet`: one epoll instance per shard, through which every public
//! socket (handshaking or upgraded) reports readiness, the task that turns
//! its events into readiness bits and wake-ups, and `EpollStream`, the
//! async socket a handshake runs on.
//!
//! glommio waits on a socket by keeping an io_uring poll and its `Source`
//! (about 500 B of heap) armed per socket; with a million mostly idle
//! connections that would be the largest per-connection cost. Instead each
//! public socket is registered once, edge-triggered, in its shard's epoll
//! set, and one task per shard waits on the epoll fd (a single io_uring
//! poll, through the vendored glommio's `wait_readable`), collects the
//! events, marks the connections ready and wakes their tasks. The
//! connection's readiness bits live in its `ConnState`.
//!
//! A public socket joins the set as soon as it is accepted: its HTTP
//! handshake runs on an [`EpollStream`] (a waiter slot here), and the
//! upgrade re-tags it for its connection ([`EpollSet::watch_upgraded`]).
//! Admin connections still use glommio's own streams.

use std::cell::RefCell;
use std::io;
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures_lite::{AsyncRead, AsyncWrite};
use slab::Slab;

use super::ready::{after_io, can, ready_bits, store_waker, READABLE, WRITABLE};
use crate::shard::{log_limited, ConnKey, Shard};
use crate::sys;

/// Token bit of a socket still in its handshake; the rest of the token is
/// its slot in `EpollSet::handshakes`.
const HANDSHAKE: u64 = 1 << 63;

/// Pause before retrying after an unexpected epoll failure: long enough not
/// to spin on a persistent error, short enough that connections barely notice.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_millis(10);

/// Events taken per `epoll_wait`; a full batch is followed by another
/// (after yielding) before the shard waits on the epoll fd again.
const EVENTS_PER_WAIT: usize = 256;

/// A shard's epoll set of public sockets.
#[derive(Debug)]
pub struct EpollSet {
    /// The epoll instance; closing a socket removes it from the set.
    fd: OwnedFd,
    /// Sockets in their handshake: readiness bits and the waiting task.
    handshakes: RefCell<Slab<Waiter>>,
}

/// Readiness of one socket in its handshake.
#[derive(Debug)]
struct Waiter {
    /// Edge and sticky readiness bits, as for `ConnState::ready`.
    ready: u8,
    /// The handshake task, once it had to wait.
    waker: Option<Waker>,
}

impl EpollSet {
    /// A new, empty set.
    pub fn new() -> io::Result<EpollSet> {
        Ok(EpollSet {
            fd: sys::epoll_create()?,
            handshakes: RefCell::new(Slab::new()),
        })
    }

    /// Re-tags an upgraded socket (watched since its accept) for connection
    /// `key` (`seq` tells a reused key's new owner from a closed one whose
    /// events are still in flight).
    pub fn watch_upgraded(&self, socket: RawFd, key: ConnKey, seq: u64) -> io::Result<()> {
        sys::epoll_modify(&self.fd, socket, token(key, seq))
    }

    fn on_handshake_readiness(&self, slot: usize, bits: u32) {
        if let Some(waiter) = self.handshakes.borrow_mut().get_mut(slot) {
            waiter.ready |= ready_bits(bits);
            if let Some(waker) = &waiter.waker {
                waker.wake_by_ref();
            }
        }
    }

    /// Waits for events and hands them to the shard's connections; runs for
    /// the shard's life.
    pub async fn dispatch_forever(shard: Rc<Shard>) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT];
        loop {
            if let Err(e) = glommio::net::wait_readable(shard.epoll.fd.as_raw_fd()).await {
                // Not expected (the fd is ours and open); retrying beats
                // stalling every connection of the shard for good.
                log_limited!(
                    shard,
                    log::Level::Error,
                    "cannot wait on the epoll set, retrying in {RETRY_AFTER:?}: {e}"
                );
                glommio::timer::sleep(RETRY_AFTER).await;
                continue;
            }
            loop {
                let n = match sys::epoll_wait(&shard.epoll.fd, &mut events) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        log_limited!(
                            shard,
                            log::Level::Error,
                            "epoll_wait failed, retrying in {RETRY_AFTER:?}: {e}"
                        );
                        glommio::timer::sleep(RETRY_AFTER).await;
                        break;
                    }
                };
                for event in &events[..n] {
                    // Copies out of the packed struct.
                    let (bits, token) = (event.events, event.u64);
                    if token & HANDSHAKE != 0 {
                        shard
                            .epoll
                            .on_handshake_readiness((token & !HANDSHAKE) as usize, bits);
                    } else {
                        let seq = (token >> 32) as u32;
                        shard.on_readiness(ConnKey(token as u32), seq, ready_bits(bits));
                    }
                }
                if n < events.len() {
                    break;
                }
                glommio::yield_if_needed().await;
            }
        }
    }
}

/// An upgraded connection's tag: the key in the low half, the low 31 bits
/// of `seq` above (the top bit is `HANDSHAKE`).
fn token(key: ConnKey, seq: u64) -> u64 {
    u64::from(key.0) | (seq & 0x7fff_ffff) << 32
}

/// A freshly accepted public socket during its HTTP handshake: async reads
/// and writes driven by the shard's epoll set.
pub struct EpollStream {
    socket: TcpStream,
    slot: HandshakeSlot,
}

/// A socket's entry in `EpollSet::handshakes`, removed when dropped.
struct HandshakeSlot {
    shard: Rc<Shard>,
    index: usize,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        self.shard
            .epoll
            .handshakes
            .borrow_mut()
            .try_remove(self.index);
    }
}

impl EpollStream {
    /// Adds `socket` to the shard's epoll set.
    pub fn register(shard: &Rc<Shard>, socket: TcpStream) -> io::Result<EpollStream> {
        let index = shard.epoll.handshakes.borrow_mut().insert(Waiter {
            ready: READABLE | WRITABLE,
            waker: None,
        });
        let slot = HandshakeSlot {
            shard: shard.clone(),
            index,
        };
        sys::epoll_add(
            &shard.epoll.fd,
            socket.as_raw_fd(),
            HANDSHAKE | index as u64,
        )?;
        Ok(EpollStream { socket, slot })
    }

    /// The socket, still in the epoll set under its handshake tag until
    /// [`EpollSet::watch_upgraded`] re-tags it; its waiter slot is freed.
    pub fn into_socket(self) -> TcpStream {
        self.socket
    }

    /// Runs `op` while the socket may do `bit` ([`can`]); a short or refused
    /// operation clears the bit ([`after_io`]: the next change brings an
    /// event).
    fn poll_io(
        &mut self,
        cx: &Context<'_>,
        bit: u8,
        len: usize,
        mut op: impl FnMut(RawFd) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let fd = self.socket.as_raw_fd();
        let slot = &self.slot;
        loop {
            {
                let mut waiters = slot.shard.epoll.handshakes.borrow_mut();
                // The slot lives as long as this stream (HandshakeSlot).
                let Some(waiter) = waiters.get_mut(slot.index) else {
                    return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
                };
                if !can(waiter.ready, bit) {
                    store_waker(&mut waiter.waker, cx.waker());
                    return Poll::Pending;
                }
            }
            let result = op(fd);
            if let Some(waiter) = slot.shard.epoll.handshakes.borrow_mut().get_mut(slot.index) {
                after_io(&mut waiter.ready, bit, &result, len);
            }
            match result {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => return Poll::Ready(result),
            }
        }
    }
}

impl AsyncRead for EpollStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let len = buf.len();
        self.get_mut()
            .poll_io(cx, READABLE, len, |fd| sys::recv(fd, buf))
    }
}

impl AsyncWrite for EpollStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let slices = [io::IoSlice::new(buf)];
        self.get_mut().poll_io(cx, WRITABLE, buf.len(), |fd| {
            sys::send_vectored(fd, &slices)
        })
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.socket.shutdown(Shutdown::Write))
    }
}
