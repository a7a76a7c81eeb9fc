//! Delivery accounting for one (publisher, channel) stream as one
//! subscriber sees it: lost, duplicated and out-of-order messages.
//!
//! Publishers number each stream 0, 1, 2, ... A gap opens "missing"
//! entries; a later arrival that fills one is out of order, an arrival of
//! a number already seen is a duplicate, and whatever is still missing at
//! the end (plus anything past the last arrival) is lost.

use std::collections::BTreeSet;

/// Missing numbers tracked one by one; a larger gap is counted as lost in bulk
/// so a stalled stream cannot grow the set without bound.
const MAX_TRACKED_GAP: u64 = 1 << 16;

/// One subscriber's view of one stream.
#[derive(Debug, Default, Clone)]
pub struct SeqTracker {
    /// One past the highest number seen (0 before any arrival).
    next: u64,
    /// Numbers below `next` not seen yet.
    missing: BTreeSet<u64>,
    /// Lost without being tracked (gaps over the cap).
    lost_untracked: u64,
    /// Arrivals of a number already seen.
    duplicated: u64,
    /// Arrivals that filled an earlier gap.
    reordered: u64,
}

/// Final counts for a stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeqReport {
    /// Sent but never received.
    pub lost: u64,
    /// Received more than once.
    pub duplicated: u64,
    /// Received after a higher number.
    pub reordered: u64,
}

impl SeqTracker {
    /// Records an arrival of number `seq`.
    pub fn record(&mut self, seq: u64) {
        if seq >= self.next {
            let gap = seq - self.next;
            if gap > MAX_TRACKED_GAP {
                self.lost_untracked += gap;
            } else {
                self.missing.extend(self.next..seq);
            }
            self.next = seq + 1;
        } else if self.missing.remove(&seq) {
            self.reordered += 1;
        } else {
            self.duplicated += 1;
        }
    }

    /// Final counts, given that the publisher sent numbers `0..sent`.
    pub fn finish(&self, sent: u64) -> SeqReport {
        SeqReport {
            lost: self.missing.len() as u64 + self.lost_untracked + sent.saturating_sub(self.next),
            duplicated: self.duplicated,
            reordered: self.reordered,
        }
    }
}

impl std::ops::AddAssign for SeqReport {
    fn add_assign(&mut self, o: SeqReport) {
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
    }
}

/// The publisher stamp carried in `data`: `{"p":PUB,"s":SEQ,"t":NANOS,...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Publisher index.
    pub publisher: u64,
    /// Number within the (publisher, channel) stream.
    pub seq: u64,
    /// Intended send time, nanoseconds since the bench's epoch.
    pub sent_ns: u64,
}

/// Writes the data object for a publish of about `size` bytes.
pub fn write_stamp(out: &mut Vec<u8>, s: Stamp, size: usize) {
    use std::io::Write as _;
    let start = out.len();
    let _ = write!(
        out,
        r#"{{"p":{},"s":{},"t":{},"x":""#,
        s.publisher, s.seq, s.sent_ns
    );
    let pad = size.saturating_sub(out.len() - start + 2);
    out.resize(out.len() + pad, b'x');
    out.extend_from_slice(b"\"}");
}

/// Like [`write_stamp`], but the padding is words and numbers that vary
/// with the stamp, so the data compresses about like real JSON does.
pub fn write_stamp_text(out: &mut Vec<u8>, s: Stamp, size: usize) {
    const WORDS: [&str; 16] = [
        "user", "name", "price", "status", "active", "order", "item", "count", "true", "false",
        "null", "updated", "region", "eu-west", "total", "score",
    ];
    let start = out.len();
    write_stamp(out, s, 0);
    out.truncate(out.len() - 2); // Reopen the "x" string.
    let mut rng = (s.publisher << 32 ^ s.seq ^ s.sent_ns) | 1;
    while out.len() - start + 2 < size {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let word = WORDS[(rng % 16) as usize];
        let piece = format!("{word}:{} ", (rng >> 8) % 10_000);
        let room = size - (out.len() - start + 2);
        out.extend_from_slice(&piece.as_bytes()[..piece.len().min(room)]);
    }
    out.extend_from_slice(b"\"}");
}

/// Finds the stamp in a delivered `{"type":"message",...,"data":{...}}` frame.
/// Scans for the keys rather than parsing JSON: the data is the bench's own
/// bytes, which the server forwards verbatim.
pub fn parse_stamp(text: &[u8]) -> Option<Stamp> {
    let data = find(text, b"\"data\":")?;
    let rest = &text[data..];
    Some(Stamp {
        publisher: number_after(rest, b"\"p\":")?,
        seq: number_after(rest, b"\"s\":")?,
        sent_ns: number_after(rest, b"\"t\":")?,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + needle.len())
}

/// The decimal number right after `key` in `hay` (the stamp's own keys, not JSON parsing).
pub fn number_after(hay: &[u8], key: &[u8]) -> Option<u64> {
    let at = find(hay, key)?;
    let digits = hay[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&hay[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seqs: &[u64], sent: u64) -> SeqReport {
        let mut t = SeqTracker::default();
        seqs.iter().for_each(|&s| t.record(s));
        t.finish(sent)
    }

    #[test]
    fn in_order_stream_is_clean() {
        assert_eq!(run(&[0, 1, 2, 3], 4), SeqReport::default());
    }

    #[test]
    fn gaps_are_lost_and_late_fills_are_reordered() {
        assert_eq!(
            run(&[0, 2, 3], 4),
            SeqReport {
                lost: 1,
                ..Default::default()
            }
        );
        assert_eq!(
            run(&[0, 2, 1, 3], 4),
            SeqReport {
                reordered: 1,
                ..Default::default()
            }
        );
        assert_eq!(
            run(&[0, 1], 5),
            SeqReport {
                lost: 3,
                ..Default::default()
            }
        );
        assert_eq!(
            run(&[], 2),
            SeqReport {
                lost: 2,
                ..Default::default()
            }
        );
    }

    #[test]
    fn text_stamps_have_the_size_and_parse() {
        let s = Stamp {
            publisher: 3,
            seq: 77,
            sent_ns: 123_456,
        };
        for size in [0, 40, 100, 1024] {
            let mut data = Vec::new();
            write_stamp_text(&mut data, s, size);
            let value: serde_json::Value = serde_json::from_slice(&data).expect("JSON");
            assert_eq!(value["s"], 77);
            if size >= 100 {
                assert_eq!(data.len(), size);
            }
            let frame = format!(
                r#"{{"type":"message","data":{}}}"#,
                String::from_utf8_lossy(&data)
            );
            assert_eq!(parse_stamp(frame.as_bytes()), Some(s));
        }
    }

    #[test]
    fn repeats_are_duplicates_not_reorders() {
        let r = run(&[0, 1, 1, 2, 0, 2], 3);
        assert_eq!(
            r,
            SeqReport {
                duplicated: 3,
                ..Default::default()
            }
        );
        let r = run(&[1, 0, 0], 2);
        assert_eq!(
            r,
            SeqReport {
                reordered: 1,
                duplicated: 1,
                lost: 0
            }
        );
    }

    #[test]
    fn huge_gap_counts_without_tracking_each_number() {
        let r = run(&[0, MAX_TRACKED_GAP + 10], MAX_TRACKED_GAP + 11);
        assert_eq!(r.lost, MAX_TRACKED_GAP + 9);
    }

    #[test]
    fn stamp_round_trips_through_a_delivered_frame() {
        let s = Stamp {
            publisher: 3,
            seq: 41,
            sent_ns: 123_456_789,
        };
        let mut data = Vec::new();
        write_stamp(&mut data, s, 100);
        assert_eq!(data.len(), 100);
        let v: serde_json::Value = serde_json::from_slice(&data).unwrap();
        assert_eq!(v["s"], 41);
        let mut frame = br#"{"type":"message","channel":"c-1","data":"#.to_vec();
        frame.extend_from_slice(&data);
        frame.push(b'}');
        assert_eq!(parse_stamp(&frame), Some(s));
        assert_eq!(parse_stamp(br#"{"type":"subscribed","channel":"c"}"#), None);
    }
}
