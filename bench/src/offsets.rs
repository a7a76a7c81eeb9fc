//! History channels (issue 12) as the bench sees them: the `offset` a
//! delivered message carries, the position (`offset`, `epoch`,
//! `recovered`) of a `subscribed` or `published` reply, and one
//! subscriber's offset sequence checked for gaps, duplicates and reorders,
//! across reconnects too. No I/O; `fanout --history` and `recover` use it.
//!
//! Offsets number a channel's publications 1, 2, ... in one order for
//! every subscriber. A subscriber's sequence starts after the `offset` of
//! its first `subscribed` reply (TOP: the publications it does not expect)
//! and must then be contiguous up to the channel's last offset, whatever
//! reconnects happen in between, unless the server answered a recovery
//! with `recovered:false` (the client reloads; see [`OffsetTracker::reload`]).

use crate::seq::{number_after, SeqReport, SeqTracker};

/// The `offset` of a delivered `{"type":"message",...,"data":D,"offset":N}`
/// frame, or `None` on a channel without history. Scans from the end: the
/// server writes `offset` after `data`, and `data` is the publisher's bytes,
/// which could hold the same key.
pub fn message_offset(text: &[u8]) -> Option<u64> {
    const KEY: &[u8] = br#","offset":"#;
    let at = text.windows(KEY.len()).rposition(|w| w == KEY)?;
    number_after(&text[at..], KEY)
}

/// The position a `subscribed` or `published` reply of a history channel carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// TOP: the offset of the channel's latest publication (0 if none).
    pub offset: u64,
    /// The history's epoch; an offset means something only with it.
    pub epoch: String,
    /// `recovered` of a recovering subscribe's reply; `None` on other replies.
    pub recovered: Option<bool>,
}

/// The position of a reply, or `None` when it has no `offset` (a channel
/// without history) or is not JSON. Replies are rare (one per subscribe),
/// so this parses JSON rather than scanning.
pub fn reply_position(text: &[u8]) -> Option<Position> {
    let v: serde_json::Value = serde_json::from_slice(text).ok()?;
    Some(Position {
        offset: v["offset"].as_u64()?,
        epoch: v["epoch"].as_str().unwrap_or_default().to_string(),
        recovered: v["recovered"].as_bool(),
    })
}

/// Why a run on history channels cannot start: the server answered the
/// first subscribe to `channel` without a position (`detail` says how).
pub fn no_history_error(channel: &str, detail: &str) -> String {
    let namespace = channel.split_once(':').map_or("default", |(ns, _)| ns);
    format!(
        "the server keeps no history for {channel} ({detail}): start it with a config \
         whose [namespaces.{namespace}] sets history_size and history_ttl \
         (e.g. corecast --config bench/history.toml)"
    )
}

/// One subscriber's offsets on one history channel, across reconnects.
#[derive(Debug, Default, Clone)]
pub struct OffsetTracker {
    /// Offsets at or below this were published before the subscriber's
    /// position began; `None` until the first reply or message sets it.
    base: Option<u64>,
    /// Offsets above `base`, renumbered from 0 (offset `base + 1` is 0).
    seq: SeqTracker,
    /// Highest offset received (or the base, before any).
    highest: u64,
    /// Arrivals at or below the base: publications from before the position.
    stale: u64,
    /// Counts of the segments ended by a reload.
    done: SeqReport,
}

impl OffsetTracker {
    /// A `subscribed` reply (not a recovery) said TOP: the next offset due is
    /// TOP + 1. Ignored once the sequence has started: a live message that
    /// overtook the reply already set the base just below itself.
    pub fn subscribed(&mut self, top: u64) {
        if self.base.is_none() {
            self.base = Some(top);
            self.highest = top;
        }
    }

    /// A message with offset `offset` arrived.
    pub fn record(&mut self, offset: u64) {
        let base = *self.base.get_or_insert(offset.saturating_sub(1));
        if offset <= base {
            self.stale += 1;
            return;
        }
        self.seq.record(offset - base - 1);
        self.highest = self.highest.max(offset);
    }

    /// The offset to recover from: the highest received.
    pub fn last(&self) -> u64 {
        self.highest
    }

    /// A recovery answered `recovered:false` with TOP `top`: the client
    /// reloads, so what it missed so far is not a loss of the bench's run.
    /// Counts the sequence so far up to its highest offset, and starts
    /// again after `top`.
    pub fn reload(&mut self, top: u64) {
        self.done += self.segment(self.highest);
        *self = OffsetTracker {
            base: Some(top),
            highest: top,
            done: self.done,
            ..OffsetTracker::default()
        };
    }

    /// Final counts, given that the channel's last offset is `top`: missing
    /// offsets up to it are lost, repeats (and offsets from before the
    /// subscriber's position) duplicated, late fills reordered.
    pub fn finish(&self, top: u64) -> SeqReport {
        let mut r = self.done;
        r += self.segment(top);
        r
    }

    fn segment(&self, top: u64) -> SeqReport {
        let Some(base) = self.base else {
            return SeqReport::default();
        };
        let mut r = self.seq.finish(top.saturating_sub(base));
        r.duplicated += self.stale;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(lost: u64, duplicated: u64, reordered: u64) -> SeqReport {
        SeqReport {
            lost,
            duplicated,
            reordered,
        }
    }

    #[test]
    fn offset_is_read_from_the_end_of_a_message() {
        let msg =
            br#"{"type":"message","channel":"h:a","data":{"p":1,"x":",\"offset\":9"},"offset":42}"#;
        assert_eq!(message_offset(msg), Some(42));
        assert_eq!(
            message_offset(br#"{"type":"message","channel":"a","data":{"p":1}}"#),
            None
        );
    }

    #[test]
    fn positions_come_from_history_replies_only() {
        let p = reply_position(
            br#"{"type":"subscribed","channel":"h:a","recovered":true,"offset":7,"epoch":"xyz"}"#,
        )
        .unwrap();
        assert_eq!(
            p,
            Position {
                offset: 7,
                epoch: "xyz".into(),
                recovered: Some(true)
            }
        );
        let p = reply_position(
            br#"{"type":"published","channel":"h:a","offset":3,"epoch":"e","id":5}"#,
        );
        assert_eq!(p.unwrap().recovered, None);
        assert_eq!(
            reply_position(br#"{"type":"subscribed","channel":"a"}"#),
            None
        );
        assert_eq!(reply_position(b"not json"), None);
    }

    #[test]
    fn the_error_names_the_namespace_to_configure() {
        let e = no_history_error("h:fanout-0", "no offset in subscribed");
        assert!(
            e.starts_with("the server keeps no history for h:fanout-0"),
            "{e}"
        );
        assert!(
            e.contains("[namespaces.h] sets history_size and history_ttl"),
            "{e}"
        );
        assert!(no_history_error("plain", "x").contains("[namespaces.default]"));
    }

    #[test]
    fn a_contiguous_sequence_after_the_subscribe_position_is_clean() {
        let mut t = OffsetTracker::default();
        t.subscribed(10);
        (11..=20).for_each(|o| t.record(o));
        assert_eq!(t.finish(20), SeqReport::default());
        assert_eq!(t.last(), 20);
        assert_eq!(t.finish(22), report(2, 0, 0), "the tail is lost");
    }

    #[test]
    fn gaps_repeats_and_late_fills_are_counted() {
        let mut t = OffsetTracker::default();
        t.subscribed(0);
        [1, 2, 4, 4, 3, 6].iter().for_each(|&o| t.record(o));
        assert_eq!(t.finish(6), report(1, 1, 1));
        let mut t = OffsetTracker::default();
        t.subscribed(5);
        t.record(5);
        t.record(6);
        assert_eq!(
            t.finish(6),
            report(0, 1, 0),
            "an offset from before the position"
        );
    }

    #[test]
    fn a_message_overtaking_the_reply_starts_the_sequence() {
        let mut t = OffsetTracker::default();
        t.record(8);
        t.subscribed(8);
        t.record(9);
        assert_eq!(t.finish(9), SeqReport::default());
    }

    #[test]
    fn a_recovery_replaying_what_was_missed_keeps_the_sequence_whole() {
        let mut t = OffsetTracker::default();
        t.subscribed(3);
        (4..=9).for_each(|o| t.record(o));
        // Disconnected at 9; the recovery replays 10..=14, then live 15...
        (10..=17).for_each(|o| t.record(o));
        assert_eq!(t.finish(17), SeqReport::default());
        let mut bad = OffsetTracker::default();
        bad.subscribed(3);
        [4, 5, 6, 5, 6, 9, 8].iter().for_each(|&o| bad.record(o));
        assert_eq!(bad.finish(9), report(1, 2, 1));
    }

    #[test]
    fn a_reload_forgives_the_gap_but_keeps_earlier_faults() {
        let mut t = OffsetTracker::default();
        t.subscribed(0);
        [1, 2, 2, 4].iter().for_each(|&o| t.record(o));
        t.reload(50);
        (51..=53).for_each(|o| t.record(o));
        assert_eq!(t.finish(53), report(1, 1, 0));
        assert_eq!(t.last(), 53);
    }
}
