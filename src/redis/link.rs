//! One Redis TCP link's life, shared by [`Client`](super::Client) and [`Subscriber`](super::Subscriber): options, errors, state, connect + login, reconnect with backoff, and the read/write/liveness loop.
//!
//! What a link *means* (which reply belongs to whom) lives behind the
//! [`Session`] trait in conn.rs and pubsub.rs; nothing here knows a command.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use futures_lite::future::or;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::timer::Timer;
use log::{info, warn};

use super::resp::{decode, Cmd, Reply};
pub(crate) use super::types::{LinkState, LinkStats, RedisError, RedisOptions};
use super::url::RedisUrl;

/// Bytes read per `recv`; replies larger than this take several reads.
const READ_CHUNK: usize = 16 * 1024;
/// Reads per wake-up before the link task yields, so a flood of replies
/// cannot hold the shard.
const READS_PER_POLL: usize = 16;

/// A reply owed to one waiter: filled by the link task, awaited by the caller.
pub(crate) struct Slot<T> {
    result: RefCell<Option<T>>,
    waker: Cell<Option<Waker>>,
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Rc<Slot<T>> {
        Rc::new(Slot {
            result: RefCell::new(None),
            waker: Cell::new(None),
        })
    }

    pub(crate) fn fill(&self, value: T) {
        *self.result.borrow_mut() = Some(value);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    pub(crate) fn wait(self: &Rc<Self>) -> impl Future<Output = T> + use<T> {
        let slot = self.clone();
        poll_fn(move |cx| match slot.result.borrow_mut().take() {
            Some(value) => Poll::Ready(value),
            None => {
                slot.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
    }
}

/// State every link keeps, whatever it carries.
pub(crate) struct LinkCore {
    pub(crate) url: RedisUrl,
    pub(crate) opts: RedisOptions,
    /// `CLIENT SETNAME` value, also in log lines.
    pub(crate) name: String,
    state: Cell<LinkState>,
    closed: Cell<bool>,
    /// The link task, woken by new output and by close().
    task: Cell<Option<Waker>>,
    up_waiters: RefCell<Vec<Waker>>,
    pub(crate) stats: RefCell<LinkStats>,
    /// A link-down warning was logged and no Up has happened since.
    down_logged: Cell<bool>,
    /// Failed attempts since the link was last up, for the backoff.
    failures: Cell<u32>,
    connections: Cell<u64>,
}

impl LinkCore {
    pub(crate) fn new(url: RedisUrl, opts: RedisOptions, name: &str) -> LinkCore {
        LinkCore {
            url,
            opts,
            name: name
                .chars()
                .map(|c| if c.is_ascii_graphic() { c } else { '-' })
                .collect(),
            state: Cell::new(LinkState::Connecting),
            closed: Cell::new(false),
            task: Cell::new(None),
            up_waiters: RefCell::new(Vec::new()),
            stats: RefCell::new(LinkStats::default()),
            down_logged: Cell::new(false),
            failures: Cell::new(0),
            connections: Cell::new(0),
        }
    }

    pub(crate) fn state(&self) -> LinkState {
        self.state.get()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Wakes the link task to write queued output.
    pub(crate) fn wake_task(&self) {
        if let Some(waker) = self.task.take() {
            waker.wake();
        }
    }

    pub(crate) fn close(&self) {
        self.closed.set(true);
        self.state.set(LinkState::Down);
        self.wake_task();
    }

    pub(crate) fn set_up(&self) {
        self.state.set(LinkState::Up);
        self.failures.set(0);
        self.down_logged.set(false);
        let (addr, name) = (self.url.addr(), &self.name);
        if self.connections.get() > 1 {
            info!("redis link back up addr={addr} link={name}");
        } else {
            info!("redis link up addr={addr} link={name}");
        }
        self.up_waiters.borrow_mut().drain(..).for_each(Waker::wake);
    }

    pub(crate) fn wait_up(self: &Rc<Self>) -> impl Future<Output = ()> + use<> {
        let core = self.clone();
        poll_fn(move |cx| {
            if core.state.get() == LinkState::Up {
                return Poll::Ready(());
            }
            let mut waiters = core.up_waiters.borrow_mut();
            if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
    }

    fn set_down(&self, err: &RedisError) {
        self.state.set(LinkState::Down);
        let mut stats = self.stats.borrow_mut();
        stats.errors += 1;
        stats.last_error = Some(err.to_string());
        if !self.down_logged.replace(true) && !self.closed.get() {
            warn!(
                "redis link down addr={} link={} err={err}",
                self.url.addr(),
                self.name
            );
        }
    }

    /// The next reconnect delay: doubling from `backoff_min`, capped, and
    /// drawn from its upper half so links that failed together spread out.
    fn backoff(&self) -> Duration {
        let n = self.failures.get();
        self.failures.set(n.saturating_add(1));
        let base = self
            .opts
            .backoff_min
            .saturating_mul(1 << n.min(20))
            .min(self.opts.backoff_max);
        base / 2 + base.mul_f64(fastrand::f64() / 2.0)
    }
}

/// What a link carries: commands and their replies (conn.rs) or
/// subscriptions and pushes (pubsub.rs).
pub(crate) trait Session {
    fn core(&self) -> &LinkCore;
    /// Logged in: queue what the session needs first, maybe declare Up.
    fn on_connected(&self);
    /// Appends every queued command to `out`.
    fn take_output(&self, out: &mut BytesMut);
    /// One reply arrived; an error ends the link.
    fn on_reply(&self, reply: Reply) -> Result<(), RedisError>;
    /// Whether replies are owed (the link must not stay silent).
    fn awaiting_reply(&self) -> bool;
    /// The link was quiet for `probe_interval`: queue a PING.
    fn probe(&self);
    /// The link is gone: fail every waiter with `err`.
    fn on_down(&self, err: &RedisError);
}

/// The link task: connect, serve until the link dies, back off, repeat,
/// until close(). Spawned once per Client or Subscriber.
pub(crate) async fn run<S: Session>(session: Rc<S>) {
    let core = session.core();
    while !core.is_closed() {
        core.state.set(LinkState::Connecting);
        let err = match connect(core).await {
            Ok(stream) => {
                let n = core.connections.get() + 1;
                core.connections.set(n);
                if n > 1 {
                    core.stats.borrow_mut().reconnects += 1;
                }
                session.on_connected();
                serve(stream, &*session).await
            }
            Err(err) => err,
        };
        // State first: waiters and the Down callback may look at it.
        core.set_down(&err);
        session.on_down(&err);
        if core.is_closed() {
            break;
        }
        let delay = core.backoff();
        let backoff = async {
            Timer::new(delay).await;
        };
        or(backoff, poll_fn(|cx| wait_closed(core, cx))).await;
    }
}

fn wait_closed(core: &LinkCore, cx: &Context<'_>) -> Poll<()> {
    if core.is_closed() {
        return Poll::Ready(());
    }
    core.task.set(Some(cx.waker().clone()));
    Poll::Pending
}

/// Connects and logs in (AUTH, SELECT, CLIENT SETNAME) within `connect_timeout`.
async fn connect(core: &LinkCore) -> Result<TcpStream, RedisError> {
    let timeout = core.opts.connect_timeout;
    let attempt = async {
        let mut last = RedisError::Unavailable("host resolves to no address".into());
        let mut connected = None;
        // Each address in the resolver's order (localhost may give ::1
        // first to a server that listens on 127.0.0.1 only).
        for addr in resolve(&core.url).await? {
            match TcpStream::connect_timeout(addr, timeout).await {
                Ok(stream) => {
                    connected = Some(stream);
                    break;
                }
                Err(e) => last = RedisError::Unavailable(format!("connect {addr}: {e}")),
            }
        }
        let mut stream = connected.ok_or(last)?;
        // Pipelined commands are already batched per executor turn.
        stream
            .set_nodelay(true)
            .map_err(|e| RedisError::Unavailable(format!("nodelay: {e}")))?;
        login(core, &mut stream).await?;
        Ok(stream)
    };
    let expire = async {
        Timer::new(timeout).await;
        Err(RedisError::Unavailable("connect timed out".into()))
    };
    or(attempt, expire).await
}

/// The addresses of `url`'s host: a literal IP at once; a name through
/// the executor's blocking thread, since a resolver that hangs (a DNS
/// server gone with the network that took Redis away) must not stall the
/// shard. The connect timeout bounds the wait; a lookup that outlives it
/// finishes on that thread and is dropped.
async fn resolve(url: &RedisUrl) -> Result<Vec<SocketAddr>, RedisError> {
    let addr = url.addr();
    if let Ok(literal) = addr.parse::<SocketAddr>() {
        return Ok(vec![literal]);
    }
    glommio::executor()
        .spawn_blocking(move || addr.to_socket_addrs().map(Iterator::collect))
        .await
        .map_err(|e| RedisError::Unavailable(format!("resolve: {e}")))
}

async fn login(core: &LinkCore, stream: &mut TcpStream) -> Result<(), RedisError> {
    let url = &core.url;
    let mut out = BytesMut::new();
    let mut n_replies = 1;
    if let Some(password) = &url.password {
        let mut auth = Cmd::new("AUTH");
        if let Some(user) = &url.username {
            auth.push(user.as_bytes());
        }
        auth.arg(password).encode_into(&mut out);
        n_replies += 1;
    }
    if url.db != 0 {
        Cmd::new("SELECT")
            .arg_int(url.db.into())
            .encode_into(&mut out);
        n_replies += 1;
    }
    Cmd::new("CLIENT")
        .arg("SETNAME")
        .arg(&core.name)
        .encode_into(&mut out);
    stream.write_all(&out).await.map_err(io_err)?;
    let mut rbuf = BytesMut::new();
    let mut chunk = [0u8; 512];
    while n_replies > 0 {
        match decode(&mut rbuf)? {
            Some(Reply::Error(msg)) => return Err(RedisError::Server(msg)),
            Some(_) => n_replies -= 1,
            None => match stream.read(&mut chunk).await.map_err(io_err)? {
                0 => return Err(RedisError::Unavailable("closed during login".into())),
                n => rbuf.extend_from_slice(&chunk[..n]),
            },
        }
    }
    Ok(())
}

fn io_err(e: std::io::Error) -> RedisError {
    RedisError::Unavailable(e.to_string())
}

/// Per-connection state of [`serve`].
struct Wire {
    stream: TcpStream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    scratch: Box<[u8; READ_CHUNK]>,
    /// When the last byte arrived.
    last_rx: Instant,
    /// Since when replies have been owed without pause.
    owed_since: Option<Instant>,
    /// The armed deadline, if any.
    timer: Option<(Instant, Timer)>,
}

/// Writes queued commands, reads and dispatches replies, and watches
/// liveness, until the link fails or close(). Returns why it ended.
async fn serve<S: Session>(stream: TcpStream, session: &S) -> RedisError {
    let mut wire = Wire {
        stream,
        rbuf: BytesMut::new(),
        wbuf: BytesMut::new(),
        scratch: Box::new([0; READ_CHUNK]),
        last_rx: Instant::now(),
        owed_since: None,
        timer: None,
    };
    poll_fn(|cx| match poll_wire(&mut wire, session, cx) {
        Poll::Ready(err) => Poll::Ready(err),
        Poll::Pending => Poll::Pending,
    })
    .await
}

fn poll_wire<S: Session>(wire: &mut Wire, session: &S, cx: &mut Context<'_>) -> Poll<RedisError> {
    let core = session.core();
    loop {
        if core.is_closed() {
            return Poll::Ready(RedisError::Unavailable("closed".into()));
        }
        core.task.set(Some(cx.waker().clone()));
        session.take_output(&mut wire.wbuf);
        while !wire.wbuf.is_empty() {
            match Pin::new(&mut wire.stream).poll_write(cx, &wire.wbuf) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(io_err(std::io::ErrorKind::WriteZero.into()))
                }
                Poll::Ready(Ok(n)) => wire.wbuf.advance(n),
                Poll::Ready(Err(e)) => return Poll::Ready(io_err(e)),
                Poll::Pending => break,
            }
        }
        // Set when the read budget runs out with bytes maybe still queued:
        // no read returned Pending, so nothing will wake this task for them.
        let mut budget_spent = true;
        for _ in 0..READS_PER_POLL {
            match Pin::new(&mut wire.stream).poll_read(cx, &mut wire.scratch[..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(RedisError::Unavailable(
                        "connection closed by redis".into(),
                    ))
                }
                Poll::Ready(Ok(n)) => {
                    wire.last_rx = Instant::now();
                    wire.rbuf.extend_from_slice(&wire.scratch[..n]);
                    if let Err(err) = dispatch(&mut wire.rbuf, session) {
                        return Poll::Ready(err);
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(io_err(e)),
                Poll::Pending => {
                    budget_spent = false;
                    break;
                }
            }
        }
        match poll_liveness(wire, session, cx) {
            Poll::Ready(Some(err)) => return Poll::Ready(err),
            // A probe was queued: go round to write it.
            Poll::Ready(None) => continue,
            Poll::Pending => {
                // Yield, not sleep: without this wake a backlog larger than
                // the budget waited for new bytes or the liveness timer
                // (5 s), and a flooded pub/sub link fell behind Redis with
                // the shard idle until Redis cut it (scripts/scale-out.sh).
                if budget_spent {
                    cx.waker().wake_by_ref();
                }
                return Poll::Pending;
            }
        }
    }
}

fn dispatch<S: Session>(rbuf: &mut BytesMut, session: &S) -> Result<(), RedisError> {
    while let Some(reply) = decode(rbuf)? {
        session.on_reply(reply)?;
    }
    Ok(())
}

/// Owed replies and `command_timeout` of silence: dead. Nothing owed and
/// `probe_interval` of silence: probe (`Ready(None)`).
fn poll_liveness<S: Session>(
    wire: &mut Wire,
    session: &S,
    cx: &mut Context<'_>,
) -> Poll<Option<RedisError>> {
    let opts = &session.core().opts;
    let now = Instant::now();
    let owed = session.awaiting_reply();
    wire.owed_since = match (owed, wire.owed_since) {
        (true, None) => Some(now),
        (true, since) => since,
        (false, _) => None,
    };
    let deadline = match wire.owed_since {
        Some(since) => since.max(wire.last_rx) + opts.command_timeout,
        None => wire.last_rx + opts.probe_interval,
    };
    if now >= deadline {
        wire.timer = None;
        if owed {
            let secs = opts.command_timeout.as_secs_f64();
            return Poll::Ready(Some(RedisError::Unavailable(format!(
                "no reply for {secs}s"
            ))));
        }
        // The probe counts as traffic, so the next one waits a full interval.
        wire.last_rx = now;
        session.probe();
        return Poll::Ready(None);
    }
    // Re-arm only to fire earlier: a later deadline (bytes arrived) is
    // found when the earlier timer fires, so busy links make no timer per read.
    if wire.timer.as_ref().is_none_or(|(at, _)| *at > deadline) {
        wire.timer = Some((deadline, Timer::new(deadline - now)));
    }
    let (_, timer) = wire.timer.as_mut().expect("armed just above");
    match Pin::new(timer).poll(cx) {
        Poll::Ready(_) => {
            wire.timer = None;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        Poll::Pending => Poll::Pending,
    }
}
