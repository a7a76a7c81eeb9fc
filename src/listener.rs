//! Listening sockets: built by hand with socket2 (SO_REUSEPORT, our own
//! backlog; glommio's `bind` hard-codes 1024), bound before the shards
//! start, then each shard's accept loop.

use std::future::{poll_fn, Future};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::StartupError;
use crate::shard::{log_limited, Shard};
use crate::sys;
use crate::{admin, connection};

/// Longest pause after an accept error such as EMFILE.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Binds `n` SO_REUSEPORT listeners on one address. With port 0 the first
/// socket picks the port and the others bind the same one. Returns the
/// sockets and the real port.
pub fn bind_all(
    ip: IpAddr,
    port: u16,
    n: usize,
    backlog: u32,
) -> Result<(Vec<Socket>, u16), StartupError> {
    let mut sockets = Vec::with_capacity(n);
    let mut port = port;
    for _ in 0..n {
        let addr = SocketAddr::new(ip, port);
        let socket = bind_one(addr, backlog, true).map_err(|source| StartupError::Bind {
            addr: addr.to_string(),
            flag: "--port",
            source,
        })?;
        if port == 0 {
            port = socket
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .map(|a| a.port())
                .ok_or_else(|| StartupError::Bind {
                    addr: addr.to_string(),
                    flag: "--port",
                    source: std::io::Error::other("no local port"),
                })?;
        }
        sockets.push(socket);
    }
    Ok((sockets, port))
}

/// A non-blocking listening socket on `addr`; `reuse_port` lets every
/// shard (and other corecast processes) bind the same port.
fn bind_one(addr: SocketAddr, backlog: u32, reuse_port: bool) -> std::io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(reuse_port)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    Ok(socket)
}

/// What an accept loop serves, and whether it stops at shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// The public port: stops accepting when the drain starts.
    Public,
    /// The admin port: keeps serving during the drain (/health says so).
    Admin,
}

/// The admin socket as bound: one duplicate per shard, plus the main
/// thread's [`AdminLinger`].
pub struct AdminSockets {
    /// One duplicate of the listening socket per shard.
    pub per_shard: Vec<Socket>,
    /// Takes the socket out of LISTEN when dropped.
    pub linger: AdminLinger,
    /// The address actually bound (the real port when asked for port 0).
    pub addr: SocketAddr,
}

/// The main thread's own duplicate of the admin socket. Dropping it (after
/// the shards have exited, or on a failed start) shuts the socket's read
/// side, which moves it from LISTEN to CLOSE at once, so the port is free
/// for an immediate restart.
///
/// Why this is needed: the admin port keeps serving through the drain, so
/// each shard exits with an io_uring accept still in flight on it. That
/// request holds a reference to the socket, and the kernel cancels a dead
/// process's io_uring requests asynchronously, after the process is gone:
/// the socket stayed in LISTEN for 10-30 ms past exit, and a restart in
/// that window failed with EADDRINUSE (SO_REUSEADDR only covers sockets
/// no longer listening). The public port does not linger because its
/// listeners shut their read side when the drain starts.
pub struct AdminLinger(Socket);

impl AdminLinger {
    /// Another handle on the socket, for the signal thread to shut before a
    /// forced exit (which never reaches this one's drop).
    pub fn duplicate(&self) -> std::io::Result<Socket> {
        self.0.try_clone()
    }
}

impl Drop for AdminLinger {
    fn drop(&mut self) {
        // ENOTCONN if already shut; either way it no longer listens.
        let _ = self.0.shutdown(std::net::Shutdown::Read);
    }
}

/// Binds the admin address once, without SO_REUSEPORT (a second process
/// must fail loudly rather than silently share it), and hands each shard
/// its own duplicate of the socket.
pub fn bind_admin(addr: SocketAddr, n: usize) -> Result<AdminSockets, StartupError> {
    let err = |source| StartupError::Bind {
        addr: addr.to_string(),
        flag: "--admin-addr",
        source,
    };
    let socket = bind_one(addr, 1024, false).map_err(err)?;
    let bound = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .unwrap_or(addr);
    let linger = AdminLinger(socket.try_clone().map_err(err)?);
    let mut per_shard = Vec::with_capacity(n);
    for _ in 1..n {
        per_shard.push(socket.try_clone().map_err(err)?);
    }
    per_shard.push(socket);
    Ok(AdminSockets {
        per_shard,
        linger,
        addr: bound,
    })
}

/// Accepts connections on this shard's listener, spawning a task for each,
/// until shutdown (public port) or for the shard's life (admin port).
/// Accept errors (EMFILE and the like) back off instead of spinning.
pub async fn run(shard: Rc<Shard>, socket: Socket, port: Port) {
    let fd = socket.into_raw_fd();
    // SAFETY: `fd` is a bound, listening TCP socket we own; ownership passes
    // to glommio, which closes it on drop, so `fd` is valid while `listener` lives.
    let listener = unsafe { glommio::net::TcpListener::from_raw_fd(fd) };
    let mut backoff = Duration::ZERO;
    loop {
        let mut accept = pin!(listener.shared_accept());
        let first = poll_fn(|cx| match accept.as_mut().poll(cx) {
            Poll::Ready(result) => Poll::Ready(Some(result)),
            Poll::Pending if port == Port::Public => shard.shutdown.poll_wait(cx).map(|()| None),
            Poll::Pending => Poll::Pending,
        })
        .await;
        let result = match first {
            Some(result) => result,
            None => {
                // The accept is still in flight inside io_uring: dropping its
                // future would not cancel it, and a connection it took would
                // be orphaned. Shutting the socket's read side makes it (and
                // any later accept) fail, and resets what waits in the queue.
                sys::shutdown_read(fd);
                while let Ok(stream) = accept.as_mut().await {
                    // Won the race: serve it (the handshake answers 503).
                    spawn_serve(&shard, stream, port);
                    accept.set(listener.shared_accept());
                }
                break;
            }
        };
        match result {
            Ok(stream) => {
                backoff = Duration::ZERO;
                spawn_serve(&shard, stream, port);
            }
            Err(e) => {
                let e: std::io::Error = e.into();
                if is_resource_error(&e) {
                    backoff = (backoff * 2).clamp(Duration::from_millis(5), MAX_BACKOFF);
                    log_limited!(
                        shard,
                        log::Level::Warn,
                        "accept failing, backing off backoff={backoff:?} error={e} \
                         (raise the open-files limit or lower --max-connections)"
                    );
                    glommio::timer::sleep(backoff).await;
                } else {
                    log::debug!("accept error: {e}");
                }
            }
        }
    }
    log::debug!("listener closed");
}

/// Public sockets go to the shard's epoll set as plain fds (no glommio
/// poll armed for them); admin ones become glommio streams.
fn spawn_serve(shard: &Rc<Shard>, accepted: glommio::net::AcceptedTcpStream, port: Port) {
    match port {
        Port::Public => {
            // SAFETY: shared_accept returned a new socket that nothing else
            // owns; into_raw_fd gives that ownership up to us.
            let socket = unsafe { std::net::TcpStream::from_raw_fd(accepted.into_raw_fd()) };
            glommio::spawn_local(connection::serve(shard.clone(), socket)).detach();
        }
        Port::Admin => {
            let stream = accepted.bind_to_executor();
            glommio::spawn_local(admin::serve(shard.clone(), stream)).detach();
        }
    };
}

fn is_resource_error(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
