//! `fanout`: subscribers spread over channels, publishers stamping each
//! message with (publisher, sequence, intended send time). Measures
//! published/s, delivered/s, end-to-end latency, and lost, duplicated and
//! out-of-order deliveries per (publisher, channel) stream.
//!
//! `--rate 0` publishes as fast as the server delivers: each publisher keeps
//! at most `--window` messages in flight, where "in flight" is counted in
//! deliveries still owed to subscribers. Without that bound a max-rate run
//! would only measure how fast the server's slow-consumer cut fires.
//!
//! `--history` runs the same load on history channels (`NS:fanout-K`,
//! issue 12): the first `subscribed` reply must carry an `offset` or the run
//! stops before publishing, and each subscriber's offsets are checked for
//! gaps, duplicates and reorders per channel, besides the stamps.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use serde_json::json;

use crate::driver::{count, merge_counts, phase, Conn, Shared, State, Workload};
use crate::offsets::{self, OffsetTracker};
use crate::report::{self, new_histogram};
use crate::run::{self, ns_since_epoch, Common};
use crate::seq::{parse_stamp, write_stamp, write_stamp_text, SeqReport, SeqTracker, Stamp};

/// Options of `fanout`.
#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    /// Subscriber connections; subscriber i joins channel i % channels.
    #[arg(long, default_value_t = 1000)]
    pub subs: usize,
    /// Channels.
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// Publisher connections; each cycles over every channel.
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Total publishes per second over all publishers; 0 = as fast as delivered.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Size of each publish's `data` in bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Pad each publish's `data` with varied words and numbers, which deflate
    /// compresses about as much as typical JSON (3-4x), instead of one
    /// repeated byte (which it compresses ~100x): for --compression figures.
    #[arg(long)]
    pub text_data: bool,
    /// Seconds to publish.
    #[arg(long, default_value_t = 10.0)]
    pub secs: f64,
    /// With --rate 0: messages each publisher may have in flight.
    #[arg(long, default_value_t = 16)]
    pub window: u64,
    /// Seconds to wait after publishing stops for in-flight deliveries.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// Use history channels `NAMESPACE:fanout-K`: the server's config must
    /// give that namespace `history_size` and `history_ttl` (bench/history.toml);
    /// every delivery's offset is checked too.
    #[arg(long)]
    pub history: bool,
    /// With --history: the namespace prefixed to every channel name.
    #[arg(long, default_value = "h", requires = "history")]
    pub namespace: String,
}

/// Counters shared by publishers and subscribers across threads.
struct FanShared {
    /// Subscribers confirmed per channel.
    subscribed: Vec<AtomicI64>,
    /// Deliveries each publisher's messages should produce (summed at send time).
    expected: Vec<AtomicU64>,
    /// Deliveries received, per publisher (flushed in batches by each thread).
    delivered: Vec<AtomicU64>,
    /// Messages sent per (publisher, channel) stream, written when publishing stops.
    sent: Vec<AtomicU64>,
    channels: usize,
    /// With --history: why the server cannot serve the run, set by the first
    /// subscriber to find out; the thread that sets it also stops the run.
    no_history: OnceLock<String>,
}

enum Role {
    Publisher {
        idx: usize,
        seqs: Vec<u64>,
        next_due: Option<Instant>,
        rr: usize,
        stopped: bool,
    },
    Subscriber {
        channel: usize,
        trackers: Vec<SeqTracker>,
        /// Offsets of the history channel (unused without --history).
        offsets: OffsetTracker,
        subscribed: bool,
    },
}

struct Fanout {
    roles: Vec<Role>,
    /// Local indexes of the publishers in `roles`, so a turn visits only them.
    publishers: Vec<usize>,
    /// Per channel, the publish message up to its data: `{"type":"publish","channel":"fanout-N","data":`.
    publish_prefixes: Arc<[Box<[u8]>]>,
    /// Per channel, its name (`fanout-N`, or `NS:fanout-N` with --history).
    names: Arc<[String]>,
    history: bool,
    fan: Arc<FanShared>,
    shared: Arc<Shared>,
    size: usize,
    /// Pad with [`write_stamp_text`] rather than [`write_stamp`].
    text_data: bool,
    interval: Option<Duration>,
    window: u64,
    phase: u8,
    hist: Histogram<u64>,
    pending_delivered: Vec<u64>,
    published: u64,
    delivered_in_run: u64,
    skipped_backlog: u64,
    server_errors: BTreeMap<String, u64>,
    scratch: Vec<u8>,
}

/// Every channel's name: `fanout-N`, or `NS:fanout-N` on history channels.
fn channel_names(channels: usize, namespace: Option<&str>) -> Arc<[String]> {
    (0..channels)
        .map(|c| match namespace {
            Some(ns) => format!("{ns}:fanout-{c}"),
            None => format!("fanout-{c}"),
        })
        .collect()
}

/// The publish message of every channel up to its data, built once per run.
fn publish_prefixes(names: &[String]) -> Arc<[Box<[u8]>]> {
    names
        .iter()
        .map(|name| {
            format!(r#"{{"type":"publish","channel":"{name}","data":"#)
                .into_bytes()
                .into_boxed_slice()
        })
        .collect()
}

impl Fanout {
    /// Sends publisher `local`'s next message; false if the window or backlog says wait.
    fn publish(
        &mut self,
        local: usize,
        conn: &mut Conn,
        stamp_at: Instant,
        windowed: bool,
    ) -> bool {
        let Role::Publisher { idx, seqs, rr, .. } = &mut self.roles[local] else {
            return false;
        };
        let ch = *rr % self.fan.channels;
        let subs = self.fan.subscribed[ch].load(Ordering::Relaxed).max(0) as u64;
        if windowed {
            let in_flight = self.fan.expected[*idx]
                .load(Ordering::Relaxed)
                .saturating_sub(self.fan.delivered[*idx].load(Ordering::Relaxed));
            if in_flight + subs > self.window * subs.max(1) {
                return false;
            }
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.publish_prefixes[ch]);
        let stamp = Stamp {
            publisher: *idx as u64,
            seq: seqs[ch],
            sent_ns: ns_since_epoch(stamp_at),
        };
        if self.text_data {
            write_stamp_text(&mut self.scratch, stamp, self.size);
        } else {
            write_stamp(&mut self.scratch, stamp, self.size);
        }
        self.scratch.push(b'}');
        if !conn.send_text(&self.scratch) {
            self.skipped_backlog += 1;
            return false;
        }
        seqs[ch] += 1;
        *rr += 1;
        self.fan.expected[*idx].fetch_add(subs, Ordering::Relaxed);
        self.published += 1;
        true
    }

    fn on_subscriber_text(&mut self, local: usize, conn_text: &[u8], now: Instant) {
        let Role::Subscriber {
            channel,
            trackers,
            offsets,
            subscribed,
        } = &mut self.roles[local]
        else {
            return;
        };
        if conn_text.starts_with(br#"{"type":"message""#) {
            if self.history {
                match offsets::message_offset(conn_text) {
                    Some(o) => offsets.record(o),
                    None => count(&mut self.server_errors, "message without offset".into()),
                }
            }
            match parse_stamp(conn_text) {
                Some(s) if (s.publisher as usize) < trackers.len() => {
                    trackers[s.publisher as usize].record(s.seq);
                    self.pending_delivered[s.publisher as usize] += 1;
                    let lat = ns_since_epoch(now).saturating_sub(s.sent_ns).max(1);
                    self.hist.saturating_record(lat);
                    if self.phase == phase::RUN {
                        self.delivered_in_run += 1;
                    }
                }
                _ => count(&mut self.server_errors, "unparsable message".into()),
            }
        } else if conn_text.starts_with(br#"{"type":"subscribed""#) {
            if self.history {
                match offsets::reply_position(conn_text) {
                    Some(p) => offsets.subscribed(p.offset),
                    None => {
                        let name = &self.names[*channel];
                        return self.refuse(name, "its subscribed reply has no offset");
                    }
                }
            }
            if !*subscribed {
                *subscribed = true;
                self.fan.subscribed[*channel].fetch_add(1, Ordering::Relaxed);
                self.shared.ready.fetch_add(1, Ordering::Relaxed);
            }
        } else if self.history && !*subscribed && conn_text.starts_with(br#"{"type":"error""#) {
            let name = &self.names[*channel];
            let detail = format!(
                "it answered subscribe with {}",
                String::from_utf8_lossy(conn_text)
            );
            self.refuse(name, &detail);
        } else {
            other_message(&mut self.server_errors, conn_text);
        }
    }

    /// The server cannot serve a --history run: says why, once, and stops
    /// every thread, so the ramp ends now instead of at its timeout.
    fn refuse(&self, channel: &str, detail: &str) {
        let _ = self
            .fan
            .no_history
            .set(offsets::no_history_error(channel, detail));
        self.shared.phase.store(phase::STOP, Ordering::Relaxed);
    }
}

/// Counts a server message a role did not expect, by its type and code.
pub fn other_message(errors: &mut BTreeMap<String, u64>, text: &[u8]) {
    if text.starts_with(br#"{"type":"connection_established""#) {
        return;
    }
    let v: serde_json::Value = serde_json::from_slice(text).unwrap_or_default();
    let cause = match (v["type"].as_str(), v["code"].as_str()) {
        (Some("error"), Some(code)) => format!("server error {code}"),
        (Some(t), _) => format!("unexpected message type {t}"),
        _ => "unparsable message".into(),
    };
    count(errors, cause);
}

impl Workload for Fanout {
    fn on_open(&mut self, id: usize, conn: &mut Conn, _now: Instant) {
        match &self.roles[id] {
            Role::Publisher { .. } => {
                self.shared.ready.fetch_add(1, Ordering::Relaxed);
            }
            Role::Subscriber { channel, .. } => {
                let msg = format!(
                    r#"{{"type":"subscribe","channel":"{}"}}"#,
                    self.names[*channel]
                );
                conn.send_text(msg.as_bytes());
            }
        }
    }

    fn on_text(&mut self, id: usize, _conn: &mut Conn, text: &[u8], now: Instant) {
        match self.roles[id] {
            Role::Subscriber { .. } => self.on_subscriber_text(id, text, now),
            Role::Publisher { .. } => other_message(&mut self.server_errors, text),
        }
    }

    fn on_closed(&mut self, id: usize, _was_open: bool) {
        if let Role::Subscriber {
            channel,
            subscribed,
            ..
        } = &mut self.roles[id]
        {
            if std::mem::take(subscribed) {
                self.fan.subscribed[*channel].fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn tick(&mut self, conns: &mut [Conn], phase: u8, now: Instant) -> Option<Duration> {
        self.phase = phase;
        for (p, n) in self.pending_delivered.iter_mut().enumerate() {
            if *n > 0 {
                self.fan.delivered[p].fetch_add(std::mem::take(n), Ordering::Relaxed);
            }
        }
        let mut soonest: Option<Duration> = None;
        // Index loop: `publish` borrows `self` while a role is borrowed too.
        #[allow(clippy::needless_range_loop)]
        for k in 0..self.publishers.len() {
            let i = self.publishers[k];
            let Role::Publisher {
                idx,
                seqs,
                next_due,
                stopped,
                ..
            } = &mut self.roles[i]
            else {
                continue;
            };
            if phase >= phase::DRAIN {
                if !*stopped {
                    *stopped = true;
                    for (c, n) in seqs.iter().enumerate() {
                        self.fan.sent[*idx * self.fan.channels + c].store(*n, Ordering::Relaxed);
                    }
                }
                continue;
            }
            if phase != phase::RUN || conns[i].state != State::Open {
                continue;
            }
            match self.interval {
                Some(iv) => {
                    let mut due = *next_due.get_or_insert(now);
                    // Catch up on missed slots, each stamped with its own intended time,
                    // but bound the burst so reading is not starved.
                    let mut burst = 0;
                    while due <= now && burst < 256 {
                        if !self.publish(i, &mut conns[i], due, false) {
                            break;
                        }
                        due += iv;
                        burst += 1;
                    }
                    if let Role::Publisher { next_due, .. } = &mut self.roles[i] {
                        *next_due = Some(due);
                    }
                    let w = due.saturating_duration_since(now);
                    soonest = Some(soonest.map_or(w, |s| s.min(w)));
                }
                None => {
                    let mut burst = 0;
                    while burst < self.window && self.publish(i, &mut conns[i], now, true) {
                        burst += 1;
                    }
                    soonest = Some(Duration::from_millis(1));
                }
            }
        }
        soonest
    }
}

/// Runs `fanout`; returns the report's JSON and whether every check passed.
pub fn run(a: FanoutArgs) -> Result<(serde_json::Value, bool), String> {
    if a.channels == 0 || a.publishers == 0 || a.subs == 0 {
        return Err("--subs, --channels and --publishers must be at least 1".into());
    }
    let (p, k) = (a.publishers, a.channels);
    let fan = Arc::new(FanShared {
        subscribed: (0..k).map(|_| AtomicI64::new(0)).collect(),
        expected: (0..p).map(|_| AtomicU64::new(0)).collect(),
        delivered: (0..p).map(|_| AtomicU64::new(0)).collect(),
        sent: (0..p * k).map(|_| AtomicU64::new(0)).collect(),
        channels: k,
        no_history: OnceLock::new(),
    });
    let interval = (a.rate > 0.0).then(|| Duration::from_secs_f64(p as f64 / a.rate));
    let total = a.subs + p;
    let budget = Duration::from_secs_f64(a.secs + a.drain + 30.0);
    let fan2 = Arc::clone(&fan);
    let (size, window, text_data) = (a.size, a.window.max(1), a.text_data);
    let names = channel_names(k, a.history.then_some(a.namespace.as_str()));
    let prefixes = publish_prefixes(&names);
    let history = a.history;
    let running = run::start(&a.common, total, budget, move |ids, shared| {
        // Publishers take the first global indexes so they are spread over threads too.
        let roles: Vec<Role> = ids
            .iter()
            .map(|&g| match g < p {
                true => Role::Publisher {
                    idx: g,
                    seqs: vec![0; k],
                    next_due: None,
                    rr: g,
                    stopped: false,
                },
                false => Role::Subscriber {
                    channel: (g - p) % k,
                    trackers: vec![SeqTracker::default(); p],
                    offsets: OffsetTracker::default(),
                    subscribed: false,
                },
            })
            .collect();
        let publishers = (0..roles.len())
            .filter(|&i| matches!(roles[i], Role::Publisher { .. }))
            .collect();
        Fanout {
            roles,
            publishers,
            publish_prefixes: Arc::clone(&prefixes),
            names: Arc::clone(&names),
            history,
            fan: Arc::clone(&fan2),
            shared: Arc::clone(shared),
            size,
            text_data,
            interval,
            window,
            phase: phase::RAMP,
            hist: new_histogram(),
            pending_delivered: vec![0; p],
            published: 0,
            delivered_in_run: 0,
            skipped_backlog: 0,
            server_errors: BTreeMap::new(),
            scratch: Vec::new(),
        }
    })?;
    let ramp = running.ramp(
        total as u64,
        a.common.loops.ramp_timeout,
        "connecting + subscribing",
    );
    if let Some(e) = fan.no_history.get() {
        let _ = running.join();
        return Err(e.clone());
    }
    let secs = running.run_for(a.secs);
    let sum = |v: &[AtomicU64]| v.iter().map(|x| x.load(Ordering::Relaxed)).sum::<u64>();
    let drain_until = Instant::now() + Duration::from_secs_f64(a.drain);
    while Instant::now() < drain_until && !running.finished() {
        std::thread::sleep(Duration::from_millis(50));
        if sum(&fan.delivered) >= sum(&fan.expected) {
            break;
        }
    }
    let drained = sum(&fan.delivered) >= sum(&fan.expected);
    let (ws, stats) = running.join()?;
    let summary = summarize(&ws, &fan);
    report_fanout(&a, ramp, secs, drained, summary, stats)
}

/// Everything the threads counted, merged.
struct Summary {
    hist: Histogram<u64>,
    seq: SeqReport,
    published: u64,
    delivered: u64,
    delivered_in_run: u64,
    expected: u64,
    skipped: u64,
    subscribed_at_end: i64,
    server_errors: BTreeMap<String, u64>,
    /// With --history: offset faults over every subscriber.
    offsets: SeqReport,
    /// With --history: the channels with an offset fault, and their counts.
    offset_faults: BTreeMap<String, SeqReport>,
}

fn summarize(ws: &[Fanout], fan: &FanShared) -> Summary {
    let mut s = Summary {
        hist: new_histogram(),
        seq: SeqReport::default(),
        published: 0,
        delivered: fan
            .delivered
            .iter()
            .map(|x| x.load(Ordering::Relaxed))
            .sum(),
        delivered_in_run: 0,
        expected: fan.expected.iter().map(|x| x.load(Ordering::Relaxed)).sum(),
        skipped: 0,
        subscribed_at_end: fan
            .subscribed
            .iter()
            .map(|x| x.load(Ordering::Relaxed))
            .sum(),
        server_errors: BTreeMap::new(),
        offsets: SeqReport::default(),
        offset_faults: BTreeMap::new(),
    };
    if let Some(w) = ws.first().filter(|w| w.history) {
        (s.offsets, s.offset_faults) = offset_faults(ws, &w.names);
    }
    for w in ws {
        let _ = s.hist.add(&w.hist);
        s.published += w.published;
        s.delivered_in_run += w.delivered_in_run;
        s.skipped += w.skipped_backlog;
        merge_counts(&mut s.server_errors, &w.server_errors);
        // Delivery counts flushed after the last tick are still pending here.
        s.delivered += w.pending_delivered.iter().sum::<u64>();
        for role in &w.roles {
            if let Role::Subscriber {
                channel, trackers, ..
            } = role
            {
                for (pub_idx, t) in trackers.iter().enumerate() {
                    let sent = fan.sent[pub_idx * fan.channels + channel].load(Ordering::Relaxed);
                    s.seq += t.finish(sent);
                }
            }
        }
    }
    s
}

/// Offset faults per history channel. A channel's last offset is the
/// highest any of its subscribers received: a tail every subscriber missed
/// shows up in the stamp check (lost) instead.
fn offset_faults(ws: &[Fanout], names: &[String]) -> (SeqReport, BTreeMap<String, SeqReport>) {
    let subscribers = || {
        ws.iter().flat_map(|w| &w.roles).filter_map(|r| match r {
            Role::Subscriber {
                channel, offsets, ..
            } => Some((*channel, offsets)),
            Role::Publisher { .. } => None,
        })
    };
    let mut tops = vec![0u64; names.len()];
    for (c, t) in subscribers() {
        tops[c] = tops[c].max(t.last());
    }
    let mut per_channel = vec![SeqReport::default(); names.len()];
    for (c, t) in subscribers() {
        per_channel[c] += t.finish(tops[c]);
    }
    let mut total = SeqReport::default();
    let mut faults = BTreeMap::new();
    for (c, r) in per_channel.into_iter().enumerate() {
        total += r;
        if r != SeqReport::default() {
            faults.insert(names[c].clone(), r);
        }
    }
    (total, faults)
}

fn report_fanout(
    a: &FanoutArgs,
    ramp: Duration,
    secs: f64,
    drained: bool,
    s: Summary,
    stats: crate::driver::LoopStats,
) -> Result<(serde_json::Value, bool), String> {
    let failures: u64 = stats.errors.values().sum();
    let clean = s.seq.lost == 0
        && s.seq.duplicated == 0
        && s.seq.reordered == 0
        && s.offsets == SeqReport::default();
    let ok = clean && failures == 0 && s.skipped == 0 && s.server_errors.is_empty();
    let mode = match a.rate {
        r if r > 0.0 => format!("fixed rate {r:.0} publishes/s (latency from intended send time)"),
        _ => format!("max rate, window {} msgs per publisher", a.window),
    };
    let mut rows = vec![
        ("urls".to_string(), a.common.urls.join(" ")),
        a.common.auth_row(),
        a.common.compression_row(),
        a.common.encoding_row(),
        ("mode".into(), mode),
        (
            "subscribers / channels / publishers".into(),
            format!("{} / {} / {}", a.subs, a.channels, a.publishers),
        ),
        (
            "data size".into(),
            format!("{} B{}", a.size, if a.text_data { " (text)" } else { "" }),
        ),
        ("history".into(), history_label(a)),
        (
            "ramp (connect + subscribe)".into(),
            format!("{:.2}s", ramp.as_secs_f64()),
        ),
        ("measured".into(), format!("{secs:.2}s")),
        (
            "published".into(),
            format!("{}  ({:.0}/s)", s.published, s.published as f64 / secs),
        ),
        (
            "delivered".into(),
            format!(
                "{} of {} expected  ({:.0}/s during run)",
                s.delivered,
                s.expected,
                s.delivered_in_run as f64 / secs
            ),
        ),
        (
            "drained".into(),
            if drained {
                "yes".into()
            } else {
                format!("NO, after {:.0}s", a.drain)
            },
        ),
        ("subscribed at end".into(), s.subscribed_at_end.to_string()),
        ("lost".into(), report::loud(s.seq.lost)),
        ("duplicated".into(), report::loud(s.seq.duplicated)),
        ("out of order".into(), report::loud(s.seq.reordered)),
    ];
    if a.history {
        rows.push((
            "offset gaps / duplicated / reordered".into(),
            format!(
                "{} / {} / {}",
                report::loud(s.offsets.lost),
                report::loud(s.offsets.duplicated),
                report::loud(s.offsets.reordered)
            ),
        ));
        for (name, r) in &s.offset_faults {
            rows.push((
                format!("  offsets of {name}"),
                format!(
                    "gaps {} duplicated {} reordered {}",
                    r.lost, r.duplicated, r.reordered
                ),
            ));
        }
    }
    rows.extend([(
        "sends skipped (write backlog)".into(),
        s.skipped.to_string(),
    )]);
    rows.extend(report::latency_rows("end-to-end", &s.hist));
    rows.extend(report::cause_rows("failures", &stats.errors));
    rows.extend(report::cause_rows("close frames", &stats.close_codes));
    rows.extend(report::cause_rows("server messages", &s.server_errors));
    let title = format!(
        "fan-out end-to-end, {} subs / {} channels",
        a.subs, a.channels
    );
    rows.extend(run::save_outputs(&a.common, &title, &s.hist));
    if !ok {
        rows.push((
            "RESULT".into(),
            "FAILED: lost/duplicated/out-of-order deliveries or errors, see above".into(),
        ));
    }
    report::print_table(&mut std::io::stdout(), "fanout", &rows).map_err(|e| e.to_string())?;
    if !clean {
        eprintln!(
            "!!! DELIVERY CHECK FAILED: lost {} duplicated {} out-of-order {}, offset gaps {} duplicated {} reordered {} !!!",
            s.seq.lost, s.seq.duplicated, s.seq.reordered,
            s.offsets.lost, s.offsets.duplicated, s.offsets.reordered
        );
    }
    let offset_faults: serde_json::Map<String, serde_json::Value> = s
        .offset_faults
        .iter()
        .map(|(name, r)| {
            let v = json!({"gaps": r.lost, "duplicated": r.duplicated, "reordered": r.reordered});
            (name.clone(), v)
        })
        .collect();
    let v = json!({
        "bench": "fanout", "label": a.common.label, "urls": a.common.urls,
        "auth": a.common.auth_mode().label(),
        "compression": a.common.compression,
        "encoding": a.common.encoding.name(),
        "history": if a.history { "on" } else { "off" },
        "namespace": a.history.then_some(&a.namespace),
        "subs": a.subs, "channels": a.channels, "publishers": a.publishers, "rate": a.rate,
        "size": a.size, "text_data": a.text_data, "window": a.window, "secs": secs,
        "published": s.published, "published_per_s": s.published as f64 / secs,
        "delivered": s.delivered, "expected_deliveries": s.expected,
        "delivered_per_s": s.delivered_in_run as f64 / secs, "drained": drained,
        "lost": s.seq.lost, "duplicated": s.seq.duplicated, "out_of_order": s.seq.reordered,
        "offset_gaps": s.offsets.lost, "offset_duplicated": s.offsets.duplicated,
        "offset_reordered": s.offsets.reordered, "offset_faults_by_channel": offset_faults,
        "skipped_backlog": s.skipped, "latency": report::latency_json(&s.hist),
        "failures": stats.errors, "close_codes": stats.close_codes,
        "server_messages": s.server_errors, "ok": ok,
    });
    Ok((v, ok))
}

/// The report's `history` row: `on`, with the channels it used, or `off`.
fn history_label(a: &FanoutArgs) -> String {
    match a.history {
        true => format!(
            "on ({ns}:fanout-0 .. {ns}:fanout-{}, offsets checked)",
            a.channels - 1,
            ns = a.namespace
        ),
        false => "off".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_channels_carry_the_namespace_in_every_message() {
        let names = channel_names(2, Some("h"));
        assert_eq!(&*names, ["h:fanout-0", "h:fanout-1"]);
        assert_eq!(&*channel_names(1, None), ["fanout-0"]);
        let prefixes = publish_prefixes(&names);
        assert_eq!(
            &*prefixes[1],
            br#"{"type":"publish","channel":"h:fanout-1","data":"#
        );
    }
}
