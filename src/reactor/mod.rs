//! The shard's reactor: how a shard learns that a socket can be read or
//! written, wakes the task or connection that cares, and bounds any wait by a timer. The
//! rest of the code uses it through the small surface re-exported here.
//!
//! Rules:
//! - Every public socket is in its shard's epoll set, edge-triggered, from
//!   its accept to its close; one task per shard waits on the epoll fd
//!   through glommio (one io_uring poll per shard, none per socket) and
//!   turns events into readiness bits in the socket's own state.
//! - `READABLE`/`WRITABLE` are edges: cleared by a short transfer or
//!   `EAGAIN`, after which the kernel raises a new edge when something
//!   changes. A task that stops for another reason (a subscribe waiting for
//!   acks, bus congestion) reads until `EAGAIN` when it resumes.
//! - A hang-up or error (`READ_CLOSED`/`WRITE_CLOSED`) is state, not an
//!   edge: reported once, often with the last bytes, it stays set through
//!   short transfers (`can`, `after_io`) so the handshake, serving and
//!   closing paths all see it and the connection is released at once.
//! - An upgraded connection has no task: waking it queues its table key
//!   in the shard's run queue (`run.rs`), and one task per shard polls
//!   the queued connections.
//! - Wake-ups are shard-local ([`Notify`], [`Latch`]): no atomics; every
//!   wait that could last is bounded by [`with_timeout`].
//!
//! `ready.rs` holds the bits and the rule, `epoll.rs` the epoll set and the
//! handshake stream, `notify.rs` the wake-ups and timeouts, `run.rs` the
//! run queue of connections to poll, `uring.rs` the `--send-path io-uring`
//! ring of batched sends.

mod epoll;
mod notify;
mod ready;
mod run;
mod uring;

pub use epoll::{EpollSet, EpollStream};
pub use notify::{with_timeout, Latch, Notify};
pub(crate) use ready::{after_io, can, READABLE, WRITABLE};
pub(crate) use run::{conn_waker, schedule, RunQueueReader};
pub use uring::SendRing;
