//! `resp_reply` oracle: [`crate::redis::resp`]'s bounded decoder on arbitrary bytes, whole and cut, plus the command encoder and pub/sub parse.

use bytes::{Bytes, BytesMut};

use super::cuts;
use crate::redis::resp::{self, decode_with, parse_push, Cmd, Limits, Push, Reply};

/// `resp_reply`: one byte of limits (bits 0-1 pick `max_bytes`, bits 2-4
/// `max_depth` 1-8), one seeding the cuts, then the stream, read as
/// Redis replies. The stream decoded whole and decoded in cuts gives the
/// same replies and fails (or not) the same way; the scan and
/// redis-protocol's decoder agree on every frame's length; no reply is
/// longer or deeper than the limits; every reply re-encodes to bytes that
/// decode to it. The stream's pieces (split at NUL) also go out as a
/// command, which must decode to an array of those bulk strings, and as a
/// `message` push, which must parse back to its channel and payload.
pub fn check_resp_reply(data: &[u8]) {
    let Some((&[knobs, seed], stream)) = data.split_first_chunk::<2>() else {
        return;
    };
    let limits = Limits {
        max_bytes: [16, 256, 4096, 1 << 20][usize::from(knobs & 3)],
        max_depth: 1 + usize::from((knobs >> 2) & 7),
    };
    let whole = decode_in_cuts(stream, &[stream.len()], &limits);
    let split = decode_in_cuts(stream, &cuts(seed, stream.len()), &limits);
    assert_eq!(whole.replies, split.replies, "cut stream differs");
    assert_eq!(
        whole.failed.is_some(),
        split.failed.is_some(),
        "cut stream fails differently: {:?} vs {:?}",
        whole.failed,
        split.failed
    );
    if let Some(err) = &whole.failed {
        assert!(
            // Other errors may quote the input, so only the prefix counts.
            !err.starts_with("decoder disagrees") && !err.starts_with("decoder wants more"),
            "scan and decoder disagree: {err}"
        );
    }
    for (reply, len) in &whole.replies {
        assert!(
            *len <= limits.max_bytes,
            "{len}-byte reply over {}",
            limits.max_bytes
        );
        assert!(
            depth(reply) <= limits.max_depth,
            "reply deeper than {}",
            limits.max_depth
        );
        check_reencodes(reply);
    }
    let args: Vec<&[u8]> = stream.split(|&b| b == 0).collect();
    check_command(&args);
    if let [channel, payload, ..] = args[..] {
        check_message_push(channel, payload);
    }
}

/// What decoding a stream gave: each reply with its encoded length, and
/// the error that stopped it, if any.
struct Decoded {
    replies: Vec<(Reply, usize)>,
    failed: Option<String>,
}

fn decode_in_cuts(stream: &[u8], cut_lens: &[usize], limits: &Limits) -> Decoded {
    let mut out = Decoded {
        replies: Vec::new(),
        failed: None,
    };
    let mut buf = BytesMut::new();
    let mut rest = stream;
    for &n in cut_lens {
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match decode_with(&mut buf, limits) {
                Ok(Some(reply)) => out.replies.push((reply, before - buf.len())),
                Ok(None) => {
                    assert_eq!(buf.len(), before, "an incomplete reply consumed bytes");
                    break;
                }
                Err(e) => {
                    out.failed = Some(e.0);
                    return out;
                }
            }
        }
    }
    out
}

fn depth(reply: &Reply) -> usize {
    match reply {
        Reply::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn check_reencodes(reply: &Reply) {
    let mut wire = BytesMut::new();
    reply.encode(&mut wire);
    let len = wire.len();
    let again = resp::decode(&mut wire).expect("re-encoded reply decodes");
    assert_eq!(again.as_ref(), Some(reply), "re-encoding changed the reply");
    assert!(
        wire.is_empty(),
        "re-encoded reply left {} of {len} bytes",
        wire.len()
    );
}

fn check_command(args: &[&[u8]]) {
    let mut cmd = Cmd::new("FUZZ");
    args.iter().for_each(|a| cmd.push(a));
    assert_eq!(cmd.n_args(), args.len() + 1);
    let mut wire = BytesMut::new();
    cmd.encode_into(&mut wire);
    let decoded = resp::decode(&mut wire).expect("a command is valid RESP");
    let want: Vec<Reply> = std::iter::once(&b"FUZZ"[..])
        .chain(args.iter().copied())
        .map(|a| Reply::Bulk(Bytes::copy_from_slice(a)))
        .collect();
    // Default limits: a huge command would be refused as a reply, not mis-read.
    if let Some(decoded) = decoded {
        assert_eq!(
            decoded,
            Reply::Array(want),
            "command does not decode to its arguments"
        );
        assert!(wire.is_empty(), "command left bytes behind");
    }
}

fn check_message_push(channel: &[u8], payload: &[u8]) {
    let mut push = Cmd::new("message");
    push.push(channel);
    push.push(payload);
    let mut wire = BytesMut::new();
    push.encode_into(&mut wire);
    let reply = resp::decode(&mut wire).expect("valid").expect("complete");
    let want = Push::Message {
        channel: Bytes::copy_from_slice(channel),
        payload: Bytes::copy_from_slice(payload),
    };
    assert_eq!(parse_push(reply), Ok(want));
}
