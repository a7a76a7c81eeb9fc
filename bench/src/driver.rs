//! The per-thread event loop: one mio `Poll` owns every connection the
//! thread opened, drives connect → upgrade → frames, and hands text
//! messages to a [`Workload`], which may also close connections (RST, FIN,
//! or a clean WebSocket close) and ask for closed slots to be reopened.
//! Threads share nothing on the message path
//! but a few atomics in [`Shared`]; each returns its own stats on exit.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use crate::auth;
use crate::net;
use crate::ws;

/// Phase of a run, set by the main thread and read by every loop.
pub mod phase {
    /// Opening connections (and subscribing).
    pub const RAMP: u8 = 0;
    /// Measuring.
    pub const RUN: u8 = 1;
    /// No new messages; in-flight ones may still arrive.
    pub const DRAIN: u8 = 2;
    /// Threads close everything and return.
    pub const STOP: u8 = 3;
}

/// Counters every thread adds to, read by the main thread for progress and phases.
#[derive(Default)]
pub struct Shared {
    /// Current [`phase`].
    pub phase: AtomicU8,
    /// Upgrades completed.
    pub opened: AtomicU64,
    /// Connections that failed before the upgrade completed.
    pub failed: AtomicU64,
    /// Open connections that later closed or broke.
    pub lost: AtomicU64,
    /// Connections ready for the run (workload-defined: open, or subscribed).
    pub ready: AtomicU64,
}

impl Shared {
    /// The current phase.
    pub fn phase(&self) -> u8 {
        self.phase.load(Ordering::Relaxed)
    }
}

/// Where one connection goes: the URL index, the source address and the
/// token its upgrade carries.
#[derive(Debug, Clone)]
pub struct Target {
    /// Index into the URL list.
    pub url: usize,
    /// Source address to bind, if any.
    pub src: Option<Ipv4Addr>,
    /// Token for the upgrade's `?token=`, signed before the run started
    /// (`--jwt-hmac-secret`, /ws URLs only); a reopened slot sends it again.
    pub token: Option<Box<str>>,
}

/// Lifecycle of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// SYN sent, waiting for writability.
    Connecting,
    /// Upgrade request sent, waiting for the 101.
    Upgrading,
    /// WebSocket open.
    Open,
    /// Gone; the slot is reused only if the workload reopens it ([`Workload::next_reopen`]).
    Closed,
}

/// One client connection and its buffers.
pub struct Conn {
    stream: Option<mio::net::TcpStream>,
    /// Lifecycle state.
    pub state: State,
    /// Bytes received and not yet decoded.
    rbuf: Vec<u8>,
    /// Bytes queued and not yet written (from `wpos`).
    wbuf: Vec<u8>,
    wpos: usize,
    /// When the connect started (for timeouts and connect latency).
    pub started: Instant,
    /// Set by a failed write; the loop closes the connection with this cause.
    error: Option<String>,
    /// xorshift state for frame masks.
    rng: u32,
    /// When a close this side started was sent; the server's close frame ends it.
    closing: Option<Instant>,
    /// Send only part of the upgrade request, then close (a client that gives up
    /// mid-handshake); set when a workload reopens the slot with [`Reopen`].
    abandon_upgrade: bool,
    /// The upgrade offered permessage-deflate (`--compression`).
    offered_deflate: bool,
    /// The upgrade asked for MessagePack (`--encoding msgpack`): text the
    /// workload sends goes as MessagePack, binary messages come back as
    /// JSON text.
    msgpack: bool,
    /// The connection speaks Centrifugo's client protocol (`--encoding
    /// centrifugo[-protobuf]`): its token and command ids, for the
    /// translation at this edge.
    centrifugo: Option<Box<crate::centrifugo::Session>>,
}

/// Largest write backlog one connection may build before sends are refused.
/// Bounds the bench's memory when a server stops reading.
pub const MAX_BACKLOG: usize = 16 << 20;

impl Conn {
    /// Queues a masked text frame and tries to write it right away.
    /// Returns false (and counts nothing) if the backlog is full.
    pub fn send_text(&mut self, payload: &[u8]) -> bool {
        if let Some(session) = self.centrifugo.as_mut() {
            let opcode = session.opcode();
            return match session.command(payload) {
                Ok(command) => self.send(opcode, &command),
                Err(e) => {
                    self.error.get_or_insert(e);
                    false
                }
            };
        }
        if !self.msgpack {
            return self.send(ws::OP_TEXT, payload);
        }
        match crate::msgpack::from_json(payload) {
            Ok(packed) => self.send(ws::OP_BINARY, &packed),
            Err(e) => {
                self.error.get_or_insert(e);
                false
            }
        }
    }

    /// Resets the connection: SO_LINGER 0, so dropping the socket sends an RST
    /// instead of a FIN. The loop closes it after this turn.
    pub fn abort(&mut self, cause: &str) {
        if let Some(stream) = self.stream.as_ref() {
            let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
        }
        self.error.get_or_insert_with(|| cause.into());
    }

    /// Closes the TCP connection (FIN) after this turn, with no close frame.
    pub fn drop_tcp(&mut self, cause: &str) {
        self.error.get_or_insert_with(|| cause.into());
    }

    /// Starts a clean WebSocket close: sends close 1000 and keeps reading until the
    /// server's close frame arrives (or `--connect-timeout` passes, a failure).
    pub fn close_clean(&mut self, now: Instant) {
        if self.state == State::Open && self.closing.is_none() {
            self.send(ws::OP_CLOSE, &1000u16.to_be_bytes());
            self.closing = Some(now);
        }
    }

    /// True once [`Conn::close_clean`] has sent a close frame.
    pub fn is_closing(&self) -> bool {
        self.closing.is_some()
    }

    fn send(&mut self, opcode: u8, payload: &[u8]) -> bool {
        if self.wbuf.len() - self.wpos > MAX_BACKLOG || self.stream.is_none() {
            return false;
        }
        let mask = self.next_mask();
        let was_empty = self.wpos == self.wbuf.len();
        ws::encode(&mut self.wbuf, opcode, payload, mask);
        if was_empty {
            if let Err(e) = self.flush() {
                self.error
                    .get_or_insert(format!("write: {}", net::errno_name(&e)));
            }
        }
        true
    }

    fn next_mask(&mut self) -> [u8; 4] {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        x.to_ne_bytes()
    }

    fn flush(&mut self) -> io::Result<()> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        while self.wpos < self.wbuf.len() {
            match stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wpos = 0;
            self.wbuf.clear();
            if self.wbuf.capacity() > 64 * 1024 {
                self.wbuf = Vec::new();
            }
        }
        Ok(())
    }
}

/// What a run does with its connections. One value per thread.
pub trait Workload {
    /// The upgrade completed on connection `id`.
    fn on_open(&mut self, id: usize, conn: &mut Conn, now: Instant);
    /// A complete text (or binary) message arrived.
    fn on_text(&mut self, id: usize, conn: &mut Conn, text: &[u8], now: Instant);
    /// Connection `id` ended; `was_open` says whether it had been upgraded.
    fn on_closed(&mut self, id: usize, was_open: bool);
    /// Called on every loop turn; sends scheduled messages. Returns how soon it wants
    /// to run again (`None`: only when events arrive).
    fn tick(&mut self, conns: &mut [Conn], phase: u8, now: Instant) -> Option<Duration>;
    /// A closed connection to open again on its slot (same id and target), asked
    /// for while the loop has room to connect; `None` (the default) opens nothing.
    fn next_reopen(&mut self) -> Option<Reopen> {
        None
    }
}

/// A closed slot the workload wants connected again.
#[derive(Debug, Clone, Copy)]
pub struct Reopen {
    /// The slot (connection id); it must be closed.
    pub id: usize,
    /// Send only the first half of the upgrade request, then close.
    pub abandon_upgrade: bool,
}

/// Cause recorded for a connection closed by [`Reopen::abandon_upgrade`].
pub const ABANDONED_UPGRADE: &str = "upgrade abandoned by the bench";
/// Cause recorded when the server answers a close started with [`Conn::close_clean`].
pub const CLEAN_CLOSE: &str = "clean close (server answered the bench's close)";

/// Per-thread limits of the loop.
#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// Connections this thread may have connecting or upgrading at once.
    pub max_connecting: usize,
    /// A connect or upgrade that takes longer fails as a timeout.
    pub connect_timeout: Duration,
    /// The loop returns at this instant whatever the phase (global deadline).
    pub deadline: Instant,
}

/// What one thread saw, merged by the caller.
#[derive(Debug, Default)]
pub struct LoopStats {
    /// Failures and closes, by cause.
    pub errors: BTreeMap<String, u64>,
    /// Close frames received from the server, by "code reason".
    pub close_codes: BTreeMap<String, u64>,
    /// Connections still open when the loop stopped.
    pub open_at_end: u64,
}

const TIMEOUT_SCAN: Duration = Duration::from_millis(250);
/// Longest poll wait, so phase changes are seen promptly.
const MAX_WAIT: Duration = Duration::from_millis(20);
/// The loop's timer (see [`Timer`]); no connection has this token.
const TIMER: Token = Token(usize::MAX);

/// A one-shot timerfd in the loop's poll set. epoll's own timeout has
/// millisecond granularity, so a fixed-rate run that must send every 200 us
/// would otherwise oversleep or spin; spinning would make the bench look
/// busy and steal the CPU from any server thread sharing it.
struct Timer {
    fd: std::os::fd::OwnedFd,
}

impl Timer {
    fn new(poll: &Poll) -> io::Result<Timer> {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: no pointers; a non-negative result is a new fd we own.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by the kernel and nothing else owns it.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        poll.registry().register(
            &mut mio::unix::SourceFd(&fd.as_raw_fd()),
            TIMER,
            Interest::READABLE,
        )?;
        Ok(Timer { fd })
    }

    /// Fires once, `after` from now (re-arming resets an earlier expiry;
    /// the registration is edge-triggered, so each expiry is one event).
    fn arm(&self, after: Duration) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let after = after.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `spec` is a valid itimerspec; a null old-value pointer is allowed.
        let rc =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Runs one thread's loop until the STOP phase or the deadline.
pub fn run_loop<W: Workload>(
    urls: &[net::Url],
    targets: &[Target],
    workload: &mut W,
    shared: &Shared,
    cfg: &LoopConfig,
    seed: u32,
) -> io::Result<LoopStats> {
    let mut poll = Poll::new()?;
    let timer = Timer::new(&poll)?;
    let mut events = Events::with_capacity(1024);
    let mut conns: Vec<Conn> = Vec::with_capacity(targets.len());
    let mut stats = LoopStats::default();
    let mut scratch = vec![0u8; 64 * 1024];
    let mut connecting = 0usize;
    let mut next_scan = Instant::now() + TIMEOUT_SCAN;
    loop {
        let now = Instant::now();
        let phase = shared.phase();
        if phase == phase::STOP || now >= cfg.deadline {
            break;
        }
        while connecting < cfg.max_connecting && conns.len() < targets.len() {
            let id = conns.len();
            conns.push(new_conn(seed, id, now));
            open(
                id,
                &mut conns[id],
                &ctx(&poll, urls, targets),
                &mut connecting,
                &mut stats,
                shared,
                workload,
            )?;
        }
        // Bounded per turn: a reopen that fails at once is asked for again by
        // the workload, and must not spin this loop.
        let mut reopens = cfg.max_connecting;
        while connecting < cfg.max_connecting && phase < phase::DRAIN && reopens > 0 {
            reopens -= 1;
            let Some(r) = workload.next_reopen() else {
                break;
            };
            if conns.get(r.id).is_none_or(|c| c.state != State::Closed) {
                continue;
            }
            let c = &mut conns[r.id];
            *c = new_conn(seed, r.id, now);
            c.abandon_upgrade = r.abandon_upgrade;
            open(
                r.id,
                c,
                &ctx(&poll, urls, targets),
                &mut connecting,
                &mut stats,
                shared,
                workload,
            )?;
        }
        if now >= next_scan {
            next_scan = now + TIMEOUT_SCAN;
            for (id, c) in conns.iter_mut().enumerate() {
                if matches!(c.state, State::Connecting | State::Upgrading)
                    && now.duration_since(c.started) > cfg.connect_timeout
                {
                    let cause = match c.state {
                        State::Connecting => "timeout: connect",
                        _ => "timeout: upgrade",
                    };
                    c.error = Some(cause.into());
                    finish(id, c, &mut connecting, &mut stats, shared, workload);
                } else if c.state == State::Open
                    && c.closing
                        .is_some_and(|t| now.duration_since(t) > cfg.connect_timeout)
                {
                    c.error = Some("timeout: no close frame from the server".into());
                    finish(id, c, &mut connecting, &mut stats, shared, workload);
                }
            }
        }
        let want = workload.tick(&mut conns, phase, now);
        for (id, c) in conns.iter_mut().enumerate() {
            if c.error.is_some() && c.state != State::Closed {
                finish(id, c, &mut connecting, &mut stats, shared, workload);
            }
        }
        let wait = match want {
            Some(w) if w.is_zero() => Duration::ZERO,
            Some(w) if w < MAX_WAIT => {
                timer.arm(w)?;
                MAX_WAIT
            }
            _ => MAX_WAIT,
        };
        match poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for ev in events.iter() {
            if ev.token() == TIMER {
                continue;
            }
            let id = ev.token().0;
            let c = &mut conns[id];
            if c.state == State::Closed {
                continue;
            }
            if c.state == State::Connecting {
                connected(c, &urls[targets[id].url], targets[id].token.as_deref());
                if c.state == State::Connecting && c.error.is_none() {
                    continue;
                }
            }
            if c.error.is_none() && ev.is_writable() {
                if let Err(e) = c.flush() {
                    c.error = Some(format!("write: {}", net::errno_name(&e)));
                }
            }
            if c.error.is_none() && (ev.is_readable() || ev.is_read_closed()) {
                read_ready(
                    id,
                    c,
                    &mut scratch,
                    workload,
                    &mut stats,
                    shared,
                    &mut connecting,
                );
            }
            if c.error.is_some() {
                finish(id, c, &mut connecting, &mut stats, shared, workload);
            }
        }
    }
    stats.open_at_end = conns.iter().filter(|c| c.state == State::Open).count() as u64;
    Ok(stats)
}

/// What [`open`] needs from the loop besides the connection.
struct Ctx<'a> {
    poll: &'a Poll,
    urls: &'a [net::Url],
    targets: &'a [Target],
}

fn ctx<'a>(poll: &'a Poll, urls: &'a [net::Url], targets: &'a [Target]) -> Ctx<'a> {
    Ctx {
        poll,
        urls,
        targets,
    }
}

/// A closed connection for slot `id`, not yet connecting.
fn new_conn(seed: u32, id: usize, now: Instant) -> Conn {
    Conn {
        stream: None,
        state: State::Closed,
        rbuf: Vec::new(),
        wbuf: Vec::new(),
        wpos: 0,
        started: now,
        error: None,
        rng: seed.wrapping_add(id as u32).wrapping_mul(2_654_435_761) | 1,
        closing: None,
        abandon_upgrade: false,
        offered_deflate: false,
        msgpack: false,
        centrifugo: None,
    }
}

/// Starts connecting slot `id` to its target; a connect that fails at once is
/// counted and reported to the workload as closed.
fn open<W: Workload>(
    id: usize,
    conn: &mut Conn,
    cx: &Ctx<'_>,
    connecting: &mut usize,
    stats: &mut LoopStats,
    shared: &Shared,
    workload: &mut W,
) -> io::Result<()> {
    let t = &cx.targets[id];
    match net::start_connect(cx.urls[t.url].addr, t.src) {
        Ok(mut stream) => {
            cx.poll.registry().register(
                &mut stream,
                Token(id),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            conn.stream = Some(stream);
            conn.state = State::Connecting;
            *connecting += 1;
        }
        Err(e) => {
            count(
                &mut stats.errors,
                format!("connect: {}", net::errno_name(&e)),
            );
            shared.failed.fetch_add(1, Ordering::Relaxed);
            workload.on_closed(id, false);
        }
    }
    Ok(())
}

/// Adds one to `cause` in `map`.
pub fn count(map: &mut BTreeMap<String, u64>, cause: String) {
    *map.entry(cause).or_default() += 1;
}

/// Adds every count of `from` to `into`, cause by cause.
pub fn merge_counts(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (cause, n) in from {
        *into.entry(cause.clone()).or_default() += n;
    }
}

/// Checks a connect's outcome on writability and, once connected, sends the upgrade.
fn connected(c: &mut Conn, url: &net::Url, token: Option<&str>) {
    let Some(stream) = c.stream.as_ref() else {
        return;
    };
    match stream.take_error() {
        Ok(Some(e)) | Err(e) => {
            c.error = Some(format!("connect: {}", net::errno_name(&e)));
            return;
        }
        Ok(None) => {}
    }
    match stream.peer_addr() {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
        Err(e) => {
            c.error = Some(format!("connect: {}", net::errno_name(&e)));
            return;
        }
    }
    c.state = State::Upgrading;
    let start = c.wbuf.len();
    url.write_request(&mut c.wbuf, token);
    c.offered_deflate = url.deflate;
    c.msgpack = url.msgpack;
    c.centrifugo = url
        .centrifugo
        .map(|proto| Box::new(crate::centrifugo::Session::new(proto, token)));
    if c.abandon_upgrade {
        // Half the head: the request line and some headers, never the blank line.
        c.wbuf.truncate(start + (c.wbuf.len() - start) / 2);
        let _ = c.flush();
        c.error = Some(ABANDONED_UPGRADE.into());
        return;
    }
    if let Err(e) = c.flush() {
        c.error = Some(format!("upgrade write: {}", net::errno_name(&e)));
    }
}

/// Reads until WouldBlock, decoding the upgrade answer and then frames.
#[allow(clippy::too_many_arguments)] // the loop's own state, split out only for length
fn read_ready<W: Workload>(
    id: usize,
    c: &mut Conn,
    scratch: &mut [u8],
    workload: &mut W,
    stats: &mut LoopStats,
    shared: &Shared,
    connecting: &mut usize,
) {
    loop {
        let Some(stream) = c.stream.as_mut() else {
            return;
        };
        let n = match stream.read(scratch) {
            Ok(0) => {
                let cause = match c.state {
                    State::Open => "closed by server without close frame (EOF)",
                    _ => "upgrade: EOF before response",
                };
                c.error.get_or_insert(cause.into());
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                c.error
                    .get_or_insert(format!("read: {}", net::errno_name(&e)));
                return;
            }
        };
        // Stamp each read, not the poll wakeup: this loop keeps reading one socket,
        // and a reply to a message sent a moment ago must not get the old time.
        let now = Instant::now();
        if c.rbuf.is_empty() {
            // The usual case: decode straight from the read buffer and keep
            // only an incomplete tail, instead of copying every byte first.
            let got = &scratch[..n];
            let used = decode_all(id, c, got, workload, stats, shared, connecting, now);
            c.rbuf.extend_from_slice(&got[used..]);
        } else {
            c.rbuf.extend_from_slice(&scratch[..n]);
            let mut buf = std::mem::take(&mut c.rbuf);
            let used = decode_all(id, c, &buf, workload, stats, shared, connecting, now);
            buf.drain(..used);
            if buf.is_empty() && buf.capacity() > 64 * 1024 {
                buf = Vec::new();
            }
            c.rbuf = buf;
        }
        if c.error.is_some() || c.state == State::Closed {
            return;
        }
    }
}

/// Decodes what `buf` holds; returns the bytes consumed.
#[allow(clippy::too_many_arguments)] // see read_ready
fn decode_all<W: Workload>(
    id: usize,
    c: &mut Conn,
    buf: &[u8],
    workload: &mut W,
    stats: &mut LoopStats,
    shared: &Shared,
    connecting: &mut usize,
    now: Instant,
) -> usize {
    let mut at = 0;
    if c.state == State::Upgrading {
        match ws::parse_upgrade_response(buf) {
            Ok(None) => return 0,
            Ok(Some((101, head))) if c.offered_deflate && !agreed_deflate(&buf[..head]) => {
                c.error = Some("upgrade: permessage-deflate not negotiated".into());
                return buf.len();
            }
            Ok(Some((101, head))) if c.msgpack && !crate::msgpack::agreed(&buf[..head]) => {
                c.error = Some("upgrade: corecast.msgpack not chosen".into());
                return buf.len();
            }
            Ok(Some((101, head)))
                if c.centrifugo.as_ref().is_some_and(|s| {
                    (s.proto == crate::centrifugo::Proto::Protobuf)
                        != crate::centrifugo::agreed_protobuf(&buf[..head])
                }) =>
            {
                c.error = Some("upgrade: centrifuge-protobuf not chosen as asked".into());
                return buf.len();
            }
            Ok(Some((101, head))) => {
                at = head;
                if let Some(session) = c.centrifugo.as_ref() {
                    let (opcode, connect) = (session.opcode(), session.connect());
                    c.send(opcode, &connect);
                }
                c.state = State::Open;
                *connecting -= 1;
                shared.opened.fetch_add(1, Ordering::Relaxed);
                workload.on_open(id, c, now);
            }
            Ok(Some((status, _))) => {
                c.error = Some(format!("upgrade: HTTP {status}"));
                return buf.len();
            }
            Err(e) => {
                c.error = Some(format!("upgrade: {e}"));
                return buf.len();
            }
        }
    }
    while c.state == State::Open && c.error.is_none() {
        let (frame, used) = match ws::decode(&buf[at..]) {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                c.error = Some(format!("protocol: {e}"));
                break;
            }
        };
        at += used;
        if !frame.fin || frame.opcode == 0 {
            c.error = Some("protocol: fragmented message (unsupported by the bench)".into());
            break;
        }
        match frame.opcode {
            ws::OP_TEXT | ws::OP_BINARY if frame.rsv1 => match inflate(frame.payload) {
                Ok(()) if c.centrifugo.is_some() => {
                    let inflated = INFLATED.with_borrow(|(_, out)| out.clone());
                    deliver_centrifugo(id, c, &inflated, workload, now);
                }
                Ok(()) if c.msgpack && frame.opcode == ws::OP_BINARY => {
                    let inflated = INFLATED.with_borrow(|(_, out)| out.clone());
                    deliver_msgpack(id, c, &inflated, workload, now);
                }
                Ok(()) => INFLATED.with_borrow(|(_, out)| workload.on_text(id, c, out, now)),
                Err(e) => c.error = Some(format!("protocol: {e}")),
            },
            ws::OP_TEXT | ws::OP_BINARY if c.centrifugo.is_some() => {
                deliver_centrifugo(id, c, frame.payload, workload, now)
            }
            ws::OP_BINARY if c.msgpack => deliver_msgpack(id, c, frame.payload, workload, now),
            ws::OP_TEXT | ws::OP_BINARY => workload.on_text(id, c, frame.payload, now),
            ws::OP_PING => {
                c.send(ws::OP_PONG, frame.payload);
            }
            ws::OP_PONG => {}
            ws::OP_CLOSE if c.closing.is_some() => {
                c.error = Some(CLEAN_CLOSE.into());
            }
            ws::OP_CLOSE => {
                let (code, reason) = ws::close_code(frame.payload);
                count(
                    &mut stats.close_codes,
                    format!("{code} {reason}").trim().to_string(),
                );
                c.send(ws::OP_CLOSE, &frame.payload[..frame.payload.len().min(2)]);
                c.error = Some(
                    format!("closed by server: {code} {reason}")
                        .trim()
                        .to_string(),
                );
            }
            op => c.error = Some(format!("protocol: unknown opcode {op}")),
        }
    }
    at
}

/// A MessagePack message handed to the workload as JSON text.
fn deliver_msgpack<W: Workload>(
    id: usize,
    c: &mut Conn,
    payload: &[u8],
    workload: &mut W,
    now: Instant,
) {
    let text = MSGPACK_TEXT.with_borrow_mut(|text| {
        crate::msgpack::to_json(payload, text).map(|()| std::mem::take(text))
    });
    match text {
        Ok(text) => {
            workload.on_text(id, c, &text, now);
            MSGPACK_TEXT.with_borrow_mut(|buf| *buf = text);
        }
        Err(e) => c.error = Some(e),
    }
}

/// A Centrifugo frame handed to the workload as /ws messages (JSON text);
/// server pings are answered here.
fn deliver_centrifugo<W: Workload>(
    id: usize,
    c: &mut Conn,
    payload: &[u8],
    workload: &mut W,
    now: Instant,
) {
    let Some(session) = c.centrifugo.as_ref() else {
        return;
    };
    let (opcode, pong) = (session.opcode(), session.pong());
    let mut messages = CENTRIFUGO_MESSAGES.with_borrow_mut(std::mem::take);
    messages.clear();
    match session.replies(payload, &mut messages) {
        Ok(pings) => {
            for _ in 0..pings {
                c.send(opcode, pong);
            }
            for m in &messages {
                workload.on_text(id, c, m, now);
            }
        }
        Err(e) => c.error = Some(e),
    }
    CENTRIFUGO_MESSAGES.with_borrow_mut(|buf| *buf = messages);
}

thread_local! {
    /// Each client loop's buffer for the /ws messages of a Centrifugo frame.
    static CENTRIFUGO_MESSAGES: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Each client loop's buffer for a MessagePack message as JSON text.
    static MSGPACK_TEXT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// True when an upgrade response head agreed to permessage-deflate.
fn agreed_deflate(head: &[u8]) -> bool {
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    head.contains("\r\nsec-websocket-extensions: permessage-deflate")
}

thread_local! {
    /// Each client loop's decompressor and the last message it inflated
    /// (the server asks for no context takeover, so one per thread serves
    /// every connection).
    static INFLATED: std::cell::RefCell<(flate2::Decompress, Vec<u8>)> =
        std::cell::RefCell::new((flate2::Decompress::new(false), Vec::new()));
}

/// Inflates one permessage-deflate message into [`INFLATED`].
fn inflate(payload: &[u8]) -> Result<(), String> {
    use flate2::FlushDecompress;
    INFLATED.with_borrow_mut(|(d, out)| {
        d.reset(false);
        out.clear();
        for input in [payload, &[0x00, 0x00, 0xff, 0xff]] {
            let start = d.total_in();
            loop {
                out.reserve(16 * 1024);
                let at = (d.total_in() - start) as usize;
                let before = (d.total_in(), d.total_out());
                d.decompress_vec(&input[at..], out, FlushDecompress::Sync)
                    .map_err(|e| format!("inflate: {e}"))?;
                let done =
                    (d.total_in() - start) as usize == input.len() && out.len() < out.capacity();
                if done || (d.total_in(), d.total_out()) == before {
                    break;
                }
            }
        }
        Ok(())
    })
}

/// Closes `c` and records why.
fn finish<W: Workload>(
    id: usize,
    c: &mut Conn,
    connecting: &mut usize,
    stats: &mut LoopStats,
    shared: &Shared,
    workload: &mut W,
) {
    let was_open = c.state == State::Open;
    if matches!(c.state, State::Connecting | State::Upgrading) {
        *connecting -= 1;
        shared.failed.fetch_add(1, Ordering::Relaxed);
    } else if was_open {
        shared.lost.fetch_add(1, Ordering::Relaxed);
    }
    let cause = c.error.take().unwrap_or_else(|| "closed".into());
    let cause = if was_open {
        format!("after open: {cause}")
    } else {
        cause
    };
    count(&mut stats.errors, cause);
    c.state = State::Closed;
    c.stream = None;
    c.rbuf = Vec::new();
    c.wbuf = Vec::new();
    workload.on_closed(id, was_open);
}

/// Handle of a thread started by [`spawn_pinned`].
pub type PinnedThread<T> = std::thread::JoinHandle<Result<T, String>>;

/// Spawns `n` threads, thread `i` pinned to `cpus[i % cpus.len()]` (unpinned
/// when `cpus` is empty) and running `body(i)`; returns their handles in order.
/// A thread that cannot be pinned returns an error instead of running where
/// the scheduler puts it, which would silently change what is measured.
pub fn spawn_pinned<T, F>(n: usize, cpus: &[usize], body: F) -> io::Result<Vec<PinnedThread<T>>>
where
    T: Send + 'static,
    F: Fn(usize) -> Result<T, String> + Send + Sync + 'static,
{
    let body = Arc::new(body);
    let cpus = cpus.to_vec();
    (0..n)
        .map(|i| {
            let body = Arc::clone(&body);
            let cpu = (!cpus.is_empty()).then(|| cpus[i % cpus.len()]);
            std::thread::Builder::new()
                .name(format!("bench-{i}"))
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
                            return Err(format!("could not pin bench-{i} to CPU {cpu}"));
                        }
                    }
                    body(i)
                })
        })
        .collect()
}

/// One thread's connections: their global indexes and where each goes.
#[derive(Debug, Default)]
pub struct ThreadPlan {
    /// Global index of each connection, in the thread's local order.
    pub ids: Vec<usize>,
    /// Target of each connection, same order.
    pub targets: Vec<Target>,
}

/// Splits `n` connections over `threads`: connection `i` goes to thread `i % threads`,
/// to URL `i % urls` and to source address `i % sources`. With a `signer`,
/// every connection to a /ws URL gets the token of user `u<i>`, signed here:
/// the caller plans before its clock starts, so signing is never measured.
pub fn plan(
    n: usize,
    threads: usize,
    urls: &[net::Url],
    sources: &[Ipv4Addr],
    signer: Option<&auth::Signer>,
) -> Result<Vec<ThreadPlan>, String> {
    if urls.is_empty() || threads == 0 {
        return Err("no URL or no thread to plan connections over".into());
    }
    let mut out: Vec<ThreadPlan> = (0..threads).map(|_| ThreadPlan::default()).collect();
    for i in 0..n {
        let url = i % urls.len();
        let token = match signer {
            Some(s) if auth::takes_token(&urls[url].path) => Some(s.token(i)?.into_boxed_str()),
            _ => None,
        };
        let t = Target {
            url,
            src: (!sources.is_empty()).then(|| sources[i % sources.len()]),
            token,
        };
        let p = &mut out[i % threads];
        p.ids.push(i);
        p.targets.push(t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_server_messages_inflate() {
        // RFC 7692 7.2.3.1 and 7.2.3.3: "Hello" compressed, then stored.
        for payload in [
            &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00][..],
            &[
                0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
            ][..],
        ] {
            inflate(payload).unwrap();
            INFLATED.with_borrow(|(_, out)| assert_eq!(out, b"Hello"));
        }
        assert!(inflate(&[0xff, 0xff]).is_err());
        assert!(agreed_deflate(
            b"HTTP/1.1 101 x\r\nSec-WebSocket-Extensions: permessage-deflate; x\r\n\r\n"
        ));
        assert!(!agreed_deflate(b"HTTP/1.1 101 x\r\n\r\n"));
    }

    fn urls(texts: &[&str]) -> Vec<net::Url> {
        texts.iter().map(|t| net::parse_url(t).unwrap()).collect()
    }

    #[test]
    fn plan_spreads_connections_over_threads_urls_and_sources() {
        let urls = urls(&["ws://127.0.0.1:1/ws", "ws://127.0.0.1:2/ws"]);
        let src: Vec<Ipv4Addr> = vec![[127, 0, 0, 2].into(), [127, 0, 0, 3].into()];
        let plan = plan(5, 2, &urls, &src, None).unwrap();
        assert_eq!(plan[0].ids, vec![0, 2, 4]);
        assert_eq!(plan[1].ids, vec![1, 3]);
        let t = &plan[1].targets[1];
        assert_eq!((t.url, t.src), (1, Some([127, 0, 0, 3].into())));
        assert!(plan
            .iter()
            .flat_map(|p| &p.targets)
            .all(|t| t.token.is_none()));
        assert!(super::plan(1, 1, &[], &src, None).is_err());
    }

    #[test]
    fn with_a_signer_each_ws_connection_carries_its_own_users_token() {
        let secret = auth::parse_secret("bench-test-secret").unwrap();
        let signer = auth::Signer::new(&secret, std::time::SystemTime::now()).unwrap();
        let urls = urls(&["ws://127.0.0.1:1/ws", "ws://127.0.0.1:1/echo"]);
        let plan = plan(6, 2, &urls, &[], Some(&signer)).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        for p in &plan {
            for (&i, t) in p.ids.iter().zip(&p.targets) {
                let url = &urls[t.url];
                let mut req = Vec::new();
                url.write_request(&mut req, t.token.as_deref());
                let line = std::str::from_utf8(&req).unwrap().lines().next().unwrap();
                if url.path == "/echo" {
                    assert!(t.token.is_none());
                    assert_eq!(line, "GET /echo HTTP/1.1");
                    continue;
                }
                let token = line
                    .strip_prefix("GET /ws?token=")
                    .and_then(|l| l.strip_suffix(" HTTP/1.1"))
                    .unwrap();
                let claims = auth::tests::verify(token);
                assert_eq!(claims["sub"], format!("u{i}"));
                assert!(claims["exp"].as_u64().unwrap() > now);
            }
        }
    }
}
