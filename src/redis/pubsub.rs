//! [`Subscriber`]: one SUBSCRIBE-mode connection, its wanted channel set, batched (re)subscribes and the liveness PING; messages go to a callback.
//!
//! Redis confirms every channel of a SUBSCRIBE or UNSUBSCRIBE with its own
//! reply, in the order the channels were sent, and answers a PING in order
//! too; only `message` pushes arrive unasked. So one FIFO of expected
//! confirmations matches every reply to the request that caused it, which
//! is what makes subscribe, unsubscribe, subscribe of one channel in quick
//! succession end in the right state.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use super::link::{self, LinkCore, LinkState, LinkStats, RedisError, RedisOptions, Session, Slot};
use super::resp::{parse_push, Cmd, Push, Reply};
use super::url::RedisUrl;

/// Channels per SUBSCRIBE or UNSUBSCRIBE command, as Centrifugo batches:
/// keeps one command (and Redis's work on it) small during a mass resubscribe.
pub const MAX_CHANNELS_PER_COMMAND: usize = 512;

/// What the subscriber tells its owner, synchronously from the read loop.
#[derive(Debug)]
pub enum PubSubEvent<'a> {
    /// A publication on a wanted channel, in the order Redis sent them.
    Message {
        /// The channel.
        channel: &'a [u8],
        /// The published bytes (a view into the read buffer).
        payload: Bytes,
    },
    /// Connected (again) and every wanted channel confirmed.
    Up,
    /// The link was lost; messages published until the next `Up` are lost.
    Down,
}

/// The callback type of [`Subscriber::start`]; it must not block.
pub type OnEvent = Box<dyn Fn(PubSubEvent<'_>)>;

/// A shard-local SUBSCRIBE connection. The link task holds a reference:
/// call [`Subscriber::close`] to end it.
pub struct Subscriber {
    core: Rc<LinkCore>,
    on_event: OnEvent,
    /// Channels that should be subscribed; `true` once Redis confirmed
    /// one since it was added (a failed first subscribe removes it again).
    wanted: RefCell<HashMap<Bytes, bool>>,
    /// Requests not yet written, in order.
    queued: RefCell<Vec<(Kind, Bytes)>>,
    /// Confirmations owed, in the order Redis will send them.
    expected: RefCell<VecDeque<Expected>>,
    /// Resubscribe confirmations still owed before `Up`.
    resyncing: Cell<usize>,
    /// An `Up` event was sent and no `Down` since.
    announced_up: Cell<bool>,
    /// Logged in on a live connection (Up or resubscribing).
    connected: Cell<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Subscribe,
    Unsubscribe,
    Ping,
}

struct Expected {
    kind: Kind,
    channel: Bytes,
    /// The caller of [`Subscriber::subscribe`] waiting for this one.
    waiter: Option<Rc<Slot<Result<(), RedisError>>>>,
    /// Part of the resubscribe after a (re)connect.
    resync: bool,
}

impl Subscriber {
    /// Starts the link task on the current glommio executor; `on_event` is
    /// called from it and must not block (hand messages on, don't await).
    pub fn start(
        url: RedisUrl,
        opts: RedisOptions,
        name: &str,
        on_event: OnEvent,
    ) -> Rc<Subscriber> {
        let subscriber = Rc::new(Subscriber {
            core: Rc::new(LinkCore::new(url, opts, name)),
            on_event,
            wanted: RefCell::new(HashMap::new()),
            queued: RefCell::new(Vec::new()),
            expected: RefCell::new(VecDeque::new()),
            resyncing: Cell::new(0),
            announced_up: Cell::new(false),
            connected: Cell::new(false),
        });
        glommio::spawn_local(link::run(subscriber.clone())).detach();
        subscriber
    }

    /// Subscribes to `channel`; resolves when Redis confirms. Takes effect
    /// when called (not when first polled), so subscribes and unsubscribes
    /// keep the order of the calls. While the link is not up it fails at
    /// once with `Unavailable` and the channel is not added; if the link is
    /// lost before the confirmation it fails the same way (and the channel
    /// is removed unless Redis had confirmed it before).
    pub fn subscribe(
        &self,
        channel: Bytes,
    ) -> impl Future<Output = Result<(), RedisError>> + use<> {
        let queued = self.try_subscribe(channel);
        async move { queued?.wait().await }
    }

    /// Forgets `channel`: no more messages are delivered for it, and an
    /// UNSUBSCRIBE is sent when connected.
    pub fn unsubscribe(&self, channel: &[u8]) {
        let Some((channel, _)) = self.wanted.borrow_mut().remove_entry(channel) else {
            return;
        };
        if self.connected.get() {
            self.queue(Kind::Unsubscribe, channel, None, false);
        }
    }

    /// The link's state now (`Up` only once every wanted channel is confirmed).
    pub fn state(&self) -> LinkState {
        self.core.state()
    }

    /// A copy of the link's counters.
    pub fn stats(&self) -> LinkStats {
        let mut stats = self.core.stats.borrow().clone();
        stats.in_flight = self.expected.borrow().len();
        stats
    }

    /// Resolves when the link is up (at once if it is).
    pub fn wait_up(&self) -> impl Future<Output = ()> + use<> {
        self.core.wait_up()
    }

    /// Ends the link task.
    pub fn close(&self) {
        self.core.close();
    }

    fn try_subscribe(
        &self,
        channel: Bytes,
    ) -> Result<Rc<Slot<Result<(), RedisError>>>, RedisError> {
        if self.core.state() != LinkState::Up {
            return Err(RedisError::Unavailable("redis link not up".into()));
        }
        if self.expected.borrow().len() >= self.core.opts.max_in_flight {
            return Err(RedisError::Busy);
        }
        self.wanted
            .borrow_mut()
            .entry(channel.clone())
            .or_insert(false);
        let slot = Slot::new();
        self.queue(Kind::Subscribe, channel, Some(slot.clone()), false);
        self.core.stats.borrow_mut().commands += 1;
        Ok(slot)
    }

    fn queue(
        &self,
        kind: Kind,
        channel: Bytes,
        waiter: Option<Rc<Slot<Result<(), RedisError>>>>,
        resync: bool,
    ) {
        self.queued.borrow_mut().push((kind, channel.clone()));
        self.expected.borrow_mut().push_back(Expected {
            kind,
            channel,
            waiter,
            resync,
        });
        self.core.wake_task();
    }

    fn confirmed(&self, kind: Kind, channel: &[u8]) -> Result<(), RedisError> {
        let Some(expected) = self.expected.borrow_mut().pop_front() else {
            return Err(RedisError::Protocol(format!(
                "unasked {kind:?} confirmation"
            )));
        };
        if expected.kind != kind || expected.channel != channel {
            return Err(RedisError::Protocol(format!(
                "{kind:?} confirmation out of order (expected {:?})",
                expected.kind
            )));
        }
        if kind == Kind::Subscribe {
            if let Some(seen) = self.wanted.borrow_mut().get_mut(channel) {
                *seen = true;
            }
        }
        if let Some(waiter) = expected.waiter {
            waiter.fill(Ok(()));
        }
        if expected.resync {
            let left = self.resyncing.get() - 1;
            self.resyncing.set(left);
            if left == 0 {
                self.announce_up();
            }
        }
        Ok(())
    }

    fn announce_up(&self) {
        self.core.set_up();
        self.announced_up.set(true);
        (self.on_event)(PubSubEvent::Up);
    }
}

impl Session for Subscriber {
    fn core(&self) -> &LinkCore {
        &self.core
    }

    fn on_connected(&self) {
        self.connected.set(true);
        let channels: Vec<Bytes> = self.wanted.borrow().keys().cloned().collect();
        self.resyncing.set(channels.len());
        if channels.is_empty() {
            return self.announce_up();
        }
        for channel in channels {
            self.queue(Kind::Subscribe, channel, None, true);
        }
    }

    fn take_output(&self, out: &mut BytesMut) {
        let queued = std::mem::take(&mut *self.queued.borrow_mut());
        let mut rest = &queued[..];
        while let Some((kind, _)) = rest.first() {
            let run = rest
                .iter()
                .take(MAX_CHANNELS_PER_COMMAND)
                .take_while(|(k, _)| k == kind)
                .count();
            let mut cmd = Cmd::new(match kind {
                Kind::Subscribe => "SUBSCRIBE",
                Kind::Unsubscribe => "UNSUBSCRIBE",
                Kind::Ping => "PING",
            });
            if *kind == Kind::Ping {
                // Each PING is its own command and its own `pong`.
                cmd.encode_into(out);
                rest = &rest[1..];
                continue;
            }
            rest[..run]
                .iter()
                .for_each(|(_, channel)| cmd.push(channel));
            cmd.encode_into(out);
            rest = &rest[run..];
        }
    }

    fn on_reply(&self, reply: Reply) -> Result<(), RedisError> {
        match parse_push(reply) {
            Ok(Push::Message { channel, payload }) => {
                // Not after an unsubscribe, even if Redis has not confirmed it.
                if self.wanted.borrow().contains_key(&channel) {
                    self.core.stats.borrow_mut().messages += 1;
                    (self.on_event)(PubSubEvent::Message {
                        channel: &channel,
                        payload,
                    });
                }
                Ok(())
            }
            Ok(Push::Subscribed(channel)) => self.confirmed(Kind::Subscribe, &channel),
            Ok(Push::Unsubscribed(channel)) => self.confirmed(Kind::Unsubscribe, &channel),
            Ok(Push::Pong) => self.confirmed(Kind::Ping, b""),
            Err(Reply::Error(msg)) => Err(RedisError::Server(msg)),
            Err(other) => Err(RedisError::Protocol(format!("unexpected push {other:?}"))),
        }
    }

    fn awaiting_reply(&self) -> bool {
        !self.expected.borrow().is_empty()
    }

    fn probe(&self) {
        self.queue(Kind::Ping, Bytes::new(), None, false);
    }

    fn on_down(&self, err: &RedisError) {
        self.connected.set(false);
        self.queued.borrow_mut().clear();
        self.resyncing.set(0);
        let owed: Vec<Expected> = self.expected.borrow_mut().drain(..).collect();
        for expected in owed {
            let Some(waiter) = expected.waiter else {
                continue;
            };
            let mut wanted = self.wanted.borrow_mut();
            if wanted.get(&expected.channel) == Some(&false) {
                wanted.remove(&expected.channel);
            }
            drop(wanted);
            waiter.fill(Err(RedisError::Unavailable(err.to_string())));
        }
        if self.announced_up.replace(false) {
            (self.on_event)(PubSubEvent::Down);
        }
    }
}
