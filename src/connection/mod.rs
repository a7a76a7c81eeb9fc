//! One client connection: a handshake task, then, once upgraded, a state
//! machine in the shard's table that the shard polls when it is woken:
//! read, decode, answer, flush the connection's outbox.
//!
//! An upgraded connection is one [`ConnState`] in the shard's table and
//! nothing else: fan-out, the ticker and the shard's epoll set queue
//! frames, mark readiness and wake it there, and waking it queues its key
//! in the shard's run queue, from which one task per shard
//! ([`run_forever`]) polls it. During a poll its parked state (decoder,
//! channels, read state) is taken out of the table as a `Connection`, so
//! the request handling can borrow the shard's tables freely, and is put
//! back after. Reads go into the shard's scratch buffer (lent only while a
//! `recv` returns and its bytes are decoded), so an idle connection owns
//! no buffer. Public sockets never go through glommio's streams: their
//! readiness comes from the shard's epoll set ([`crate::reactor`]) from
//! the accept on.
//! `state.rs` holds `ConnState`, `session.rs` the /ws protocol handling,
//! `centrifugo/` the /connection/websocket one.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::task::Poll;

use crate::error::CloseReason;
use crate::http::{self, Route};
use crate::message;
use crate::reactor::{self, after_io, can, EpollStream, READABLE};
use crate::shard::{log_limited, ConnKey, Shard};
use crate::sys;
use crate::wire::Wire;
use crate::ws::Decoder;

mod centrifugo;
mod channels;
mod session;
mod state;

pub use state::ConnState;

use channels::ChannelList;
use session::Session;

/// Sockets a shard may be refusing (503) at once; beyond this, excess
/// connections are closed without a response so refusals cannot exhaust fds.
const MAX_REFUSING: usize = 64;
/// Read/flush rounds one poll may take before yielding to other connections.
const MAX_ROUNDS: usize = 16;
/// Connections one run-queue batch polls before it offers the executor to
/// other tasks (a burst of wake-ups must not hold the core for long).
const CONNS_PER_SLICE: usize = 256;
/// Longest the run queue's task keeps the executor while connections are
/// queued batch after batch, before it yields so epoll events, accepts,
/// flushes, timers and the bus get a turn.
const MAX_TURN: std::time::Duration = std::time::Duration::from_millis(2);

/// Takes over an accepted socket: counts it, runs the HTTP handshake, and
/// for an upgrade registers the connection in the shard's table.
pub async fn serve(shard: Rc<Shard>, socket: std::net::TcpStream) {
    shard.metrics.bump(|c| c.accepted += 1);
    let admitted = shard.try_admit();
    if !admitted {
        shard.metrics.bump(|c| c.refused += 1);
        if shard.n_refusing.get() >= MAX_REFUSING {
            return; // Dropping the socket is the only answer left that costs nothing.
        }
    }
    let peer = http::peer_addr(&socket);
    let mut stream = match EpollStream::register(&shard, socket) {
        Ok(stream) => stream,
        Err(e) => {
            // ENOSPC here means fs.epoll.max_user_watches is exhausted.
            log_limited!(
                shard,
                log::Level::Warn,
                "cannot watch an accepted socket, dropping it (see fs.epoll.max_user_watches): {e}"
            );
            if admitted {
                shard.release();
            }
            return;
        }
    };
    if !admitted {
        shard.n_refusing.set(shard.n_refusing.get() + 1);
        http::handshake(&shard, &mut stream, false, peer).await;
        shard.n_refusing.set(shard.n_refusing.get() - 1);
        return;
    }
    match http::handshake(&shard, &mut stream, true, peer).await {
        Some(upgrade) => start(shard, stream.into_socket(), upgrade),
        None => {
            drop(stream);
            shard.release();
            // After the close: tests wait on this line to count fds.
            log::debug!("socket closed without upgrade");
        }
    };
}

/// Registers an upgraded connection in the shard's table, which from now
/// on owns its socket, and queues its first poll. No task is spawned: the
/// shard's [`run_forever`] polls it whenever it is woken.
fn start(shard: Rc<Shard>, socket: std::net::TcpStream, upgrade: http::Upgrade) {
    // Pub/sub traffic is small frames that must not wait for Nagle.
    if let Err(e) = socket.set_nodelay(true) {
        log::debug!("set_nodelay failed: {e}");
    }
    let fd = socket.as_raw_fd();
    let (key, seq) = shard.register(socket.into(), upgrade.route, upgrade.wire);
    if let Err(e) = shard.epoll.watch_upgraded(fd, key, seq) {
        log_limited!(
            shard,
            log::Level::Warn,
            "cannot re-tag an upgraded socket in the epoll set, dropping it: {e}"
        );
        shard.unregister(key, &[]);
        shard.release();
        return;
    }
    shard.metrics.bump(|c| c.upgraded += 1);
    // The one line tying a connection id to its client: later lines name
    // the id only, since the address is not kept past this point.
    log::debug!(
        "upgraded client={} conn={}-{seq} route={}",
        upgrade.client,
        shard.id.0,
        upgrade.route.path()
    );
    if upgrade.route == Route::Ws {
        let id = shard.connection_id(seq);
        let (user, expires_at) = match upgrade.claims {
            Some(claims) if !claims.user.is_empty() => {
                let user = claims.user.clone();
                let expires_at = shard.attach_identity(key, claims);
                log::debug!("authenticated conn={id} user={user}");
                (Some(user), expires_at)
            }
            _ => {
                if shard.config.config.require_auth {
                    shard.expect_connect(key);
                }
                (None, None)
            }
        };
        shard.send_to(
            key,
            message::connection_established(&id, shard.id.0 as usize, user.as_deref(), expires_at),
        );
    }
    if matches!(upgrade.route, Route::Centrifugo(_)) {
        // Its first command must be `connect`, within the handshake timeout.
        shard.expect_connect(key);
    }
    if !upgrade.leftover.is_empty() {
        if let Some(mut conn) = Connection::load(&shard, key) {
            let mut early = upgrade.leftover;
            conn.on_bytes(&mut early);
            conn.park();
        }
    }
    if let Some(state) = shard.conns.borrow_mut().get_mut(key.0 as usize) {
        state.wake();
    }
}

/// Polls the shard's upgraded connections as they are woken; runs for the
/// shard's life. This is what a task per connection used to do, without
/// the task: a connection's state stays in the shard's table between polls.
pub async fn run_forever(shard: Rc<Shard>) {
    let queue = reactor::RunQueueReader::new();
    let mut batch: Vec<u32> = Vec::new();
    // When this task last gave the executor a turn (or found nothing queued,
    // so that its next wait does).
    let mut turn_began = std::time::Instant::now();
    loop {
        queue.next_batch(&mut batch).await;
        for (i, key) in batch.drain(..).enumerate() {
            poll(&shard, ConnKey(key));
            if i % CONNS_PER_SLICE == CONNS_PER_SLICE - 1 {
                glommio::yield_if_needed().await;
            }
        }
        // Keep a busy shard's batch allocated, but give back a burst's.
        if batch.capacity() > 4 * CONNS_PER_SLICE {
            batch = Vec::new();
        }
        if !queue.has_queued() {
            turn_began = std::time::Instant::now();
        } else if turn_began.elapsed() >= MAX_TURN {
            // The next batch would start at once, without this task ever
            // returning to the executor: a client that keeps its socket full
            // (every poll uses up MAX_ROUNDS and queues it again) would hold
            // the shard for as long as it sends, starving its epoll events,
            // accepts, flushes, timers and the bus (other shards' subscribes
            // waiting on this one's acks). Let the executor poll its reactor
            // and run the other tasks first. Not after every batch: under a
            // steady load (echo at full rate) small batches follow one
            // another, and a turn each would poll the reactor that often
            // for nothing (no difference measured: docs/benchmarks.md).
            glommio::executor().yield_task_queue_now().await;
            turn_began = std::time::Instant::now();
        }
    }
}

/// One poll of connection `key` (if it still exists): flush, read, decode,
/// answer; then its state is parked in its table slot again, or, once it
/// is done, it leaves the table.
fn poll(shard: &Rc<Shard>, key: ConnKey) {
    let Some(mut conn) = Connection::load(shard, key) else {
        return; // A stale key: its connection is gone.
    };
    match conn.poll_run() {
        Poll::Pending => conn.park(),
        Poll::Ready(reason) => conn.finish(reason),
    }
}

/// What the connection's poll keeps in its [`ConnState`] between polls.
#[derive(Debug, Default)]
pub(crate) struct Parked {
    /// A decoder holding a partial frame or an open fragmented message;
    /// `None` for the usual idle decoder, so idle connections keep none.
    decoder: Option<Box<Decoder>>,
    /// Channels this connection subscribed to.
    channels: ChannelList,
    read: ReadState,
    /// The peer's close frame has arrived.
    close_received: bool,
    /// Our write side is shut (after a failure's close frame went out).
    shut_write: bool,
    /// `decoder.partial` may hold whole frames not yet decoded (reads paused).
    backlog: bool,
    /// A request has been handled: `connect` is only valid before.
    started: bool,
}

/// What `sync_state` reads from the connection's `ConnState` each round.
struct Flags {
    closing: Option<CloseReason>,
    dead: bool,
    awaiting: bool,
    readable: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    /// Decoding frames.
    #[default]
    Open,
    /// The connection failed (1002/1007/1009): bytes are read and dropped
    /// until the peer closes, so our close frame is not lost to a reset.
    Discard,
    /// The peer closed its side or the socket errored.
    Eof,
}

/// One connection while it is being polled: its [`Parked`] state taken out
/// of the table (so the shard's tables stay free to borrow while its
/// requests are handled), put back by `park`.
struct Connection {
    shard: Rc<Shard>,
    /// The upgraded socket (owned by its `ConnState`), non-blocking I/O only.
    fd: RawFd,
    decoder: Decoder,
    session: Session,
    read: ReadState,
    /// The peer's close frame has arrived.
    close_received: bool,
    /// Our write side is shut (after a failure's close frame went out).
    shut_write: bool,
    /// `decoder.partial` may hold whole frames not yet decoded (reads paused).
    backlog: bool,
    /// How the connection wants its frames (a copy of its `ConnState`'s).
    wire: Wire,
}

impl Connection {
    /// Takes connection `key`'s parked state out of its table slot, and
    /// lets wake-ups from here on queue it for another poll.
    fn load(shard: &Rc<Shard>, key: ConnKey) -> Option<Connection> {
        let mut conns = shard.conns.borrow_mut();
        let state = conns.get_mut(key.0 as usize)?;
        state.scheduled = false;
        let parked = std::mem::take(&mut state.parked);
        Some(Connection {
            shard: shard.clone(),
            fd: state.fd(),
            decoder: parked.decoder.map(|d| *d).unwrap_or_default(),
            session: Session {
                route: state.route,
                encoding: state.wire.encoding(),
                key,
                seq: state.seq,
                channels: parked.channels,
                started: parked.started,
            },
            read: parked.read,
            close_received: parked.close_received,
            shut_write: parked.shut_write,
            backlog: parked.backlog,
            wire: state.wire,
        })
    }

    /// Puts the state back into the table slot until the next poll.
    fn park(self) {
        let mut conns = self.shard.conns.borrow_mut();
        let Some(state) = conns.get_mut(self.session.key.0 as usize) else {
            return;
        };
        state.parked = Parked {
            decoder: (!self.decoder.is_idle()).then(|| Box::new(self.decoder)),
            channels: self.session.channels,
            read: self.read,
            close_received: self.close_received,
            shut_write: self.shut_write,
            backlog: self.backlog,
            started: self.session.started,
        };
    }

    /// The connection is done: it leaves every table and count, and its
    /// socket is closed.
    fn finish(self, reason: CloseReason) {
        let shard = &self.shard;
        shard.metrics.on_close(reason);
        shard.unregister(self.session.key, self.session.channels.as_slice());
        shard.release();
        // Logged once the connection is gone from every count, so the line
        // is a signal that it was released.
        log::debug!(
            "closed conn={}-{} reason={reason}",
            shard.id.0,
            self.session.seq
        );
    }

    fn poll_run(&mut self) -> Poll<CloseReason> {
        for _ in 0..MAX_ROUNDS {
            let Some(Flags {
                closing,
                dead,
                awaiting,
                readable,
            }) = self.sync_state()
            else {
                return Poll::Ready(CloseReason::Abnormal);
            };
            if dead {
                return Poll::Ready(closing.unwrap_or(CloseReason::Abnormal));
            }
            let flushed = match self.flush() {
                Ok(flushed) => flushed,
                Err(e) => {
                    log::debug!(
                        "write failed conn={}-{}: {e}",
                        self.shard.id.0,
                        self.session.seq
                    );
                    return Poll::Ready(closing.unwrap_or(CloseReason::Abnormal));
                }
            };
            if self.read == ReadState::Eof {
                return Poll::Ready(closing.unwrap_or(CloseReason::Abnormal));
            }
            if let Some(reason) = closing {
                if flushed && self.close_received {
                    return Poll::Ready(reason);
                }
                if flushed && self.read == ReadState::Discard && !self.shut_write {
                    self.shut_write = true;
                    sys::shutdown_write(self.fd);
                }
            } else if awaiting {
                return Poll::Pending; // Woken when the subscribe's reply is queued.
            } else if self.backlog {
                self.drain_backlog();
                continue;
            } else if self.session.route.is_pubsub() && self.shard.bus.is_congested() {
                let waker = reactor::conn_waker(self.session.key.0);
                self.shard.bus.wait_uncongested(&waker);
                return Poll::Pending;
            } else if self.session.route.is_pubsub() && self.shard.redis_congested() {
                // Redis mode: publishes wait on Redis; read again once it caught up.
                let waker = reactor::conn_waker(self.session.key.0);
                self.shard.wait_redis_uncongested(&waker);
                return Poll::Pending;
            }
            if self.close_received {
                return Poll::Pending; // Nothing more to read; waiting for the flush.
            }
            if !readable {
                return Poll::Pending; // The socket's next epoll event wakes us.
            }
            match self.read_some() {
                Poll::Ready(()) => continue,
                Poll::Pending => return Poll::Pending,
            }
        }
        // Others' turn: polled again in the next batch.
        reactor::schedule(self.session.key.0);
        Poll::Pending
    }

    /// Reads the flags the shard may have changed.
    fn sync_state(&self) -> Option<Flags> {
        let conns = self.shard.conns.borrow();
        let state = conns.get(self.session.key.0 as usize)?;
        Some(Flags {
            closing: state.closing,
            dead: state.dead,
            awaiting: state.awaiting_ack,
            readable: can(state.ready, READABLE),
        })
    }

    /// Writes as much of the outbox as the socket takes
    /// ([`Shard::write_outbox`]). Ok(true) when the outbox is empty;
    /// Ok(false) when the socket is full (its next epoll event wakes the
    /// connection).
    ///
    /// What the poll writes is its own traffic (the greeting, replies,
    /// pings, or a backlog it took over from the flush pass), so a drained
    /// queue gives its storage back at once: a connection that only gets a
    /// greeting or a ping keeps nothing. Only the flush pass keeps a drained
    /// queue's storage for the next delivery (the ticker reclaims it).
    fn flush(&mut self) -> io::Result<bool> {
        let mut conns = self.shard.conns.borrow_mut();
        let Some(state) = conns.get_mut(self.session.key.0 as usize) else {
            return Ok(true);
        };
        let flushed = self.shard.write_outbox(state);
        if matches!(flushed, Ok(true)) {
            state.outbox.reclaim();
        }
        flushed
    }

    /// One `recv` into the shard's scratch buffer, decoded on the spot;
    /// only called while the socket may be read ([`can`]). Pending when it had
    /// nothing (its next epoll event wakes us).
    fn read_some(&mut self) -> Poll<()> {
        let shard = self.shard.clone();
        let mut scratch = shard.scratch.borrow_mut();
        let result = sys::recv(self.fd, &mut scratch[..]);
        if let Some(state) = shard
            .conns
            .borrow_mut()
            .get_mut(self.session.key.0 as usize)
        {
            after_io(&mut state.ready, READABLE, &result, scratch.len());
        }
        match result {
            Ok(0) => {
                self.read = ReadState::Eof;
                Poll::Ready(())
            }
            Ok(n) => {
                self.on_bytes(&mut scratch[..n]);
                Poll::Ready(())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Poll::Ready(()),
            Err(e) => {
                log::debug!("read failed conn={}-{}: {e}", shard.id.0, self.session.seq);
                self.read = ReadState::Eof;
                Poll::Ready(())
            }
        }
    }

    fn on_bytes(&mut self, data: &mut [u8]) {
        self.shard.metrics.bump(|c| c.bytes_in += data.len() as u64);
        if let Some(state) = self
            .shard
            .conns
            .borrow_mut()
            .get_mut(self.session.key.0 as usize)
        {
            state.unanswered_ping_ms = 0;
        }
        if self.read != ReadState::Open || self.close_received {
            return;
        }
        if self.decoder.partial.is_empty() {
            let consumed = self.decode(data);
            if !self.close_received && self.read == ReadState::Open {
                self.decoder.partial.extend_from_slice(&data[consumed..]);
            }
        } else {
            self.decoder.partial.extend_from_slice(data);
            self.drain_backlog();
        }
    }

    /// Decodes what `decoder.partial` holds, keeping the undecoded rest.
    fn drain_backlog(&mut self) {
        let mut buf = std::mem::take(&mut self.decoder.partial);
        let consumed = self.decode(&mut buf);
        if !self.close_received && self.read == ReadState::Open {
            buf.drain(..consumed);
            self.decoder.partial = buf;
        }
        self.decoder.shrink();
    }

    /// Runs the decoder over `buf`; returns the bytes consumed. Sets
    /// `backlog` when it stopped early to wait for a subscribe.
    fn decode(&mut self, buf: &mut [u8]) -> usize {
        let max = self.shard.config.config.max_message_size;
        let (shard, session, close_received) =
            (&self.shard, &mut self.session, &mut self.close_received);
        let mut paused = false;
        let mut inflater = self.wire.deflate().is_some().then(|| shard.inflater());
        let result = self
            .decoder
            .decode(buf, max, inflater.as_deref_mut(), |event| {
                let go_on = session.on_event(shard, event, close_received);
                paused = !go_on && !*close_received;
                go_on
            });
        if let Some(inflater) = &mut inflater {
            let n = inflater.take_count();
            shard.metrics.bump(|c| c.inflated_messages += n);
            inflater.shrink();
        }
        drop(inflater);
        self.backlog = paused;
        match result {
            Ok(consumed) => consumed,
            Err(reason) => {
                log::debug!(
                    "protocol failure conn={}-{} reason={reason}",
                    shard.id.0,
                    session.seq
                );
                let deadline = shard.now_ms() + Shard::ms(shard.config.config.close_timeout);
                if let Some(state) = shard.conns.borrow_mut().get_mut(session.key.0 as usize) {
                    state.begin_close(reason, deadline);
                }
                self.read = ReadState::Discard;
                self.decoder = Decoder::default();
                0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `ConnState` is the whole of an idle connection in user space, a
    /// million times over on a big box: growing it is a decision, not an
    /// accident.
    #[test]
    fn per_connection_state_stays_small() {
        assert!(
            std::mem::size_of::<ConnState>() <= 96,
            "the shard's table slot: {}",
            std::mem::size_of::<ConnState>()
        );
        assert!(
            std::mem::size_of::<Parked>() <= 40,
            "the parked state: {}",
            std::mem::size_of::<Parked>()
        );
    }
}
