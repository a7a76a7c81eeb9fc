//! The soak's per-thread workload: fixed-rate publishers, subscribers that
//! are churned (RST, clean close, FIN then an abandoned handshake) and come
//! back, and per-interval delivery accounting for the subscribers that
//! stayed up. No I/O of its own: the driver owns the sockets.
//!
//! Every publish carries its interval `k` in `data` (`{"p":P,"s":S,"t":T,"k":K}`),
//! so a subscriber sorts arrivals into intervals without knowing where the
//! publishers' sequence numbers stood at a boundary. A subscriber counts for
//! interval k when its `subscribed` reply came before k began (the server
//! guarantees every later publish reaches it, docs/protocol.md) and it is
//! still open, not closing, when k is evaluated, `--drain` after k ended.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::driver::{phase, Conn, Reopen, Shared, State, Workload};
use crate::report::new_histogram;
use crate::run::ns_since_epoch;
use crate::seq::{number_after, parse_stamp, SeqTracker};

/// Failure cause the driver records for a churned connection reset with RST.
pub const CHURN_RST: &str = "churn: rst";
/// Failure cause for a churned connection closed with a FIN and no close frame.
pub const CHURN_FIN: &str = "churn: fin, then an abandoned handshake";

/// How a churned subscriber leaves; chosen round-robin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChurnKind {
    /// SO_LINGER 0, then close: the server sees a reset.
    Rst,
    /// Close frame 1000, wait for the server's close frame.
    Clean,
    /// TCP close with no close frame; the next attempt sends half the
    /// upgrade request and closes before the real reconnect.
    FinThenAbandon,
}

/// The three kinds, in the order they are used.
pub const KINDS: [ChurnKind; 3] = [ChurnKind::Rst, ChurnKind::Clean, ChurnKind::FinThenAbandon];

/// Totals of one interval, added to by every thread.
#[derive(Default)]
pub struct IntervalTotals {
    /// Subscribers that stayed up across the interval (those accounted).
    pub subs_up: AtomicU64,
    /// Deliveries owed to them.
    pub expected: AtomicU64,
    /// Deliveries they received, duplicates included.
    pub received: AtomicU64,
    /// Owed and never received.
    pub lost: AtomicU64,
    /// Received twice or more.
    pub duplicated: AtomicU64,
    /// Received after a higher number of the same stream.
    pub reordered: AtomicU64,
    /// Distinct arrivals beyond what was published (must be 0 too).
    pub extra: AtomicU64,
    /// Subscribers churned, by [`KINDS`] index.
    pub churned: [AtomicU64; 3],
    /// Reconnects that completed their upgrade.
    pub reconnected: AtomicU64,
    /// Open connections that closed without the bench asking.
    pub unexpected_closes: AtomicU64,
    /// Connects or upgrades that failed (abandoned ones excepted).
    pub failed_connects: AtomicU64,
    /// End-to-end latency of the deliveries published in this interval (ns),
    /// merged by each thread when it accounts the interval.
    pub latency: Mutex<Option<Histogram<u64>>>,
    /// Threads done evaluating this interval.
    pub evaluated_by: AtomicU64,
}

/// State shared by every thread of one run.
pub struct SoakShared {
    /// Interval publishers stamp (1-based; 0 during the warm-up).
    pub interval: AtomicU64,
    /// Per interval, nanoseconds since the epoch when it began.
    pub start_ns: Vec<AtomicU64>,
    /// Publishes per (interval, channel), at `k * channels + c`.
    pub published: Vec<AtomicU64>,
    /// Highest interval the main thread asks the threads to evaluate.
    pub eval_req: AtomicU64,
    /// Per interval (index 0: warm-up, never evaluated).
    pub totals: Vec<IntervalTotals>,
    /// Channels.
    pub channels: usize,
    /// Whether subscribers are churned (false for the warm-up).
    pub churn: bool,
}

impl SoakShared {
    /// Counters for `n` intervals over `channels` channels.
    pub fn new(n: usize, channels: usize, churn: bool) -> SoakShared {
        SoakShared {
            interval: AtomicU64::new(0),
            start_ns: (0..=n).map(|_| AtomicU64::new(0)).collect(),
            published: (0..(n + 1) * channels).map(|_| AtomicU64::new(0)).collect(),
            eval_req: AtomicU64::new(0),
            totals: (0..=n).map(|_| IntervalTotals::default()).collect(),
            channels,
            churn,
        }
    }

    /// The interval counters now apply to.
    fn now_totals(&self) -> &IntervalTotals {
        let k = self.interval.load(Ordering::Relaxed) as usize;
        &self.totals[k.min(self.totals.len() - 1)]
    }
}

/// Per-thread settings.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Publisher connections (global ids `0..publishers`).
    pub publishers: usize,
    /// Data size of each publish.
    pub size: usize,
    /// Time between one publisher's publishes.
    pub publish_every: Duration,
    /// Subscribers churned per minute, as a fraction of the subscribers.
    pub churn_per_min: f64,
}

/// What a closed or closing slot is expected to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Up (or first connecting): a close now is unexpected.
    Steady,
    /// Churned by the bench; reopen (abandoning the first attempt, or not).
    Churned { abandon: bool },
    /// The attempt is the abandoned handshake; its close is expected.
    Abandoning,
    /// A reconnect is under way.
    Reconnecting,
}

/// One subscriber's current connection: subscription time and streams.
struct Session {
    /// When `subscribed` arrived (ns since the epoch).
    acked_ns: Option<u64>,
    /// Per publisher: the first number seen and the tracker of later ones.
    streams: Vec<(Option<u64>, SeqTracker)>,
    /// Arrivals per interval not evaluated yet.
    counts: Vec<Count>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Count {
    k: u64,
    arrivals: u64,
    duplicated: u64,
    reordered: u64,
}

enum Role {
    Publisher {
        idx: usize,
        seqs: Vec<u64>,
        next_due: Option<Instant>,
        rr: usize,
        expect: Expect,
        ever_ready: bool,
    },
    Subscriber {
        channel: usize,
        session: Option<Session>,
        expect: Expect,
        ever_ready: bool,
    },
}

/// One thread's share of the population.
pub struct Soak {
    roles: Vec<Role>,
    publishers: Vec<usize>,
    subscribers: Vec<usize>,
    sh: Arc<SoakShared>,
    shared: Arc<Shared>,
    plan: Plan,
    prefixes: Vec<Vec<u8>>,
    next_churn: Option<Instant>,
    churn_every: Option<Duration>,
    kind_rr: usize,
    rng: u64,
    reopen: VecDeque<Reopen>,
    evaluated: u64,
    /// End-to-end latency of every delivery (ns).
    pub hist: Histogram<u64>,
    /// The same, per interval not yet accounted.
    hist_by_k: Vec<(u64, Histogram<u64>)>,
    /// Server messages no role expected, by type.
    pub server_errors: BTreeMap<String, u64>,
    /// Publishes sent.
    pub published: u64,
    /// Publishes refused because the connection's write backlog was full.
    pub skipped_backlog: u64,
    scratch: Vec<u8>,
}

/// The channel name of channel `c`.
pub fn channel_name(c: usize) -> String {
    format!("soak-{c}")
}

impl Soak {
    /// The workload for the connections with global ids `ids`.
    pub fn new(ids: &[usize], plan: Plan, sh: Arc<SoakShared>, shared: Arc<Shared>) -> Soak {
        let (p, k) = (plan.publishers, sh.channels);
        let roles: Vec<Role> = ids
            .iter()
            .map(|&g| match g < p {
                true => Role::Publisher {
                    idx: g,
                    seqs: vec![0; k],
                    next_due: None,
                    rr: g,
                    expect: Expect::Steady,
                    ever_ready: false,
                },
                false => Role::Subscriber {
                    channel: (g - p) % k,
                    session: None,
                    expect: Expect::Steady,
                    ever_ready: false,
                },
            })
            .collect();
        let publishers: Vec<usize> = (0..roles.len())
            .filter(|&i| matches!(roles[i], Role::Publisher { .. }))
            .collect();
        let subscribers: Vec<usize> = (0..roles.len())
            .filter(|&i| matches!(roles[i], Role::Subscriber { .. }))
            .collect();
        let per_min = plan.churn_per_min * subscribers.len() as f64;
        let churn_every =
            (sh.churn && per_min > 0.0).then(|| Duration::from_secs_f64(60.0 / per_min));
        let prefixes = (0..k)
            .map(|c| {
                format!(
                    r#"{{"type":"publish","channel":"{}","data":"#,
                    channel_name(c)
                )
                .into_bytes()
            })
            .collect();
        Soak {
            roles,
            publishers,
            subscribers,
            sh,
            shared,
            plan,
            prefixes,
            next_churn: None,
            churn_every,
            kind_rr: 0,
            rng: 0x9E37_79B9_7F4A_7C15 ^ ids.first().copied().unwrap_or(0) as u64,
            reopen: VecDeque::new(),
            evaluated: 0,
            hist: new_histogram(),
            hist_by_k: Vec::new(),
            server_errors: BTreeMap::new(),
            published: 0,
            skipped_backlog: 0,
            scratch: Vec::new(),
        }
    }

    /// Sends publisher `local`'s next message, stamped `at`; false if the backlog is full.
    fn publish(&mut self, local: usize, conn: &mut Conn, at: Instant) -> bool {
        let Role::Publisher { idx, seqs, rr, .. } = &mut self.roles[local] else {
            return false;
        };
        let ch = *rr % self.sh.channels;
        let k = self.sh.interval.load(Ordering::Relaxed);
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.prefixes[ch]);
        write_data(
            &mut self.scratch,
            *idx,
            seqs[ch],
            ns_since_epoch(at),
            k,
            self.plan.size,
        );
        self.scratch.push(b'}');
        if !conn.send_text(&self.scratch) {
            self.skipped_backlog += 1;
            return false;
        }
        seqs[ch] += 1;
        *rr += 1;
        let slot = (k as usize).min(self.sh.totals.len() - 1) * self.sh.channels + ch;
        self.sh.published[slot].fetch_add(1, Ordering::Relaxed);
        self.published += 1;
        true
    }

    fn on_subscriber_text(&mut self, local: usize, text: &[u8], now: Instant) {
        let Role::Subscriber {
            session,
            ever_ready,
            ..
        } = &mut self.roles[local]
        else {
            return;
        };
        if text.starts_with(br#"{"type":"message""#) {
            let (Some(s), Some(k)) = (parse_stamp(text), number_after(text, br#""k":"#)) else {
                crate::driver::count(&mut self.server_errors, "unparsable message".into());
                return;
            };
            let lat = ns_since_epoch(now).saturating_sub(s.sent_ns).max(1);
            self.hist.saturating_record(lat);
            match self.hist_by_k.iter_mut().find(|(x, _)| *x == k) {
                Some((_, h)) => h.saturating_record(lat),
                None => {
                    let mut h = new_histogram();
                    h.saturating_record(lat);
                    self.hist_by_k.push((k, h));
                }
            }
            // A churned subscriber may still get messages until its close completes.
            if let Some(sess) = session {
                sess.record(s.publisher as usize, s.seq, k);
            }
        } else if text.starts_with(br#"{"type":"subscribed""#) {
            if let Some(sess) = session {
                sess.acked_ns.get_or_insert(ns_since_epoch(now));
            }
            if !std::mem::replace(ever_ready, true) {
                self.shared.ready.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            crate::fanout::other_message(&mut self.server_errors, text);
        }
    }

    /// Fixed-rate publishing, as `fanout --rate` does it; returns the next due time.
    fn publish_due(&mut self, conns: &mut [Conn], now: Instant) -> Option<Duration> {
        let mut soonest: Option<Duration> = None;
        for k in 0..self.publishers.len() {
            let i = self.publishers[k];
            if conns[i].state != State::Open {
                continue;
            }
            let Role::Publisher { next_due, .. } = &mut self.roles[i] else {
                continue;
            };
            let mut due = *next_due.get_or_insert(now);
            // Catch up on missed slots, each stamped with its own intended time,
            // but bound the burst so reading is not starved.
            let mut burst = 0;
            while due <= now && burst < 256 {
                if !self.publish(i, &mut conns[i], due) {
                    break;
                }
                due += self.plan.publish_every;
                burst += 1;
            }
            if let Role::Publisher { next_due, .. } = &mut self.roles[i] {
                *next_due = Some(due);
            }
            let w = due.saturating_duration_since(now);
            soonest = Some(soonest.map_or(w, |s| s.min(w)));
        }
        soonest
    }

    /// Churns the subscribers that are due, spread evenly over time.
    fn churn_due(&mut self, conns: &mut [Conn], now: Instant) -> Option<Duration> {
        let every = self.churn_every?;
        let mut due = *self.next_churn.get_or_insert(now + every);
        let mut burst = 0;
        while due <= now && burst < 64 {
            due += every;
            burst += 1;
            let Some(i) = self.pick_victim(conns) else {
                continue;
            };
            let kind_idx = self.kind_rr % KINDS.len();
            self.kind_rr += 1;
            match KINDS[kind_idx] {
                ChurnKind::Rst => conns[i].abort(CHURN_RST),
                ChurnKind::Clean => conns[i].close_clean(now),
                ChurnKind::FinThenAbandon => conns[i].drop_tcp(CHURN_FIN),
            }
            if let Role::Subscriber {
                session, expect, ..
            } = &mut self.roles[i]
            {
                *session = None;
                *expect = Expect::Churned {
                    abandon: KINDS[kind_idx] == ChurnKind::FinThenAbandon,
                };
            }
            self.sh.now_totals().churned[kind_idx].fetch_add(1, Ordering::Relaxed);
        }
        self.next_churn = Some(due);
        Some(due.saturating_duration_since(now))
    }

    /// A random subscriber that is up and subscribed, if one turns up in a few tries.
    fn pick_victim(&mut self, conns: &[Conn]) -> Option<usize> {
        for _ in 0..16 {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let i = *self
                .subscribers
                .get((self.rng % self.subscribers.len().max(1) as u64) as usize)?;
            let up = matches!(&self.roles[i], Role::Subscriber { session: Some(s), expect: Expect::Steady, .. } if s.acked_ns.is_some());
            if up && conns[i].state == State::Open && !conns[i].is_closing() {
                return Some(i);
            }
        }
        None
    }

    /// Adds this thread's accounting of every interval up to `eval_req`.
    fn evaluate(&mut self, conns: &[Conn]) {
        let req = self.sh.eval_req.load(Ordering::Acquire);
        while self.evaluated < req {
            let k = self.evaluated + 1;
            let t = &self.sh.totals[k as usize];
            let start = self.sh.start_ns[k as usize].load(Ordering::Relaxed);
            let mut sum = [0u64; 7];
            for &i in &self.subscribers {
                let Role::Subscriber {
                    channel, session, ..
                } = &mut self.roles[i]
                else {
                    continue;
                };
                let Some(sess) = session else { continue };
                let c = sess.take(k);
                let up = sess.acked_ns.is_some_and(|a| a <= start)
                    && conns[i].state == State::Open
                    && !conns[i].is_closing();
                if !up {
                    continue;
                }
                let expected = self.sh.published[k as usize * self.sh.channels + *channel]
                    .load(Ordering::Relaxed);
                let distinct = c.arrivals - c.duplicated;
                let add = [
                    1,
                    expected,
                    c.arrivals,
                    expected.saturating_sub(distinct),
                    c.duplicated,
                    c.reordered,
                    distinct.saturating_sub(expected),
                ];
                sum.iter_mut().zip(add).for_each(|(s, a)| *s += a);
            }
            let dst = [
                &t.subs_up,
                &t.expected,
                &t.received,
                &t.lost,
                &t.duplicated,
                &t.reordered,
                &t.extra,
            ];
            for (d, v) in dst.into_iter().zip(sum) {
                d.fetch_add(v, Ordering::Relaxed);
            }
            if let Some(at) = self.hist_by_k.iter().position(|(x, _)| *x == k) {
                let (_, h) = self.hist_by_k.swap_remove(at);
                // Poisoned only if another thread panicked holding it; the run is lost then anyway.
                if let Ok(mut merged) = t.latency.lock() {
                    match merged.as_mut() {
                        Some(m) => {
                            let _ = m.add(&h);
                        }
                        None => *merged = Some(h),
                    }
                }
            }
            self.hist_by_k.retain(|(x, _)| *x > k);
            t.evaluated_by.fetch_add(1, Ordering::Release);
            self.evaluated = k;
        }
    }
}

impl Session {
    fn new(publishers: usize) -> Session {
        Session {
            acked_ns: None,
            streams: vec![(None, SeqTracker::default()); publishers],
            counts: Vec::new(),
        }
    }

    /// Records number `seq` of publisher `p`'s stream, published in interval `k`.
    fn record(&mut self, p: usize, seq: u64, k: u64) {
        let mut c = Count {
            k,
            arrivals: 1,
            ..Count::default()
        };
        // A publisher index out of range still counts as an arrival (an extra one).
        if let Some((base, tracker)) = self.streams.get_mut(p) {
            let b = *base.get_or_insert(seq);
            if seq < b {
                // Arrived after a higher number: the first one seen.
                c.reordered = 1;
            } else {
                let before = tracker.finish(0);
                tracker.record(seq - b);
                let after = tracker.finish(0);
                c.duplicated = after.duplicated - before.duplicated;
                c.reordered = after.reordered - before.reordered;
            }
        }
        match self.counts.iter_mut().find(|x| x.k == k) {
            Some(x) => {
                x.arrivals += 1;
                x.duplicated += c.duplicated;
                x.reordered += c.reordered;
            }
            None => self.counts.push(c),
        }
    }

    /// Removes and returns interval `k`'s counts; drops older ones.
    fn take(&mut self, k: u64) -> Count {
        let c = self
            .counts
            .iter()
            .find(|x| x.k == k)
            .copied()
            .unwrap_or_default();
        self.counts.retain(|x| x.k > k);
        c
    }
}

/// Writes the publish data `{"p":P,"s":S,"t":T,"k":K,"x":"xx.."}` padded to about `size` bytes.
pub fn write_data(out: &mut Vec<u8>, p: usize, seq: u64, sent_ns: u64, k: u64, size: usize) {
    use std::io::Write as _;
    let start = out.len();
    let _ = write!(out, r#"{{"p":{p},"s":{seq},"t":{sent_ns},"k":{k},"x":""#);
    let pad = size.saturating_sub(out.len() - start + 2);
    out.resize(out.len() + pad, b'x');
    out.extend_from_slice(b"\"}");
}

impl Workload for Soak {
    fn on_open(&mut self, id: usize, conn: &mut Conn, _now: Instant) {
        let publishers = self.plan.publishers;
        let expect = match &mut self.roles[id] {
            Role::Publisher {
                expect, ever_ready, ..
            } => {
                if !std::mem::replace(ever_ready, true) {
                    self.shared.ready.fetch_add(1, Ordering::Relaxed);
                }
                expect
            }
            Role::Subscriber {
                channel,
                session,
                expect,
                ..
            } => {
                *session = Some(Session::new(publishers));
                let msg = format!(
                    r#"{{"type":"subscribe","channel":"{}"}}"#,
                    channel_name(*channel)
                );
                conn.send_text(msg.as_bytes());
                expect
            }
        };
        if *expect == Expect::Reconnecting {
            self.sh
                .now_totals()
                .reconnected
                .fetch_add(1, Ordering::Relaxed);
        }
        *expect = Expect::Steady;
    }

    fn on_text(&mut self, id: usize, _conn: &mut Conn, text: &[u8], now: Instant) {
        match self.roles[id] {
            Role::Subscriber { .. } => self.on_subscriber_text(id, text, now),
            Role::Publisher { .. } => crate::fanout::other_message(&mut self.server_errors, text),
        }
    }

    fn on_closed(&mut self, id: usize, was_open: bool) {
        let t = self.sh.now_totals();
        let expect = match &mut self.roles[id] {
            Role::Publisher { expect, .. } => expect,
            Role::Subscriber {
                session, expect, ..
            } => {
                *session = None;
                expect
            }
        };
        let (abandon_upgrade, next) = match *expect {
            Expect::Churned { abandon: true } => (true, Expect::Abandoning),
            Expect::Churned { abandon: false } | Expect::Abandoning => {
                (false, Expect::Reconnecting)
            }
            Expect::Reconnecting | Expect::Steady => {
                let counter = match was_open {
                    true => &t.unexpected_closes,
                    false => &t.failed_connects,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                (false, Expect::Reconnecting)
            }
        };
        *expect = next;
        self.reopen.push_back(Reopen {
            id,
            abandon_upgrade,
        });
    }

    fn tick(&mut self, conns: &mut [Conn], phase: u8, now: Instant) -> Option<Duration> {
        if self.sh.eval_req.load(Ordering::Relaxed) > self.evaluated {
            self.evaluate(conns);
        }
        if phase != phase::RUN {
            return None;
        }
        let a = self.publish_due(conns, now);
        let b = self.churn_due(conns, now);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn next_reopen(&mut self) -> Option<Reopen> {
        self.reopen.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_carries_the_interval_and_parses_back() {
        let mut msg = br#"{"type":"message","channel":"soak-1","data":"#.to_vec();
        let start = msg.len();
        write_data(&mut msg, 3, 41, 123, 7, 64);
        assert_eq!(msg.len() - start, 64);
        msg.push(b'}');
        let v: serde_json::Value = serde_json::from_slice(&msg).unwrap();
        assert_eq!(v["data"]["k"], 7);
        let s = parse_stamp(&msg).unwrap();
        assert_eq!((s.publisher, s.seq, s.sent_ns), (3, 41, 123));
        assert_eq!(number_after(&msg, br#""k":"#), Some(7));
    }

    #[test]
    fn session_sorts_arrivals_by_interval_and_spots_dups_and_reorders() {
        let mut s = Session::new(2);
        for seq in [10, 11, 12] {
            s.record(0, seq, 1);
        }
        s.record(1, 5, 1);
        s.record(0, 13, 2);
        s.record(0, 12, 2); // a repeat: duplicate, counted where it was tagged
        s.record(0, 15, 2);
        s.record(0, 14, 2); // fills a gap: reordered
        s.record(0, 9, 2); // below the first seen: reordered
        let one = s.take(1);
        assert_eq!((one.arrivals, one.duplicated, one.reordered), (4, 0, 0));
        let two = s.take(2);
        assert_eq!((two.arrivals, two.duplicated, two.reordered), (5, 1, 2));
        assert!(s.counts.is_empty());
        assert_eq!(s.take(3).arrivals, 0);
    }
}
