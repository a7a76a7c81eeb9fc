//! `ws_decoder`: the RFC 6455 `Decoder` on client bytes, whole and cut,
//! checked against a header walk of our own and the server's encoders.

use super::cuts;
use crate::error::CloseReason;
use crate::ws::{self, Decoder, Event, Kind};

/// `ws_decoder`: one byte of mode (bit 0: raw bytes or frames built from a
/// spec; bits 1-3: pause the decoder every N events), one for
/// `--max-message-size`, one seeding the cuts, then the stream. The stream
/// decoded whole and decoded in cuts (with pauses) gives the same events,
/// error and held bytes; the held bytes never exceed the limit (at least
/// 125, for control frames) plus one header; consumed frames are masked
/// (checked by a header walker of our own); every event re-encodes with the
/// server's encoders to a frame that decodes to the same event.
pub fn check_ws_decoder(data: &[u8]) {
    let Some((&[mode, max_sel, seed], rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let max = match max_sel % 4 {
        0 => 1 + usize::from(max_sel >> 2),
        1 => 125,
        2 => 4096,
        _ => 1 << 20,
    };
    let stream = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        client_frames(rest)
    };
    let pause_every = usize::from((mode >> 1) & 7);
    let whole = decode_in_cuts(&stream, &[stream.len()], max, 0);
    let split = decode_in_cuts(&stream, &cuts(seed, stream.len()), max, pause_every);
    assert_eq!(whole, split, "cut stream differs (max={max})");
    check_frame_walk(&stream, &whole);
    let reason = String::from_utf8_lossy(rest);
    for seen in &whole.events {
        check_reencodes(seen, max, &reason);
    }
}

/// Longest client frame header: 2 bytes, an 8-byte length and the mask.
const MAX_CLIENT_HEADER: usize = 14;
/// Mask key for re-encoded frames; any key will do.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// An owned [`Event`], so runs can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seen {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    Close(u16),
}

/// What one decoder run produced; `held` is None after an error (the
/// connection drops its decoder then, so nothing is held).
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    events: Vec<Seen>,
    error: Option<CloseReason>,
    held: Option<usize>,
}

/// Feeds `stream` in chunks of `cut_lens`, keeping undecoded bytes in
/// `Decoder::partial` as `Connection::on_bytes` does, and resuming at once
/// when the callback paused (the connection resumes after a subscribe).
fn decode_in_cuts(stream: &[u8], cut_lens: &[usize], max: usize, pause_every: usize) -> Decoded {
    let mut dec = Decoder::default();
    let mut out = Decoded {
        events: Vec::new(),
        error: None,
        held: None,
    };
    let mut fed = 0;
    for &len in cut_lens {
        let mut chunk = stream[fed..fed + len].to_vec();
        fed += len;
        let mut paused = if dec.partial.is_empty() {
            let (consumed, paused) = decode_step(&mut dec, &mut chunk, max, pause_every, &mut out);
            if out.error.is_none() {
                dec.partial.extend_from_slice(&chunk[consumed..]);
            }
            paused
        } else {
            dec.partial.extend_from_slice(&chunk);
            drain_held(&mut dec, max, pause_every, &mut out)
        };
        while paused && out.error.is_none() {
            paused = drain_held(&mut dec, max, pause_every, &mut out);
        }
        if out.error.is_some() {
            return out;
        }
        // Only an incomplete frame is held, and its header passed the limit:
        // the message limit for data, 125 bytes for control frames (which
        // exceeds a --max-message-size under 125).
        assert!(
            dec.partial.len() <= max.max(125) + MAX_CLIENT_HEADER,
            "decoder holds {} bytes with a {max}-byte limit",
            dec.partial.len()
        );
        dec.shrink();
    }
    out.held = Some(dec.partial.len());
    out
}

/// Decodes the held bytes and keeps the rest, as `drain_backlog` does.
fn drain_held(dec: &mut Decoder, max: usize, pause_every: usize, out: &mut Decoded) -> bool {
    let mut buf = std::mem::take(&mut dec.partial);
    let (consumed, paused) = decode_step(dec, &mut buf, max, pause_every, out);
    if out.error.is_none() {
        buf.drain(..consumed);
        dec.partial = buf;
    }
    paused
}

/// One `Decoder::decode` call; returns (consumed, paused) and records events
/// and any error in `out`.
fn decode_step(
    dec: &mut Decoder,
    buf: &mut [u8],
    max: usize,
    pause_every: usize,
    out: &mut Decoded,
) -> (usize, bool) {
    let mut paused = false;
    let events = &mut out.events;
    let result = dec.decode(buf, max, None, |event| {
        check_event(&event, max);
        events.push(Seen::from(&event));
        paused = pause_every != 0 && events.len().is_multiple_of(pause_every);
        !paused
    });
    match result {
        Ok(consumed) => (consumed, paused),
        Err(reason) => {
            out.error = Some(reason);
            (0, false)
        }
    }
}

/// Bounds every event must respect (RFC 6455 5.5 and 7.4.1, and the limit).
fn check_event(event: &Event<'_>, max: usize) {
    match *event {
        Event::Text(text) => assert!(text.len() <= max, "text over the limit"),
        Event::Binary(bytes) => assert!(bytes.len() <= max, "binary over the limit"),
        Event::Ping(payload) => assert!(payload.len() <= 125, "ping payload over 125"),
        Event::Pong => {}
        Event::Close(code) => assert!(
            matches!(code, 1000..=1003 | 1005 | 1007..=1011 | 3000..=4999),
            "close code {code} may not be received"
        ),
    }
}

impl From<&Event<'_>> for Seen {
    fn from(event: &Event<'_>) -> Seen {
        match *event {
            Event::Text(text) => Seen::Text(text.to_string()),
            Event::Binary(bytes) => Seen::Binary(bytes.to_vec()),
            Event::Ping(payload) => Seen::Ping(payload.to_vec()),
            Event::Pong => Seen::Pong,
            Event::Close(code) => Seen::Close(code),
        }
    }
}

/// Checks the decoder's verdict against a header walk of our own (RFC 6455
/// 5.2, not tungstenite's parser): after a clean run, the consumed bytes are
/// whole frames, each masked with clear RSV bits, and what is held is one
/// incomplete, masked frame. So an unmasked frame is never accepted.
fn check_frame_walk(stream: &[u8], decoded: &Decoded) {
    let Some(held) = decoded.held else {
        return;
    };
    let consumed = stream.len() - held;
    let mut pos = 0;
    while pos < consumed {
        let h = frame_header(&stream[pos..]).expect("consumed a partial header");
        assert!(h.masked && h.rsv == 0, "accepted frame at {pos}: {h:?}");
        pos += h.len + usize::try_from(h.payload).expect("consumed a huge frame");
        assert!(pos <= consumed, "consumed half a frame");
    }
    if let Some(h) = frame_header(&stream[pos..]) {
        assert!(h.masked && h.rsv == 0, "held a refusable frame: {h:?}");
        let complete = (h.len as u64).saturating_add(h.payload) <= held as u64;
        assert!(!complete, "held a complete frame");
    }
}

/// A frame header as RFC 6455 5.2 lays it out.
#[derive(Debug)]
struct FrameHead {
    /// Header bytes, mask included.
    len: usize,
    payload: u64,
    masked: bool,
    rsv: u8,
}

/// The header at the start of `bytes`, if all of it is there.
fn frame_header(bytes: &[u8]) -> Option<FrameHead> {
    let (&[b0, b1], rest) = bytes.split_first_chunk::<2>()?;
    let (ext, payload) = match b1 & 0x7f {
        126 => (2, u64::from(u16::from_be_bytes(*rest.first_chunk::<2>()?))),
        127 => (8, u64::from_be_bytes(*rest.first_chunk::<8>()?)),
        n => (0, u64::from(n)),
    };
    let masked = b1 & 0x80 != 0;
    let len = 2 + ext + if masked { 4 } else { 0 };
    (bytes.len() >= len).then_some(FrameHead {
        len,
        payload,
        masked,
        rsv: b0 & 0x70,
    })
}

/// Re-encodes an event with the server's encoders and decodes the result
/// (masked, as a client would send it): it must give the same event back.
fn check_reencodes(seen: &Seen, max: usize, reason: &str) {
    match seen {
        Seen::Text(text) => {
            let frame = ws::encode(Kind::Text, text.as_bytes());
            assert_eq!(redecode(&frame, max), std::slice::from_ref(seen));
        }
        Seen::Binary(bytes) => {
            let frame = ws::encode(Kind::Binary, bytes);
            assert_eq!(redecode(&frame, max), std::slice::from_ref(seen));
        }
        Seen::Ping(payload) => {
            let frame = ws::pong(payload);
            assert_eq!(frame[..2], [0x8A, payload.len() as u8], "pong header");
            assert_eq!(frame[2..], payload[..], "pong echoes the ping");
            assert_eq!(redecode(&frame, max), [Seen::Pong]);
        }
        Seen::Pong => {}
        Seen::Close(code) => {
            for reason in ["", reason] {
                let frame = ws::close(*code, reason);
                assert_eq!(redecode(&frame, max), [Seen::Close(*code)], "{frame:?}");
            }
        }
    }
}

/// Decodes one server frame as the server would if a client sent it: the
/// frame must be final and unmasked with clear RSV bits, and decode whole.
pub(super) fn redecode(frame: &[u8], max: usize) -> Vec<Seen> {
    assert_eq!(frame[0] & 0xF0, 0x80, "server frame: FIN set, RSV clear");
    assert_eq!(frame[1] & 0x80, 0, "server frames are not masked");
    let mut bytes = masked(frame);
    let mut dec = Decoder::default();
    let mut seen = Vec::new();
    let result = dec.decode(&mut bytes, max, None, |e| {
        seen.push(Seen::from(&e));
        true
    });
    assert_eq!(result, Ok(bytes.len()), "re-encoded frame {frame:?}");
    seen
}

/// The client form of a server frame: mask bit, key, masked payload.
fn masked(frame: &[u8]) -> Vec<u8> {
    let header = 2 + match frame[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&frame[..header]);
    out[1] |= 0x80;
    out.extend_from_slice(&MASK);
    let payload = frame[header..].iter().enumerate();
    out.extend(payload.map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// Builds client frames from a spec, so the fuzzer reaches deep decoder
/// states without finding masks and lengths by chance. Per frame: the first
/// header byte as is; a control byte (bit 7: leave unmasked, bit 6: length
/// times 1100, which reaches the 16- and 64-bit length forms, bits 0-5:
/// length); then the payload, repeated to length when the spec runs short.
fn client_frames(mut spec: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let [first, ctl, tail @ ..] = spec {
        let mut len = usize::from(ctl & 0x3f);
        if ctl & 0x40 != 0 {
            len *= 1100;
        }
        let take = len.min(tail.len());
        let payload: Vec<u8> = tail[..take].iter().copied().cycle().take(len).collect();
        let payload = if payload.len() < len {
            vec![0; len]
        } else {
            payload
        };
        spec = &tail[take..];
        let masked = ctl & 0x80 == 0;
        out.push(*first);
        let mask_bit = if masked { 0x80 } else { 0 };
        match len {
            0..=125 => out.push(mask_bit | len as u8),
            126..=0xFFFF => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        if masked {
            let key = [*first, *ctl, 0xa5, first ^ ctl];
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            out.extend_from_slice(&payload);
        }
    }
    out
}
