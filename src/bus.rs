//! The cross-shard mesh: one bounded glommio shared channel for every
//! ordered pair of shards, carrying [`BusMessage`]s.
//!
//! This is the only module that knows glommio channels. A send never waits:
//! when a channel is full the message joins a local overflow queue that a
//! forwarder task drains in order, and while any overflow exists the shard
//! pauses reading from its clients (back-pressure on publishers, never on
//! subscribers).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;

use bytes::Bytes;
use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use glommio::{GlommioError, ResourceType};

use crate::reactor::Notify;
use crate::shard::{Query, ShardId, ShardReport};

/// What shards tell each other.
#[derive(Debug)]
pub enum BusMessage {
    /// Fan this encoded frame out to the local subscribers of `channel`.
    Publish {
        /// Channel name.
        channel: Arc<str>,
        /// The complete WebSocket frame, shared by every subscriber.
        frame: Bytes,
        /// When the publish entered the server (`latency::now_ns`).
        published_at: u64,
    },
    /// At a history channel's home: fan this frame (a join or leave) out
    /// locally and to every other shard with subscribers except `from`,
    /// which delivered it to its own.
    Relay {
        /// Channel name.
        channel: Arc<str>,
        /// The complete WebSocket frame.
        frame: Bytes,
        /// The shard it came from.
        from: ShardId,
    },
    /// Send this frame to every local /ws client.
    Broadcast {
        /// The complete WebSocket frame.
        frame: Bytes,
    },
    /// Answer `query` with a `Reply` to shard `from`.
    Query {
        /// The asking shard.
        from: ShardId,
        /// The asker's request id, echoed in the reply.
        req: u64,
        /// What is asked.
        query: Query,
    },
    /// One shard's answer to a `Query`.
    Reply {
        /// The request id of the query.
        req: u64,
        /// The answer (boxed: it is large and rare).
        report: Box<ShardReport>,
    },
    /// Shard `from` now has subscribers for `channel`; answer with `InterestAck`.
    InterestAdded {
        /// Channel name.
        channel: Arc<str>,
        /// The shard that gained its first subscriber.
        from: ShardId,
    },
    /// Shard `from` no longer has subscribers for `channel`.
    InterestRemoved {
        /// Channel name.
        channel: Arc<str>,
        /// The shard that lost its last subscriber.
        from: ShardId,
    },
    /// Shard `from` has recorded an `InterestAdded` for `channel`.
    InterestAck {
        /// Channel name.
        channel: Arc<str>,
        /// The acknowledging shard.
        from: ShardId,
        /// False when the interest could not be recorded (Redis mode: the
        /// home's pub/sub subscription failed).
        ok: bool,
    },
}

/// The unconnected ends of the mesh for one shard, made before the shard
/// threads start (they are `Send`) and connected inside each executor.
pub struct MeshEnds {
    /// `senders[j]`: this shard -> shard j (None for itself).
    pub senders: Vec<Option<SharedSender<BusMessage>>>,
    /// `receivers[i]`: shard i -> this shard (None for itself).
    pub receivers: Vec<Option<SharedReceiver<BusMessage>>>,
}

/// Builds the full mesh: `n * (n - 1)` channels of `capacity` messages.
pub fn mesh(n: usize, capacity: usize) -> Vec<MeshEnds> {
    let mut ends: Vec<MeshEnds> = (0..n)
        .map(|_| MeshEnds {
            senders: (0..n).map(|_| None).collect(),
            receivers: (0..n).map(|_| None).collect(),
        })
        .collect();
    for from in 0..n {
        for to in (0..n).filter(|&to| to != from) {
            let (tx, rx) = shared_channel::new_bounded(capacity);
            ends[from].senders[to] = Some(tx);
            ends[to].receivers[from] = Some(rx);
        }
    }
    ends
}

/// One outgoing link: the connected channel plus its overflow queue.
struct Link {
    tx: ConnectedSender<BusMessage>,
    overflow: RefCell<VecDeque<BusMessage>>,
    /// Messages in `overflow` plus the one the forwarder is sending; while
    /// non-zero, new messages must queue behind them to keep order.
    queued: Cell<usize>,
    /// Wakes the forwarder when `overflow` gains a message.
    pending: Notify,
}

/// This shard's sending side of the mesh.
pub struct Bus {
    me: ShardId,
    links: Vec<Option<Link>>,
    /// Links whose overflow is non-empty.
    congested: Cell<usize>,
    /// Connections paused until congestion clears.
    waiters: RefCell<Vec<Waker>>,
    /// Messages that went through an overflow queue (for logs and metrics).
    n_overflowed: Cell<u64>,
    /// Messages sent, all links.
    n_sent: Cell<u64>,
}

impl Bus {
    /// Connects this shard's ends; every shard must do so concurrently.
    /// Returns the bus and the connected receivers, by peer.
    pub async fn connect(
        me: ShardId,
        ends: MeshEnds,
    ) -> (Bus, Vec<(ShardId, ConnectedReceiver<BusMessage>)>) {
        let senders: Vec<_> = ends
            .senders
            .into_iter()
            .map(|tx| tx.map(|tx| glommio::spawn_local(tx.connect())))
            .collect();
        let receivers: Vec<_> = ends
            .receivers
            .into_iter()
            .enumerate()
            .filter_map(|(i, rx)| {
                rx.map(|rx| (ShardId(i as u16), glommio::spawn_local(rx.connect())))
            })
            .collect();
        let mut links = Vec::with_capacity(senders.len());
        for tx in senders {
            links.push(match tx {
                Some(task) => Some(Link {
                    tx: task.await,
                    overflow: RefCell::new(VecDeque::new()),
                    queued: Cell::new(0),
                    pending: Notify::default(),
                }),
                None => None,
            });
        }
        let mut rxs = Vec::with_capacity(receivers.len());
        for (from, task) in receivers {
            rxs.push((from, task.await));
        }
        let bus = Bus {
            me,
            links,
            congested: Cell::new(0),
            waiters: RefCell::new(Vec::new()),
            n_overflowed: Cell::new(0),
            n_sent: Cell::new(0),
        };
        (bus, rxs)
    }

    /// This shard's id.
    pub fn me(&self) -> ShardId {
        self.me
    }

    /// Other shards' ids.
    pub fn peers(&self) -> impl Iterator<Item = ShardId> + '_ {
        self.links
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_some())
            .map(|(i, _)| ShardId(i as u16))
    }

    /// Number of other shards.
    pub fn n_peers(&self) -> usize {
        // One link slot per shard; only this shard's own slot is empty.
        self.links.len().saturating_sub(1)
    }

    /// Sends `msg` to shard `to` without waiting; order per destination is kept.
    pub fn send(&self, to: ShardId, msg: BusMessage) {
        let Some(Some(link)) = self.links.get(to.0 as usize) else {
            log::error!("bus send to unknown shard={}", to.0);
            return;
        };
        self.n_sent.set(self.n_sent.get() + 1);
        let msg = if link.queued.get() == 0 {
            match link.tx.try_send(msg) {
                Ok(()) => return,
                Err(GlommioError::WouldBlock(ResourceType::Channel(msg))) => {
                    self.congested.set(self.congested.get() + 1);
                    msg
                }
                Err(_) => return, // The peer shard has exited (shutdown); nobody to tell.
            }
        } else {
            msg
        };
        link.overflow.borrow_mut().push_back(msg);
        link.queued.set(link.queued.get() + 1);
        self.n_overflowed.set(self.n_overflowed.get() + 1);
        link.pending.fire();
    }

    /// True while some link has an overflow; readers should pause.
    pub fn is_congested(&self) -> bool {
        self.congested.get() > 0
    }

    /// Registers a connection to be woken once congestion clears.
    pub fn wait_uncongested(&self, waker: &Waker) {
        self.waiters.borrow_mut().push(waker.clone());
    }

    /// Messages sent to other shards since start.
    pub fn n_sent(&self) -> u64 {
        self.n_sent.get()
    }

    /// Messages waiting in overflow queues now.
    pub fn queued(&self) -> usize {
        self.links.iter().flatten().map(|l| l.queued.get()).sum()
    }

    /// Messages that had to wait in an overflow queue since start.
    pub fn n_overflowed(&self) -> u64 {
        self.n_overflowed.get()
    }

    /// Drains link `to`'s overflow into its channel, waiting for room; runs
    /// for the life of the shard (one task per peer).
    pub async fn forward(self: Rc<Self>, to: ShardId) {
        let Some(Some(link)) = self.links.get(to.0 as usize) else {
            return;
        };
        loop {
            link.pending.wait().await;
            if link.overflow.borrow().is_empty() {
                continue; // A stale wake-up from the previous episode.
            }
            // However this round ends (drained, peer gone, task dropped at
            // exit), dropping `_episode` ends the congestion it counted.
            let _episode = Episode { bus: &self, link };
            loop {
                let next = link.overflow.borrow_mut().pop_front();
                let Some(msg) = next else { break };
                if link.tx.send(msg).await.is_err() {
                    return; // The peer shard has exited; nothing more to deliver.
                }
                link.queued.set(link.queued.get() - 1);
            }
        }
    }

    /// One link's congestion episode is over: resume readers if it was the last.
    fn uncongest(&self) {
        self.congested.set(self.congested.get() - 1);
        if self.congested.get() == 0 {
            for waker in self.waiters.borrow_mut().drain(..) {
                waker.wake();
            }
        }
    }
}

/// One congestion episode of one link, held by its forwarder. `Bus::send`
/// counts the episode in `congested` when it queues the first overflow
/// message (`queued` 0 -> 1); dropping this guard empties the link and
/// uncounts it, so no way out of the forwarder (a drained queue, a peer
/// that has exited, the task dropped with its executor) leaves the shard's
/// readers paused.
struct Episode<'a> {
    /// The bus whose `congested` count this episode is part of.
    bus: &'a Bus,
    /// The congested link.
    link: &'a Link,
}

impl Drop for Episode<'_> {
    fn drop(&mut self) {
        // Empty already unless the peer is gone, in which case nothing queued
        // can be delivered, and later sends fail at `try_send` instead.
        self.link.overflow.borrow_mut().clear();
        self.link.queued.set(0);
        self.bus.uncongest();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use glommio::{LocalExecutorBuilder, Placement};

    fn probe(n: u64) -> BusMessage {
        BusMessage::Broadcast {
            frame: Bytes::from(n.to_string()),
        }
    }

    /// Shard 0 fills its one-message channel to shard 1 and queues a second
    /// message; shard 1 takes the first and exits, so the forwarder's send of
    /// the second fails. The episode must still end, or shard 0's readers
    /// would stay paused for good.
    #[test]
    fn congestion_ends_when_the_peer_exits_mid_episode() {
        // glommio's rings need memlock; raise it as the server does at start.
        let _ = crate::sys::raise_memlock();
        let mut ends = mesh(2, 1).into_iter();
        let (ends0, ends1) = (ends.next().unwrap(), ends.next().unwrap());
        let congested = Arc::new(AtomicBool::new(false));
        let congested1 = congested.clone();
        let peer = LocalExecutorBuilder::new(Placement::Unbound)
            .name("bus-test-1")
            .spawn(move || async move {
                let (_bus, mut rxs) = Bus::connect(ShardId(1), ends1).await;
                let (_, rx) = rxs.remove(0);
                while !congested1.load(Ordering::Acquire) {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
                assert!(rx.recv().await.is_some(), "the first message arrives");
                // Returning drops the receiver: this shard has exited.
            })
            .expect("spawn the peer executor");
        let me = LocalExecutorBuilder::new(Placement::Unbound)
            .name("bus-test-0")
            .spawn(move || async move {
                let (bus, _rxs) = Bus::connect(ShardId(0), ends0).await;
                let bus = Rc::new(bus);
                bus.send(ShardId(1), probe(1));
                bus.send(ShardId(1), probe(2));
                assert!(bus.is_congested(), "the second message overflowed");
                glommio::spawn_local(bus.clone().forward(ShardId(1))).detach();
                congested.store(true, Ordering::Release);
                let deadline = Instant::now() + Duration::from_secs(5);
                while bus.is_congested() && Instant::now() < deadline {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
                assert!(!bus.is_congested(), "congestion outlived the peer");
                assert_eq!(bus.queued(), 0);
                bus.send(ShardId(1), probe(3));
                assert_eq!(bus.queued(), 0, "nothing queues for an exited peer");
                assert!(!bus.is_congested());
            })
            .expect("spawn the executor");
        peer.join().expect("peer shard");
        me.join().expect("shard 0");
    }
}
