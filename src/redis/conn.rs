//! [`Client`]: one pipelined command connection per shard (PUBLISH, EVALSHA, reads), replies matched to callers in FIFO order; [`Script`].
//!
//! No subscriptions here (pubsub.rs): a SUBSCRIBEd connection accepts no
//! other commands in RESP2.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::future::Future;
use std::rc::Rc;
use std::time::Instant;

use bytes::BytesMut;
use futures_lite::future::or;
use glommio::timer::Timer;
use sha1::{Digest, Sha1};

use super::link::{self, LinkCore, LinkState, LinkStats, RedisError, RedisOptions, Session, Slot};
use super::resp::{Cmd, Reply};
use super::url::RedisUrl;

/// A shard-local pipelined Redis connection. Calls from any task of the
/// shard share it; every command queued in one executor turn leaves in one
/// write. The link task holds a reference: call [`Client::close`] to end it.
pub struct Client {
    core: Rc<LinkCore>,
    /// Commands encoded but not yet handed to the socket.
    out: RefCell<BytesMut>,
    /// One entry per command sent, oldest first: Redis answers in order.
    fifo: RefCell<VecDeque<Pending>>,
}

/// A command whose reply has not arrived.
struct Pending {
    sent_at: Instant,
    /// `None` for a liveness probe, whose reply nobody awaits.
    slot: Option<Rc<Slot<Result<Reply, RedisError>>>>,
}

impl Client {
    /// Starts the link task on the current glommio executor: connect, log
    /// in as `name`, reconnect with backoff until [`Client::close`].
    pub fn start(url: RedisUrl, opts: RedisOptions, name: &str) -> Rc<Client> {
        let client = Rc::new(Client {
            core: Rc::new(LinkCore::new(url, opts, name)),
            out: RefCell::new(BytesMut::new()),
            fifo: RefCell::new(VecDeque::new()),
        });
        glommio::spawn_local(link::run(client.clone())).detach();
        client
    }

    /// Sends `cmd` and waits for its reply. The command is queued when
    /// `call` is called, not when the future is first polled, so commands
    /// keep the order of the calls. Fails at once with `Unavailable` when
    /// the link is not up and `Busy` at `max_in_flight`; an error reply is
    /// `Server`. A timed-out call keeps its place in the FIFO, and its late
    /// reply is dropped.
    pub fn call(&self, cmd: Cmd) -> impl Future<Output = Result<Reply, RedisError>> + use<> {
        let sent = self.send(&cmd);
        let core = self.core.clone();
        async move {
            let result = match sent {
                Ok(slot) => {
                    let timeout = core.opts.command_timeout;
                    let expire = async {
                        Timer::new(timeout).await;
                        Err(RedisError::Timeout)
                    };
                    // The deadline first: a link declared dead by the same
                    // silence fills the slot at about the same time, and the
                    // caller should learn it was a timeout.
                    match or(expire, slot.wait()).await {
                        Ok(Reply::Error(msg)) => Err(RedisError::Server(msg)),
                        other => other,
                    }
                }
                Err(err) => Err(err),
            };
            if result.is_err() {
                core.stats.borrow_mut().errors += 1;
            }
            result
        }
    }

    /// Runs `script` with EVALSHA; when Redis does not know it (NOSCRIPT,
    /// after a restart or SCRIPT FLUSH) sends it once with EVAL, which also
    /// caches it, so later calls are EVALSHA again.
    pub async fn eval(
        &self,
        script: &Script,
        keys: &[&[u8]],
        args: &[&[u8]],
    ) -> Result<Reply, RedisError> {
        match self
            .call(script.cmd("EVALSHA", &script.sha1, keys, args))
            .await
        {
            Err(RedisError::Server(msg)) if msg.starts_with("NOSCRIPT") => {
                self.call(script.cmd("EVAL", script.source, keys, args))
                    .await
            }
            other => other,
        }
    }

    /// The link's state now.
    pub fn state(&self) -> LinkState {
        self.core.state()
    }

    /// A copy of the link's counters.
    pub fn stats(&self) -> LinkStats {
        let mut stats = self.core.stats.borrow().clone();
        stats.in_flight = self.fifo.borrow().len();
        stats
    }

    /// Resolves when the link is up (at once if it is).
    pub fn wait_up(&self) -> impl Future<Output = ()> + use<> {
        self.core.wait_up()
    }

    /// Ends the link task; owed calls fail with `Unavailable`.
    pub fn close(&self) {
        self.core.close();
    }

    /// Queues `cmd` for the link task and returns the slot of its reply.
    fn send(&self, cmd: &Cmd) -> Result<Rc<Slot<Result<Reply, RedisError>>>, RedisError> {
        if self.core.state() != LinkState::Up {
            return Err(RedisError::Unavailable("redis link not up".into()));
        }
        let mut fifo = self.fifo.borrow_mut();
        if fifo.len() >= self.core.opts.max_in_flight {
            return Err(RedisError::Busy);
        }
        let slot = Slot::new();
        fifo.push_back(Pending {
            sent_at: Instant::now(),
            slot: Some(slot.clone()),
        });
        cmd.encode_into(&mut self.out.borrow_mut());
        self.core.stats.borrow_mut().commands += 1;
        self.core.wake_task();
        Ok(slot)
    }
}

impl Session for Client {
    fn core(&self) -> &LinkCore {
        &self.core
    }

    fn on_connected(&self) {
        self.core.set_up();
    }

    fn take_output(&self, out: &mut BytesMut) {
        let mut queued = self.out.borrow_mut();
        if out.is_empty() {
            // Hand over the whole buffer rather than copy it.
            std::mem::swap(out, &mut queued);
        } else {
            out.extend_from_slice(&queued);
            queued.clear();
        }
    }

    fn on_reply(&self, reply: Reply) -> Result<(), RedisError> {
        let Some(pending) = self.fifo.borrow_mut().pop_front() else {
            return Err(RedisError::Protocol("reply to no command".into()));
        };
        if let Some(slot) = pending.slot {
            let took = pending.sent_at.elapsed();
            let mut stats = self.core.stats.borrow_mut();
            stats.latency_sum_us += u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
            stats.latency_count += 1;
            drop(stats);
            slot.fill(Ok(reply));
        }
        Ok(())
    }

    fn awaiting_reply(&self) -> bool {
        !self.fifo.borrow().is_empty()
    }

    fn probe(&self) {
        self.fifo.borrow_mut().push_back(Pending {
            sent_at: Instant::now(),
            slot: None,
        });
        Cmd::new("PING").encode_into(&mut self.out.borrow_mut());
    }

    fn on_down(&self, err: &RedisError) {
        self.out.borrow_mut().clear();
        let owed: Vec<Pending> = self.fifo.borrow_mut().drain(..).collect();
        for slot in owed.into_iter().filter_map(|p| p.slot) {
            slot.fill(Err(RedisError::Unavailable(err.to_string())));
        }
    }
}

/// A Lua script and its SHA-1, computed once (keep scripts in statics or
/// build them at startup).
#[derive(Clone, Debug)]
pub struct Script {
    source: &'static str,
    sha1: String,
}

impl Script {
    /// Hashes `source` for EVALSHA.
    pub fn new(source: &'static str) -> Script {
        let mut sha1 = String::with_capacity(40);
        for byte in Sha1::digest(source.as_bytes()) {
            // Writing to a String cannot fail.
            let _ = write!(sha1, "{byte:02x}");
        }
        Script { source, sha1 }
    }

    /// The SHA-1 in hex, as `SCRIPT LOAD` returns it.
    pub fn sha1(&self) -> &str {
        &self.sha1
    }

    fn cmd(&self, verb: &str, body: &str, keys: &[&[u8]], args: &[&[u8]]) -> Cmd {
        let mut cmd = Cmd::new(verb).arg(body).arg_int(keys.len() as i64);
        keys.iter().chain(args).for_each(|a| cmd.push(a));
        cmd
    }
}
