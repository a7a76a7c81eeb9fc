//! `Shard`: everything one core owns (connections, channel table, bus
//! endpoint, scratch read buffer), and the publish path through it.
//!
//! A `Shard` is `!Send`: it is built inside its executor thread and only
//! ever reached through `Rc<Shard>`. Its `RefCell`s are borrowed inside
//! small synchronous functions, never across an `.await`. The few values
//! other threads may read live in [`Shared`], each written as documented.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use slab::Slab;

use crate::auth::Verifier;
use crate::bus::Bus;
use crate::config::Resolved;
use crate::connection::ConnState;
use crate::demo::Demo;
use crate::error::CloseReason;
use crate::history::HistoryStore;
use crate::http::Route;
use crate::latency::Latency;
use crate::metrics::ShardMetrics;
use crate::outbox::Frame;
use crate::reactor::EpollSet;
use crate::reactor::{with_timeout, Latch, Notify};
use crate::topics::TopicRouter;
use crate::wire::Wire;

/// Index of a shard, 0-based; also its position in the bus mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u16);

/// A connection's key in its shard's table; reused after the connection ends,
/// so anything that outlives the connection also keeps its `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnKey(pub u32);

/// Size of each shard's read buffer: one `recv` fills at most this much.
/// Shared by every connection on the shard, so idle connections hold none.
pub const SCRATCH_BYTES: usize = 64 * 1024;

/// Process-wide values read by any shard. Off the message path: written on
/// connect, disconnect and slow-consumer events only.
#[derive(Debug, Default)]
pub struct Shared {
    /// Open connections (including ones mid-handshake) across all shards;
    /// every shard adds on accept and subtracts on close.
    pub open_connections: AtomicUsize,
    /// Upgraded WebSocket connections across all shards (for /health).
    pub websockets: AtomicUsize,
    /// Connections closed as slow consumers since start, all shards.
    pub slow_consumer_closes: AtomicU64,
    /// Shard count, for /health.
    pub n_shards: usize,
    /// Shards whose listeners are accepting; ready when it equals `n_shards`.
    pub ready_shards: AtomicUsize,
    /// Redis mode: this process's id in the cluster (random at startup), so
    /// presence entries of different processes never collide.
    pub node_id: String,
    /// Redis mode: whether each shard's links are all up (index = shard id),
    /// written by that shard on its pub/sub links' events and each ticker
    /// pass; read by /health.
    pub redis_up: Box<[std::sync::atomic::AtomicBool]>,
    /// Verifies client tokens; built at startup from `--jwt-hmac-secret`
    /// and `--jwt-public-key` (or `--demo`'s key), read-only after.
    pub verifier: Option<Verifier>,
    /// `--demo`: the page's files and the key its tokens are signed with.
    pub demo: Option<Demo>,
}

/// What [`Shard::subscribe`] did.
#[derive(Debug)]
pub enum Subscription {
    /// Subscribed now; the shared channel name for the connection's list.
    Active(Arc<str>),
    /// Waiting for other shards; the connection must pause its reads.
    Waiting,
    /// The connection was already subscribed.
    Already,
    /// Not subscribed: an error was sent instead.
    Failed,
}

/// A subscribe whose "subscribed" reply waits for other shards to learn of
/// the channel, so that every publish after the reply reaches it.
#[derive(Debug, Default)]
struct PendingInterest {
    acks_left: usize,
    /// Each waiting subscribe: connection, its seq, its reply, and the
    /// request id for an error reply.
    replies: Vec<PendingReply>,
}

type PendingReply = (
    ConnKey,
    u64,
    Bytes,
    Option<Box<serde_json::value::RawValue>>,
);

mod cluster;
mod compress;
mod flush;
mod identity;
mod presence;
mod pubsub;
mod query;
mod streams;
mod users;

pub use identity::{personal_channel_owner, unix_now, Access};
pub use presence::Presence;
pub use query::{merge_channels, Query, RedisLinkReport, ShardReport};
pub use streams::HistoryAnswer;
pub use users::{UserSlot, Users};

pub(crate) use compress::Outgoing;

/// Everything one core owns. Not `Send`: it never leaves its executor thread.
pub struct Shard {
    /// This shard's id.
    pub id: ShardId,
    /// The resolved configuration, shared read-only by all shards.
    pub config: Arc<Resolved>,
    /// Values other shards read (connection count, for limits and /health).
    pub shared: Arc<Shared>,
    /// Open connections of this shard, by key.
    pub(crate) conns: RefCell<Slab<ConnState>>,
    /// Channel -> local subscribers and interested shards.
    pub(crate) topics: RefCell<TopicRouter>,
    /// User -> local connections (personal channels), and their claims.
    users: RefCell<Users>,
    /// Presence requests of this shard's clients waiting for other shards.
    presence_in_flight: Cell<usize>,
    /// History of the channels whose home is this shard.
    history: RefCell<HistoryStore>,
    /// History subscribes of this shard waiting on another shard's answer,
    /// by channel: while any waits, this shard's interest there stays.
    history_pending: RefCell<HashMap<Rc<str>, usize>>,
    /// Those subscribes, by the request id of their question to the home.
    history_waiters: RefCell<HashMap<u64, streams::HistoryWaiter>>,
    pending: RefCell<HashMap<Rc<str>, PendingInterest>>,
    /// Redis mode (`--redis`): the links and the homes' live positions;
    /// unset otherwise.
    cluster: std::cell::OnceCell<cluster::Cluster>,
    /// The only path to other shards.
    pub(crate) bus: Rc<Bus>,
    /// Readiness of every public socket of this shard (handshaking or upgraded).
    pub(crate) epoll: EpollSet,
    /// Connections fan-out queued frames to since the last flush pass.
    flush_list: RefCell<Vec<ConnKey>>,
    /// Wakes the flush task when the list stops being empty.
    flush_wake: Notify,
    /// `--send-path io-uring`: the ring the flush pass submits its sends on
    /// (made by the flush task when it starts); `None` for plain syscalls.
    send_ring: RefCell<Option<crate::reactor::SendRing>>,
    /// Read buffer lent to one connection at a time while it decodes.
    pub(crate) scratch: RefCell<Vec<u8>>,
    /// permessage-deflate: the shard's compressors (one per window size)
    /// and decompressor, each made the first time a connection needs it.
    codec: compress::Codec,
    /// Counters of this shard.
    pub(crate) metrics: ShardMetrics,
    /// Set when the process is shutting down.
    pub(crate) shutdown: Latch,
    /// Fired when the last connection leaves during a drain.
    pub(crate) drained: Notify,
    /// Sockets currently being refused with 503 (bounded).
    pub(crate) n_refusing: Cell<usize>,
    /// Admin connections open on this shard (bounded).
    pub(crate) n_admin: Cell<usize>,
    /// Fan-out and bus-hop latency of this shard, since the last reset.
    pub(crate) latency: RefCell<Latency>,
    /// Cross-shard queries this shard is waiting on, by request id.
    queries: RefCell<HashMap<u64, query::PendingQuery>>,
    next_req: Cell<u64>,
    epoch: Instant,
    next_seq: Cell<u64>,
    /// Gates [`Shard::may_warn`].
    warn_gate: RateGate,
}

/// Connection-table slots one ticker pass visits. A slot costs 20-70 ns
/// (most of it the cache miss on its `ConnState`; 135 µs for 2,048 slots was
/// measured with 18,000 idle connections on a loaded host), so a pass stays
/// under ~70 µs, and a million connections take ~1,000 passes a cycle.
const TICK_SLICE: usize = 1024;

/// Shortest gap between two per-connection warnings of one shard, so a
/// failure that hits every connection (an exhausted kernel limit) logs a
/// line every 10 s instead of one per connection.
const WARN_EVERY_MS: u64 = 10_000;

/// `log!` at `$level` at most once per 10 s per shard (its `may_warn`
/// gate), at `debug!` otherwise: for failures that could repeat per
/// connection or per retry. A macro so the line keeps its caller's target.
macro_rules! log_limited {
    ($shard:expr, $level:expr, $($arg:tt)+) => {{
        let level = if $shard.may_warn() { $level } else { log::Level::Debug };
        log::log!(level, $($arg)+);
    }};
}
pub(crate) use log_limited;

/// Says yes at most once per interval (for rate-limited logging).
#[derive(Debug, Default)]
struct RateGate {
    /// When it last said yes (ms, never 0); 0: never.
    last_ms: Cell<u64>,
}

impl RateGate {
    /// True if `every_ms` have passed since the last true (or none was given).
    fn allow(&self, now_ms: u64, every_ms: u64) -> bool {
        let last = self.last_ms.get();
        if last != 0 && now_ms.saturating_sub(last) < every_ms {
            return false;
        }
        self.last_ms.set(now_ms);
        true
    }
}

impl Shard {
    /// Builds the shard's state inside its executor thread.
    pub fn new(
        id: ShardId,
        config: Arc<Resolved>,
        shared: Arc<Shared>,
        bus: Rc<Bus>,
        epoll: EpollSet,
    ) -> Shard {
        let history = streams::new_store(&config.config, shared.n_shards, id);
        Shard {
            id,
            config,
            shared,
            conns: RefCell::new(Slab::new()),
            topics: RefCell::new(TopicRouter::default()),
            users: RefCell::new(Users::default()),
            presence_in_flight: Cell::new(0),
            history: RefCell::new(history),
            history_pending: RefCell::new(HashMap::new()),
            history_waiters: RefCell::new(HashMap::new()),
            pending: RefCell::new(HashMap::new()),
            cluster: std::cell::OnceCell::new(),
            bus,
            epoll,
            flush_list: RefCell::new(Vec::new()),
            flush_wake: Notify::default(),
            send_ring: RefCell::new(None),
            scratch: RefCell::new(vec![0; SCRATCH_BYTES]),
            codec: compress::Codec::default(),
            metrics: ShardMetrics::default(),
            shutdown: Latch::default(),
            drained: Notify::default(),
            n_refusing: Cell::new(0),
            n_admin: Cell::new(0),
            latency: RefCell::new(Latency::default()),
            queries: RefCell::new(HashMap::new()),
            next_req: Cell::new(0),
            epoch: Instant::now(),
            next_seq: Cell::new(0),
            warn_gate: RateGate::default(),
        }
    }

    /// Milliseconds since the shard started, never 0 (0 means "unset").
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// True at most once per 10 s: gates a `warn!`/`error!` that could otherwise
    /// repeat per connection or per retry (callers log at `debug!` otherwise).
    pub fn may_warn(&self) -> bool {
        self.warn_gate.allow(self.now_ms(), WARN_EVERY_MS)
    }

    /// Milliseconds a `Duration` spans, for deadlines against [`Shard::now_ms`].
    pub fn ms(d: Duration) -> u64 {
        d.as_millis() as u64
    }

    /// Takes a connection slot under `--max-connections`; false when full.
    pub fn try_admit(&self) -> bool {
        let prev = self.shared.open_connections.fetch_add(1, Ordering::Relaxed);
        if prev >= self.config.max_connections {
            self.shared.open_connections.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Gives back a slot taken by [`Shard::try_admit`].
    pub fn release(&self) {
        let before = self.shared.open_connections.fetch_sub(1, Ordering::Relaxed);
        if before == 1 {
            // The last connection of the process is gone: hand the heap that
            // connections used back to the kernel, so RSS falls back to what
            // is really in use (glibc keeps freed memory otherwise, and an
            // operator could not tell a leak from a high-water mark).
            let started = Instant::now();
            crate::sys::release_free_memory();
            log::debug!(
                "no connections left, free heap released in {:?}",
                started.elapsed()
            );
        }
    }

    /// Registers a new upgraded connection on socket `fd` (the table owns
    /// it from now on); returns its key and sequence number.
    pub fn register(&self, fd: OwnedFd, route: Route, wire: Wire) -> (ConnKey, u64) {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        let now = self.now_ms();
        let mut conns = self.conns.borrow_mut();
        let entry = conns.vacant_entry();
        let key = entry.key();
        entry.insert(ConnState::new(key as u32, fd, seq, now, route, wire));
        self.shared.websockets.fetch_add(1, Ordering::Relaxed);
        (ConnKey(key as u32), seq)
    }

    /// Removes a finished connection, its subscriptions (announcing its
    /// leave where join/leave is on) and its place in the user index.
    pub fn unregister(&self, key: ConnKey, channels: &[Arc<str>]) {
        for channel in channels {
            self.unsubscribe(key, channel);
        }
        self.detach_user(key);
        let mut conns = self.conns.borrow_mut();
        if conns.try_remove(key.0 as usize).is_some() {
            self.shared.websockets.fetch_sub(1, Ordering::Relaxed);
        }
        if conns.is_empty() {
            // The tables keep their high-water capacity while in use (no
            // reallocation under churn); an empty shard gives it back.
            conns.shrink_to_fit();
            self.topics.borrow_mut().shrink_to_fit();
            *self.flush_list.borrow_mut() = Vec::new();
            if self.shutdown.is_set() {
                self.drained.fire();
            }
        }
    }

    /// Marks connection `key` ready (`READABLE`/`WRITABLE` bits) as epoll
    /// reported, if it is still the one whose `seq` has these low 31 bits,
    /// and wakes it.
    pub(crate) fn on_readiness(&self, key: ConnKey, seq: u32, ready: u8) {
        if let Some(conn) = self.conns.borrow_mut().get_mut(key.0 as usize) {
            if conn.seq as u32 & 0x7fff_ffff == seq {
                conn.on_readiness(ready);
            }
        }
    }

    /// Queues a frame for one local connection (a reply).
    pub fn send_to(&self, key: ConnKey, frame: Bytes) {
        if let Some(conn) = self.conns.borrow_mut().get_mut(key.0 as usize) {
            self.deliver(key, conn, Frame::Own(frame));
        }
    }

    /// Queues a reply for connection `key` if it is still the one with
    /// `seq` (for answers that come back after a wait).
    pub fn send_to_conn(&self, key: ConnKey, seq: u64, frame: Bytes) {
        let same = self
            .conns
            .borrow()
            .get(key.0 as usize)
            .is_some_and(|c| c.seq == seq);
        if same {
            self.send_to(key, frame);
        }
    }

    /// An error reply in the connection's protocol: /ws's, or Centrifugo's
    /// in `centrifugo`'s encoding (for the reply paths the shard itself
    /// answers: subscribes that waited on other shards).
    pub(crate) fn error_frame(
        &self,
        centrifugo: Option<crate::centrifugo::Encoding>,
        code: crate::message::ErrorCode,
        message: String,
        id: Option<&serde_json::value::RawValue>,
    ) -> Bytes {
        self.metrics.on_request_error(code);
        match centrifugo {
            Some(encoding) => {
                let id = crate::centrifugo::command_id(id);
                crate::centrifugo::request_error(encoding, id, code, message)
            }
            None => crate::message::error(&crate::message::RequestError { code, message, id }),
        }
    }

    /// Queues `frame` for connection `key` and marks it for the next flush
    /// pass, closing it as a slow consumer when over the limit.
    /// A reply to a connection in another form than the native one
    /// (another encoding, permessage-deflate) is converted here (a shared
    /// frame comes already in its form: see [`Shard::frame_for`]); one with
    /// no form in the connection's encoding is not sent.
    pub(crate) fn deliver(&self, key: ConnKey, conn: &mut ConnState, frame: Frame) {
        let frame = match frame {
            Frame::Own(_) if !conn.wire.is_native() => match self.form_of(frame, conn.wire) {
                Some(frame) => frame,
                None => return,
            },
            frame => frame,
        };
        let limit = self.config.config.max_outbound_bytes;
        if conn.push(frame, limit) {
            self.mark_dirty(key, conn);
            return;
        }
        // Over the limit: cut this subscriber off; the publisher never waits.
        // The clock is read only here, not once per delivery.
        let deadline = self.now_ms() + Self::ms(self.config.config.close_timeout);
        if conn.begin_close(CloseReason::SlowConsumer, deadline) {
            self.shared
                .slow_consumer_closes
                .fetch_add(1, Ordering::Relaxed);
            log::debug!(
                "slow consumer closed conn={}-{} limit={limit}",
                self.id.0,
                conn.seq
            );
        }
    }

    /// Heartbeats and deadlines: visits every connection once per `cycle`,
    /// for the shard's life, in passes of at most `TICK_SLICE` table
    /// slots spread evenly over the cycle, so no pass stalls the shard's
    /// deliveries for long however many connections it holds.
    pub async fn tick_forever(self: Rc<Self>, cycle: Duration) {
        let mut cursor = 0;
        loop {
            let slots = self.conns.borrow().capacity().max(1);
            let passes = slots.div_ceil(TICK_SLICE) as u32;
            glommio::timer::sleep(cycle / passes).await;
            // CPU time, not wall time: on a busy host the thread may be
            // descheduled mid-pass, which is not the pass's cost.
            let started = crate::sys::thread_cpu_ns();
            cursor = self.tick_slice(cursor);
            self.expire_history();
            self.note_redis_state();
            let took = crate::sys::thread_cpu_ns().saturating_sub(started);
            self.metrics.bump(|c| {
                c.ticker_passes += 1;
                c.ticker_pass_max_ns = c.ticker_pass_max_ns.max(took);
            });
        }
    }

    /// One ticker pass over table slots `from..from + TICK_SLICE`; returns
    /// where the next pass starts (0 after the end of the table).
    fn tick_slice(&self, from: usize) -> usize {
        let cfg = &self.config.config;
        let (ping, pong, close) = (
            Self::ms(cfg.ping_interval),
            Self::ms(cfg.pong_timeout),
            Self::ms(cfg.close_timeout),
        );
        let now = self.now_ms();
        let mut conns = self.conns.borrow_mut();
        let end = from + TICK_SLICE;
        for key in from..end {
            if let Some(conn) = conns.get_mut(key) {
                conn.tick(now, ping, pong, now + close);
            }
        }
        if end >= conns.capacity() {
            0
        } else {
            end
        }
    }

    /// Starts the drain: every connection gets close 1001 and until
    /// `--shutdown-timeout` to answer. Returns when all are gone or time is up.
    pub async fn drain(self: &Rc<Self>) {
        let timeout = self.config.config.shutdown_timeout;
        let deadline = self.now_ms() + Self::ms(timeout);
        let n = {
            let mut conns = self.conns.borrow_mut();
            for (_, conn) in conns.iter_mut() {
                conn.begin_close(CloseReason::GoingAway, deadline);
            }
            conns.len()
        };
        log::info!("draining connections={n} timeout={timeout:?}");
        if n > 0 && with_timeout(timeout, self.drained.wait()).await.is_none() {
            let left = self.conns.borrow().len();
            if left > 0 {
                log::warn!("shutdown timeout reached connections_left={left}");
            }
        }
        self.metrics.log_summary();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_gate_allows_once_per_interval() {
        let gate = RateGate::default();
        assert!(gate.allow(5, 10_000), "the first call passes");
        assert!(!gate.allow(6, 10_000));
        assert!(!gate.allow(10_004, 10_000));
        assert!(gate.allow(10_005, 10_000), "a full interval later");
        assert!(!gate.allow(10_006, 10_000));
    }
}
