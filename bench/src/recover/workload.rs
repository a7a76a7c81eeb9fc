//! The per-thread workload of `recover`: fixed-rate publishers on one
//! history channel, and subscribers that, when the main thread calls the
//! storm, close their sockets together, reconnect at once and subscribe
//! with `recover:true` from their last offset and epoch. No I/O of its
//! own: the driver owns the sockets and reopens the slots it is given.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::driver::{count, phase, Conn, Reopen, Shared, State, Workload};
use crate::fanout::other_message;
use crate::offsets::{self, OffsetTracker};
use crate::report::new_histogram;
use crate::run::ns_since_epoch;
use crate::seq::{write_stamp, Stamp};

/// Failure cause the driver records for a subscriber the storm disconnects.
pub const DISCONNECT: &str = "recover: disconnected by the bench";

/// Counters every thread adds to; the main thread reads them to pace the run.
#[derive(Default)]
pub struct RecoverShared {
    /// When the main thread called the storm, ns since the epoch (0: not yet).
    pub storm_ns: AtomicU64,
    /// Subscribers the storm disconnected.
    pub disconnected: AtomicU64,
    /// Recovering subscribes answered `recovered:true`.
    pub recovered: AtomicU64,
    /// Recovering subscribes answered `recovered:false` (the client must reload).
    pub not_recovered: AtomicU64,
    /// Publishes sent.
    pub published: AtomicU64,
    /// `published` acks received.
    pub acked: AtomicU64,
    /// Highest offset acked: the channel's last publication once every ack is in.
    pub top: AtomicU64,
    /// Messages subscribers received (flushed once per loop turn).
    pub delivered: AtomicU64,
    /// Why the server cannot serve the run, set by the first subscriber to see it.
    pub no_history: OnceLock<String>,
}

/// Per-run settings every thread gets.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Publisher connections (global ids `0..publishers`).
    pub publishers: usize,
    /// The history channel.
    pub channel: String,
    /// Data size of each publish.
    pub size: usize,
    /// Time between one publisher's publishes.
    pub publish_every: Duration,
}

/// Where a subscriber stands in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// First subscribe sent, no reply yet.
    Subscribing,
    /// Subscribed and reading, before the storm.
    Live,
    /// Closed by the storm; the driver has not reported the close yet.
    Disconnecting,
    /// Reopened (or reopening) with a recovering subscribe, no reply yet.
    Recovering,
    /// `recovered:true`.
    Recovered,
    /// `recovered:false`: reloaded at the new position.
    Reloaded,
}

enum Role {
    Publisher {
        idx: usize,
        next_due: Option<Instant>,
        next_id: u64,
    },
    Subscriber {
        offsets: OffsetTracker,
        epoch: String,
        stage: Stage,
        /// When the storm closed this subscriber's socket.
        closed_at: Option<Instant>,
        /// Messages received between the reconnect and the recovered reply.
        replayed: u64,
    },
}

/// One thread's publishers and subscribers, and what they counted.
pub struct RecoverLoad {
    roles: Vec<Role>,
    /// Local indexes of the publishers in `roles`.
    publishers: Vec<usize>,
    plan: Plan,
    sh: Arc<RecoverShared>,
    shared: Arc<Shared>,
    /// `{"type":"publish","channel":C,"id":` of every publish.
    publish_prefix: Vec<u8>,
    stormed: bool,
    reopen: VecDeque<usize>,
    scratch: Vec<u8>,
    pending_delivered: u64,
    /// Per subscriber, its close to its `recovered:true` reply (ns).
    pub recovery: Histogram<u64>,
    /// Latest `recovered:true` arrival on this thread, ns since the epoch.
    pub last_recovered_ns: u64,
    /// Messages replayed from history, per recovered subscriber.
    pub replayed: Histogram<u64>,
    /// Reconnects that failed before their recovery reply (each retried).
    pub reconnect_failures: u64,
    /// Closes the bench did not ask for.
    pub unexpected_closes: u64,
    /// Publishes refused by a full write backlog.
    pub skipped_backlog: u64,
    /// Server messages no role expected, by cause.
    pub server_errors: BTreeMap<String, u64>,
}

impl RecoverLoad {
    /// The workload of the connections with global indexes `ids`.
    pub fn new(ids: &[usize], plan: Plan, sh: Arc<RecoverShared>, shared: Arc<Shared>) -> Self {
        let roles: Vec<Role> = ids
            .iter()
            .map(|&g| match g < plan.publishers {
                true => Role::Publisher {
                    idx: g,
                    next_due: None,
                    next_id: 1,
                },
                false => Role::Subscriber {
                    offsets: OffsetTracker::default(),
                    epoch: String::new(),
                    stage: Stage::Subscribing,
                    closed_at: None,
                    replayed: 0,
                },
            })
            .collect();
        let publishers = (0..roles.len())
            .filter(|&i| matches!(roles[i], Role::Publisher { .. }))
            .collect();
        let publish_prefix =
            format!(r#"{{"type":"publish","channel":"{}","id":"#, plan.channel).into_bytes();
        RecoverLoad {
            roles,
            publishers,
            plan,
            sh,
            shared,
            publish_prefix,
            stormed: false,
            reopen: VecDeque::new(),
            scratch: Vec::new(),
            pending_delivered: 0,
            recovery: new_histogram(),
            last_recovered_ns: 0,
            replayed: Histogram::new(3).expect("valid histogram"),
            reconnect_failures: 0,
            unexpected_closes: 0,
            skipped_backlog: 0,
            server_errors: BTreeMap::new(),
        }
    }

    /// Every subscriber's offsets, for the final check.
    pub fn trackers(&self) -> impl Iterator<Item = &OffsetTracker> {
        self.roles.iter().filter_map(|r| match r {
            Role::Subscriber { offsets, .. } => Some(offsets),
            Role::Publisher { .. } => None,
        })
    }

    fn on_subscriber_text(&mut self, id: usize, text: &[u8], now: Instant) {
        let Role::Subscriber {
            offsets,
            epoch,
            stage,
            closed_at,
            replayed,
        } = &mut self.roles[id]
        else {
            return;
        };
        if text.starts_with(br#"{"type":"message""#) {
            match offsets::message_offset(text) {
                Some(o) => offsets.record(o),
                None => count(&mut self.server_errors, "message without offset".into()),
            }
            if *stage == Stage::Recovering {
                *replayed += 1;
            }
            self.pending_delivered += 1;
            return;
        }
        if !text.starts_with(br#"{"type":"subscribed""#) {
            if *stage == Stage::Subscribing && text.starts_with(br#"{"type":"error""#) {
                let detail = format!(
                    "it answered subscribe with {}",
                    String::from_utf8_lossy(text)
                );
                return self.refuse(&detail);
            }
            return other_message(&mut self.server_errors, text);
        }
        let Some(p) = offsets::reply_position(text) else {
            return self.refuse("its subscribed reply has no offset");
        };
        match *stage {
            Stage::Subscribing => {
                offsets.subscribed(p.offset);
                *epoch = p.epoch;
                *stage = Stage::Live;
                self.shared.ready.fetch_add(1, Ordering::Relaxed);
            }
            Stage::Recovering if p.recovered == Some(true) => {
                *stage = Stage::Recovered;
                let took = closed_at.map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
                self.recovery
                    .saturating_record(took.as_nanos().max(1) as u64);
                self.replayed.saturating_record(*replayed);
                self.last_recovered_ns = self.last_recovered_ns.max(ns_since_epoch(now));
                self.sh.recovered.fetch_add(1, Ordering::Relaxed);
            }
            Stage::Recovering => {
                offsets.reload(p.offset);
                *epoch = p.epoch;
                *stage = Stage::Reloaded;
                self.sh.not_recovered.fetch_add(1, Ordering::Relaxed);
            }
            _ => count(
                &mut self.server_errors,
                "unexpected subscribed reply".into(),
            ),
        }
    }

    /// The server cannot serve the run: says why, once, and stops every thread.
    fn refuse(&self, detail: &str) {
        let _ = self
            .sh
            .no_history
            .set(offsets::no_history_error(&self.plan.channel, detail));
        self.shared.phase.store(phase::STOP, Ordering::Relaxed);
    }

    /// Closes every live subscriber's socket (a FIN, no close frame: the
    /// client vanished) and queues its slot to reopen at once.
    fn storm(&mut self, conns: &mut [Conn], now: Instant) {
        self.stormed = true;
        for (i, role) in self.roles.iter_mut().enumerate() {
            if let Role::Subscriber {
                stage, closed_at, ..
            } = role
            {
                if *stage == Stage::Live && conns[i].state == State::Open {
                    conns[i].drop_tcp(DISCONNECT);
                    *stage = Stage::Disconnecting;
                    *closed_at = Some(now);
                    self.sh.disconnected.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Sends every publish due by `now`; returns the wait until the next one.
    fn publish_due(&mut self, conns: &mut [Conn], now: Instant) -> Option<Duration> {
        let mut soonest: Option<Duration> = None;
        for k in 0..self.publishers.len() {
            let i = self.publishers[k];
            if conns[i].state != State::Open {
                continue;
            }
            let Role::Publisher {
                idx,
                next_due,
                next_id,
            } = &mut self.roles[i]
            else {
                continue;
            };
            let mut due = *next_due.get_or_insert(now);
            // Catch up on missed slots, bounded so reading is not starved.
            let mut burst = 0;
            while due <= now && burst < 256 {
                self.scratch.clear();
                self.scratch.extend_from_slice(&self.publish_prefix);
                self.scratch
                    .extend_from_slice(format!(r#"{next_id},"data":"#).as_bytes());
                let stamp = Stamp {
                    publisher: *idx as u64,
                    seq: *next_id,
                    sent_ns: ns_since_epoch(due),
                };
                write_stamp(&mut self.scratch, stamp, self.plan.size);
                self.scratch.push(b'}');
                if !conns[i].send_text(&self.scratch) {
                    self.skipped_backlog += 1;
                    break;
                }
                *next_id += 1;
                self.sh.published.fetch_add(1, Ordering::Relaxed);
                due += self.plan.publish_every;
                burst += 1;
            }
            *next_due = Some(due);
            let w = due.saturating_duration_since(now);
            soonest = Some(soonest.map_or(w, |s| s.min(w)));
        }
        soonest
    }
}

impl Workload for RecoverLoad {
    fn on_open(&mut self, id: usize, conn: &mut Conn, _now: Instant) {
        let channel = &self.plan.channel;
        match &self.roles[id] {
            Role::Publisher { .. } => {
                self.shared.ready.fetch_add(1, Ordering::Relaxed);
            }
            Role::Subscriber {
                stage: Stage::Recovering,
                offsets,
                epoch,
                ..
            } => {
                let msg = serde_json::json!({
                    "type": "subscribe", "channel": channel, "recover": true,
                    "offset": offsets.last(), "epoch": epoch,
                });
                conn.send_text(msg.to_string().as_bytes());
            }
            Role::Subscriber { .. } => {
                let msg = format!(r#"{{"type":"subscribe","channel":"{channel}"}}"#);
                conn.send_text(msg.as_bytes());
            }
        }
    }

    fn on_text(&mut self, id: usize, _conn: &mut Conn, text: &[u8], now: Instant) {
        match self.roles[id] {
            Role::Subscriber { .. } => self.on_subscriber_text(id, text, now),
            Role::Publisher { .. } if text.starts_with(br#"{"type":"published""#) => {
                match offsets::reply_position(text) {
                    Some(p) => {
                        self.sh.top.fetch_max(p.offset, Ordering::Relaxed);
                        self.sh.acked.fetch_add(1, Ordering::Relaxed);
                    }
                    None => self.refuse("its published reply has no offset"),
                }
            }
            Role::Publisher { .. } => other_message(&mut self.server_errors, text),
        }
    }

    fn on_closed(&mut self, id: usize, _was_open: bool) {
        if self.shared.phase() >= phase::STOP {
            return;
        }
        match &mut self.roles[id] {
            Role::Subscriber { stage, .. } if *stage == Stage::Disconnecting => {
                *stage = Stage::Recovering;
                self.reopen.push_back(id);
            }
            Role::Subscriber { stage, .. } if *stage == Stage::Recovering => {
                self.reconnect_failures += 1;
                self.reopen.push_back(id);
            }
            _ => self.unexpected_closes += 1,
        }
    }

    fn tick(&mut self, conns: &mut [Conn], phase: u8, now: Instant) -> Option<Duration> {
        if self.pending_delivered > 0 {
            let n = std::mem::take(&mut self.pending_delivered);
            self.sh.delivered.fetch_add(n, Ordering::Relaxed);
        }
        if !self.stormed && self.sh.storm_ns.load(Ordering::Relaxed) != 0 {
            self.storm(conns, now);
        }
        if phase != phase::RUN {
            return None;
        }
        self.publish_due(conns, now)
    }

    fn next_reopen(&mut self) -> Option<Reopen> {
        self.reopen.pop_front().map(|id| Reopen {
            id,
            abandon_upgrade: false,
        })
    }
}
