//! RFC 6455 frame codec: a decoder that turns received bytes into
//! [`Event`]s, and encoders that build server frames as shared [`Bytes`].
//!
//! This is the only module that imports tungstenite, and it does no I/O:
//! the connection reads into a shard-wide buffer and hands the bytes here.
//! tungstenite parses frame headers and close codes and derives the accept
//! key; the per-connection state is ours, so an idle connection holds no
//! buffer at all (tungstenite's own `WebSocket` reserves 128 KiB each).

use std::io::Cursor;

use bytes::{BufMut, Bytes, BytesMut};
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

use crate::deflate::{Deflater, InflateError, Inflater};
use crate::error::{CloseReason, Violation};

/// Largest payload of a control frame (RFC 6455 5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;
/// Bytes of a partly arrived text frame unmasked and checked per step: a
/// stack buffer, so checking a frame early allocates nothing.
const UTF8_CHUNK: usize = 1024;
/// Room left in front of an encoded payload for the longest server frame
/// header (2 bytes + 8-byte length; servers never mask).
const MAX_SERVER_HEADER: usize = 10;

/// A server ping with an empty payload; one static frame for every connection.
pub static PING: Bytes = Bytes::from_static(&[0x89, 0x00]);

/// Something the peer said, decoded from one or more frames.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete text message, already validated as UTF-8.
    Text(&'a str),
    /// A complete binary message.
    Binary(&'a [u8]),
    /// A ping; the caller answers with [`pong`].
    Ping(&'a [u8]),
    /// A pong (only its arrival matters).
    Pong,
    /// A valid close frame; `1005` stands for "no status code".
    Close(u16),
}

/// Per-connection decoder state. Empty (no heap memory) between messages.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Bytes of a frame that has not fully arrived yet.
    pub partial: Vec<u8>,
    /// Payload of a fragmented message collected so far.
    message: Vec<u8>,
    /// Opcode of the fragmented message in progress (`Some` while one is open).
    fragmented: Option<Data>,
    /// Prefix of `message` known to be valid UTF-8 (text only).
    utf8_valid: usize,
    /// Payload bytes of the text frame that has not fully arrived (the one
    /// at the start of `partial`) already checked as UTF-8, up to a code
    /// point boundary; 0 when no such frame is held.
    partial_utf8_valid: usize,
    /// The fragmented message in progress is compressed (RSV1 on its first
    /// frame): `message` holds DEFLATE data, inflated at its last frame.
    compressed: bool,
}

impl Decoder {
    /// Decodes every complete frame in `buf` (unmasking in place), calling
    /// `on_event` for each message or control frame. Returns how many bytes
    /// were consumed; the rest is an incomplete frame for the caller to keep.
    /// Stops early, with the consumed count so far, if `on_event` returns false.
    ///
    /// `inflater` is the shard's decompressor when the connection negotiated
    /// permessage-deflate (RSV1 then marks a compressed message), `None`
    /// otherwise (RSV1 is then a protocol error). `max_message` bounds a
    /// message both as received and once inflated.
    pub fn decode(
        &mut self,
        buf: &mut [u8],
        max_message: usize,
        mut inflater: Option<&mut Inflater>,
        mut on_event: impl FnMut(Event<'_>) -> bool,
    ) -> Result<usize, CloseReason> {
        let mut pos = 0;
        while pos < buf.len() {
            let mut cursor = Cursor::new(&buf[pos..]);
            let (header, len) = match FrameHeader::parse(&mut cursor) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => break,
                Err(_) => return Err(CloseReason::Protocol(Violation::ReservedOpcode)),
            };
            let header_len = cursor.position() as usize;
            self.check_header(&header, len, max_message, inflater.is_some())?;
            let len = len as usize; // check_header bounded it by max_message.
            let start = pos + header_len;
            if buf.len() - start < len {
                self.check_incomplete_text(&header, &buf[start..])?;
                break;
            }
            self.partial_utf8_valid = 0;
            pos = start + len;
            let payload = &mut buf[start..pos];
            if let Some(mask) = header.mask {
                apply_mask(payload, mask);
            }
            let inflater = inflater.as_deref_mut();
            if !self.on_frame(&header, payload, max_message, inflater, &mut on_event)? {
                return Ok(pos);
            }
        }
        Ok(pos)
    }

    /// True when no fragmented message or partial frame is held: such a
    /// decoder need not be kept between reads.
    pub fn is_idle(&self) -> bool {
        self.partial.is_empty() && self.fragmented.is_none()
    }

    /// Releases memory a finished large message left behind.
    pub fn shrink(&mut self) {
        if self.partial.is_empty() && self.partial.capacity() > 0 {
            self.partial = Vec::new();
        }
        if self.fragmented.is_none() && self.message.capacity() > 0 {
            self.message = Vec::new();
        }
    }

    fn check_header(
        &self,
        h: &FrameHeader,
        len: u64,
        max_message: usize,
        deflate: bool,
    ) -> Result<(), CloseReason> {
        // RFC 7692 6: RSV1 marks a compressed message, on its first frame
        // only, and only where the extension was negotiated.
        let compressed_start = matches!(h.opcode, OpCode::Data(Data::Text | Data::Binary));
        if (h.rsv1 && !(deflate && compressed_start)) || h.rsv2 || h.rsv3 {
            return Err(CloseReason::Protocol(Violation::ReservedBits));
        }
        if h.mask.is_none() {
            return Err(CloseReason::Protocol(Violation::NotMasked));
        }
        match h.opcode {
            OpCode::Control(_) if !h.is_final => {
                Err(CloseReason::Protocol(Violation::FragmentedControl))
            }
            OpCode::Control(_) if len > MAX_CONTROL_PAYLOAD => {
                Err(CloseReason::Protocol(Violation::ControlTooLong))
            }
            OpCode::Data(Data::Continue) if self.fragmented.is_none() => {
                Err(CloseReason::Protocol(Violation::OrphanContinuation))
            }
            OpCode::Data(Data::Text | Data::Binary) if self.fragmented.is_some() => {
                Err(CloseReason::Protocol(Violation::NestedMessage))
            }
            OpCode::Data(_) if len > (max_message - self.message.len().min(max_message)) as u64 => {
                Err(CloseReason::TooBig)
            }
            _ => Ok(()),
        }
    }

    /// Fails a text frame whose payload has only partly arrived as soon as
    /// that part cannot begin valid UTF-8 (RFC 6455 8.1 lets an endpoint
    /// fail at once, and Autobahn 6.4.3/6.4.4 call waiting for the rest
    /// non-strict). `arrived` is the frame's payload so far, still masked;
    /// only the bytes not checked by an earlier call are unmasked (into a
    /// small copy: the frame is unmasked in place once whole) and checked,
    /// so a large frame arriving in many reads costs one pass.
    fn check_incomplete_text(
        &mut self,
        h: &FrameHeader,
        arrived: &[u8],
    ) -> Result<(), CloseReason> {
        // A compressed message (RSV1 on its first frame) carries DEFLATE
        // data, checked as UTF-8 only once inflated.
        let is_text = match h.opcode {
            OpCode::Data(Data::Text) => !h.rsv1,
            OpCode::Data(Data::Continue) => self.fragmented == Some(Data::Text) && !self.compressed,
            _ => false,
        };
        let Some(mask) = h.mask.filter(|_| is_text) else {
            return Ok(());
        };
        let mut checked = self.partial_utf8_valid;
        while checked < arrived.len() {
            // A sequence cut by the previous fragment is finished by this
            // frame's first bytes, so it leads the first chunk.
            let carry: &[u8] = if checked == 0 {
                &self.message[self.utf8_valid.min(self.message.len())..]
            } else {
                &[]
            };
            let mut chunk = [0u8; UTF8_CHUNK];
            chunk[..carry.len()].copy_from_slice(carry);
            let n = (UTF8_CHUNK - carry.len()).min(arrived.len() - checked);
            for (i, (out, b)) in chunk[carry.len()..carry.len() + n]
                .iter_mut()
                .zip(&arrived[checked..checked + n])
                .enumerate()
            {
                *out = b ^ mask[(checked + i) % 4];
            }
            let valid = match std::str::from_utf8(&chunk[..carry.len() + n]) {
                Ok(_) => carry.len() + n,
                Err(e) if e.error_len().is_none() => e.valid_up_to(),
                Err(_) => return Err(CloseReason::InvalidUtf8),
            };
            let advanced = valid.saturating_sub(carry.len());
            if checked + n == arrived.len() {
                self.partial_utf8_valid = checked + advanced;
                break;
            }
            // A chunk holds far more than one cut sequence (at most 3
            // bytes), so each full chunk advances.
            checked += advanced;
        }
        Ok(())
    }

    fn on_frame(
        &mut self,
        h: &FrameHeader,
        payload: &[u8],
        max_message: usize,
        inflater: Option<&mut Inflater>,
        on_event: &mut impl FnMut(Event<'_>) -> bool,
    ) -> Result<bool, CloseReason> {
        let data = match h.opcode {
            OpCode::Control(Control::Ping) => return Ok(on_event(Event::Ping(payload))),
            OpCode::Control(Control::Pong) => return Ok(on_event(Event::Pong)),
            OpCode::Control(Control::Close) => {
                return Ok(on_event(Event::Close(close_code(payload)?)))
            }
            OpCode::Control(Control::Reserved(_)) | OpCode::Data(Data::Reserved(_)) => {
                return Err(CloseReason::Protocol(Violation::ReservedOpcode))
            }
            OpCode::Data(data) => data,
        };
        if h.is_final && self.fragmented.is_none() {
            // The common case: a whole message in one frame, decoded in place
            // (or inflated into the shard's buffer).
            let payload = match inflater {
                Some(inflater) if h.rsv1 => inflate(inflater, payload, max_message)?,
                _ => payload,
            };
            return message_event(data, payload, on_event);
        }
        if self.fragmented.is_none() {
            self.fragmented = Some(data);
            self.utf8_valid = 0;
            self.compressed = h.rsv1;
        }
        if self.message.len() + payload.len() > max_message {
            return Err(CloseReason::TooBig);
        }
        self.message.extend_from_slice(payload);
        let is_text = self.fragmented == Some(Data::Text);
        // A compressed message's UTF-8 is checked once it is inflated.
        if is_text && !self.compressed {
            self.check_utf8_prefix(h.is_final)?;
        }
        if !h.is_final {
            return Ok(true);
        }
        // The message's opcode is its first frame's (this one is a continuation).
        let data = self.fragmented.take().unwrap_or(data);
        let message = std::mem::take(&mut self.message);
        let go_on = match inflater {
            Some(inflater) if self.compressed => {
                message_event(data, inflate(inflater, &message, max_message)?, on_event)?
            }
            _ => message_event(data, &message, on_event)?,
        };
        self.compressed = false;
        self.message = message;
        self.message.clear();
        self.shrink();
        Ok(go_on)
    }

    /// Validates the newly arrived part of a fragmented text message so an
    /// invalid sequence fails at once, not at the final fragment. A sequence
    /// cut at the end of a non-final fragment is fine.
    fn check_utf8_prefix(&mut self, is_final: bool) -> Result<(), CloseReason> {
        match std::str::from_utf8(&self.message[self.utf8_valid..]) {
            Ok(_) => self.utf8_valid = self.message.len(),
            Err(e) if e.error_len().is_none() && !is_final => self.utf8_valid += e.valid_up_to(),
            Err(_) => return Err(CloseReason::InvalidUtf8),
        }
        Ok(())
    }
}

/// The event for a whole message's payload, text validated as UTF-8.
fn message_event(
    data: Data,
    payload: &[u8],
    on_event: &mut impl FnMut(Event<'_>) -> bool,
) -> Result<bool, CloseReason> {
    match data {
        Data::Text => match std::str::from_utf8(payload) {
            Ok(text) => Ok(on_event(Event::Text(text))),
            Err(_) => Err(CloseReason::InvalidUtf8),
        },
        _ => Ok(on_event(Event::Binary(payload))),
    }
}

/// Inflates a compressed message within the size limit.
fn inflate<'i>(
    inflater: &'i mut Inflater,
    payload: &[u8],
    max_message: usize,
) -> Result<&'i [u8], CloseReason> {
    inflater.inflate(payload, max_message).map_err(|e| match e {
        InflateError::TooBig => CloseReason::TooBig,
        InflateError::Invalid => CloseReason::Protocol(Violation::BadCompression),
    })
}

/// Validates a close frame's payload; returns its code (1005 when absent).
fn close_code(payload: &[u8]) -> Result<u16, CloseReason> {
    match payload.len() {
        0 => Ok(1005),
        1 => Err(CloseReason::Protocol(Violation::OneByteClose)),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !CloseCode::from(code).is_allowed() || (1012..3000).contains(&code) {
                return Err(CloseReason::Protocol(Violation::InvalidCloseCode));
            }
            std::str::from_utf8(&payload[2..]).map_err(|_| CloseReason::InvalidUtf8)?;
            Ok(code)
        }
    }
}

/// XORs a client payload with its mask, a word at a time.
fn apply_mask(buf: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = buf.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let v = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

/// Frame type of a message the server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text frame (opcode 1).
    Text,
    /// Binary frame (opcode 2).
    Binary,
}

/// Encodes one unfragmented, unmasked frame with a copy of `payload`.
pub fn encode(kind: Kind, payload: &[u8]) -> Bytes {
    encode_with(kind, payload.len(), |buf| buf.extend_from_slice(payload))
}

/// Encodes one frame whose payload `write` appends; `size_hint` sizes the
/// single allocation. The header is written in front afterwards, so the
/// payload is never copied to make room for it.
pub fn encode_with(kind: Kind, size_hint: usize, write: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    encode_frame(kind, false, size_hint, write)
}

/// A server data frame's copy compressed for permessage-deflate (RSV1 set),
/// or `None` when it should go as it is: a control frame, a payload under
/// `min_size`, or one that does not get smaller. With no context takeover
/// the result depends on the frame alone, so one copy serves every
/// connection that negotiated the extension.
pub fn compress_frame(frame: &[u8], deflater: &mut Deflater, min_size: usize) -> Option<Bytes> {
    let (header, len) = FrameHeader::parse(&mut Cursor::new(frame)).ok()??;
    let payload = &frame[header.len(len)..];
    let kind = match header.opcode {
        OpCode::Data(Data::Text) => Kind::Text,
        OpCode::Data(Data::Binary) => Kind::Binary,
        _ => return None,
    };
    if !header.is_final || header.rsv1 || payload.len() < min_size {
        return None;
    }
    let mut ok = false;
    let compressed = encode_frame(kind, true, payload.len() / 2, |buf| {
        ok = deflater.compress(payload, buf);
    });
    (ok && compressed.len() < frame.len()).then_some(compressed)
}

/// The kind and payload of a server data frame made by [`encode`] (whole,
/// unmasked, uncompressed); `None` for anything else.
pub fn data_payload(frame: &[u8]) -> Option<(Kind, &[u8])> {
    let (header, len) = FrameHeader::parse(&mut Cursor::new(frame)).ok()??;
    let payload = frame.get(header.len(len)..)?;
    let kind = match header.opcode {
        OpCode::Data(Data::Text) => Kind::Text,
        OpCode::Data(Data::Binary) => Kind::Binary,
        _ => return None,
    };
    (header.is_final && !header.rsv1 && header.mask.is_none() && payload.len() as u64 == len)
        .then_some((kind, payload))
}

/// A server text frame's payload rewritten by `convert` (which appends
/// the new payload) into a frame of `kind`; `None` when the frame is not
/// one whole uncompressed text message (a control frame goes as it is).
pub fn convert_frame<E>(
    frame: &[u8],
    kind: Kind,
    convert: impl FnOnce(&[u8], &mut Vec<u8>) -> Result<(), E>,
) -> Option<Result<Bytes, E>> {
    let (header, len) = FrameHeader::parse(&mut Cursor::new(frame)).ok()??;
    if header.opcode != OpCode::Data(Data::Text) || !header.is_final || header.rsv1 {
        return None;
    }
    let payload = &frame[header.len(len)..];
    let mut result = Ok(());
    let converted = encode_frame(kind, false, payload.len(), |buf| {
        result = convert(payload, buf);
    });
    Some(result.map(|()| converted))
}

/// Encodes one frame, RSV1 set if `rsv1`, whose payload `write` appends.
fn encode_frame(
    kind: Kind,
    rsv1: bool,
    size_hint: usize,
    write: impl FnOnce(&mut Vec<u8>),
) -> Bytes {
    let mut buf = Vec::with_capacity(MAX_SERVER_HEADER + size_hint);
    buf.resize(MAX_SERVER_HEADER, 0);
    write(&mut buf);
    let len = (buf.len() - MAX_SERVER_HEADER) as u64;
    let opcode = match kind {
        Kind::Text => OpCode::Data(Data::Text),
        Kind::Binary => OpCode::Data(Data::Binary),
    };
    let header = FrameHeader {
        opcode,
        rsv1,
        ..FrameHeader::default()
    };
    let header_len = header.len(len);
    let start = MAX_SERVER_HEADER - header_len;
    let mut slot = &mut buf[start..MAX_SERVER_HEADER];
    // Writing into a slice sized by `header.len` cannot fail.
    header
        .format(len, &mut slot)
        .expect("header fits its computed length");
    let mut bytes = Bytes::from(buf);
    let _ = bytes.split_to(start);
    bytes
}

/// A pong with an empty payload, the answer to most pings; shared, so a
/// flood of empty pings queues no heap object per reply.
pub static PONG: Bytes = Bytes::from_static(&[0x8A, 0x00]);

/// A pong echoing a ping's payload (at most 125 bytes, checked by the
/// decoder). An empty payload costs no allocation ([`PONG`]).
pub fn pong(payload: &[u8]) -> Bytes {
    if payload.is_empty() {
        return PONG.clone();
    }
    let mut buf = BytesMut::with_capacity(2 + payload.len());
    buf.put_u8(0x8A);
    buf.put_u8(payload.len() as u8);
    buf.put_slice(payload);
    buf.freeze()
}

/// A close frame; code 1005 ("no status") is sent as an empty payload.
pub fn close(code: u16, reason: &str) -> Bytes {
    if code == 1005 {
        return Bytes::from_static(&[0x88, 0x00]);
    }
    // Cut on a character boundary: the peer fails a close reason that is
    // not UTF-8 (1007), so a cut sequence would turn our close into an error.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason.as_bytes()[..end];
    let mut buf = BytesMut::with_capacity(4 + reason.len());
    buf.put_u8(0x88);
    buf.put_u8((2 + reason.len()) as u8);
    buf.put_u16(code);
    buf.put_slice(reason);
    buf.freeze()
}

/// The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    tungstenite::handshake::derive_accept_key(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn decode_all(bytes: &mut [u8], max: usize) -> (Result<usize, CloseReason>, Vec<String>) {
        let mut dec = Decoder::default();
        let mut seen = Vec::new();
        let r = dec.decode(bytes, max, None, |e| {
            seen.push(format!("{e:?}"));
            true
        });
        (r, seen)
    }

    #[test]
    fn decodes_fragments_around_a_ping() {
        let mut input = client_frame(0x01, b"he");
        input.extend(client_frame(0x89, b"p"));
        input.extend(client_frame(0x80, b"llo"));
        let n = input.len();
        let (r, seen) = decode_all(&mut input, 1024);
        assert_eq!(r, Ok(n));
        assert_eq!(seen, vec![r#"Ping([112])"#, r#"Text("hello")"#]);
    }

    #[test]
    fn keeps_an_incomplete_frame_for_later() {
        let mut input = client_frame(0x81, b"hello");
        input.truncate(8);
        assert_eq!(decode_all(&mut input, 1024).0, Ok(0));
    }

    #[test]
    fn size_limit_is_inclusive() {
        let mut ok = client_frame(0x82, &[7u8; 300]);
        assert!(decode_all(&mut ok, 300).0.is_ok());
        let mut big = client_frame(0x82, &[7u8; 301]);
        assert_eq!(decode_all(&mut big, 300).0, Err(CloseReason::TooBig));
    }

    #[test]
    fn invalid_utf8_fails_in_the_first_fragment() {
        let mut input = client_frame(
            0x01,
            &[0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xce, 0xbc, 0xf4, 0x90],
        );
        assert_eq!(
            decode_all(&mut input, 1024).0,
            Err(CloseReason::InvalidUtf8)
        );
        // A code point cut at the fragment boundary is fine.
        let mut input = client_frame(0x01, &[0xce]);
        input.extend(client_frame(0x80, &[0xba]));
        assert!(decode_all(&mut input, 1024).0.is_ok());
    }

    /// Feeds `input` in cuts of `cut` bytes, keeping the undecoded rest as
    /// the connection does; returns the first error and the events.
    fn decode_in_cuts(input: &[u8], cut: usize) -> (Result<(), CloseReason>, Vec<String>) {
        let mut dec = Decoder::default();
        let mut seen = Vec::new();
        for chunk in input.chunks(cut) {
            let mut buf = std::mem::take(&mut dec.partial);
            buf.extend_from_slice(chunk);
            let consumed = dec.decode(&mut buf, 1 << 20, None, |e| {
                seen.push(format!("{e:?}"));
                true
            });
            match consumed {
                Ok(n) => dec.partial = buf[n..].to_vec(),
                Err(e) => return (Err(e), seen),
            }
        }
        (Ok(()), seen)
    }

    #[test]
    fn text_frames_checked_before_they_arrive_whole_keep_valid_text() {
        let text = "κόσμε 𝄞 日本語 ".repeat(200); // 5,800 bytes: several check chunks
        let mut input = client_frame(0x01, &text.as_bytes()[..3001]);
        input.extend(client_frame(0x80, &text.as_bytes()[3001..]));
        input.extend(client_frame(0x81, text.as_bytes()));
        for cut in [1, 2, 3, 5, 7, 1000, 1023, 1024, 1025, 4093, input.len()] {
            let (r, seen) = decode_in_cuts(&input, cut);
            assert_eq!(r, Ok(()), "cut {cut}");
            assert_eq!(seen, vec![format!("Text({text:?})"); 2], "cut {cut}");
        }
    }

    #[test]
    fn invalid_utf8_fails_before_its_frame_has_arrived() {
        let mut payload = "κόσμε".repeat(500).into_bytes();
        payload[4000] = 0xff;
        let input = client_frame(0x81, &payload);
        // Up to 100 bytes past the invalid one; the frame's end never comes.
        let arrived = &input[..input.len() - (payload.len() - 4100)];
        for cut in [1, 3, 1024, 4000] {
            let (r, _) = decode_in_cuts(arrived, cut);
            assert_eq!(r, Err(CloseReason::InvalidUtf8), "cut {cut}");
        }
        // A code point the previous fragment cut, broken by the next frame's
        // first byte before that frame is whole.
        let mut input = client_frame(0x01, &[b'a', 0xce]);
        let cont = client_frame(0x80, b"bcdefgh");
        input.extend_from_slice(&cont[..cont.len() - 6]);
        assert_eq!(decode_in_cuts(&input, 1).0, Err(CloseReason::InvalidUtf8));
    }

    #[test]
    fn rejects_what_rfc6455_forbids() {
        let cases: Vec<(Vec<u8>, CloseReason)> = vec![
            (
                client_frame(0xC1, b"x"),
                CloseReason::Protocol(Violation::ReservedBits),
            ),
            (
                client_frame(0x83, b""),
                CloseReason::Protocol(Violation::ReservedOpcode),
            ),
            (
                client_frame(0x80, b"x"),
                CloseReason::Protocol(Violation::OrphanContinuation),
            ),
            (
                client_frame(0x09, b""),
                CloseReason::Protocol(Violation::FragmentedControl),
            ),
            (
                client_frame(0x89, &[0u8; 126]),
                CloseReason::Protocol(Violation::ControlTooLong),
            ),
            (
                client_frame(0x88, &[3]),
                CloseReason::Protocol(Violation::OneByteClose),
            ),
            (
                client_frame(0x88, &1005u16.to_be_bytes()),
                CloseReason::Protocol(Violation::InvalidCloseCode),
            ),
            (
                vec![0x81, 0x01, b'x'],
                CloseReason::Protocol(Violation::NotMasked),
            ),
        ];
        for (mut input, want) in cases {
            assert_eq!(decode_all(&mut input, 1024).0, Err(want));
        }
    }

    #[test]
    fn encodes_every_length_format() {
        for n in [0usize, 125, 126, 65535, 65536] {
            let frame = encode(Kind::Binary, &vec![9u8; n]);
            let (h, len) = FrameHeader::parse(&mut Cursor::new(&frame[..]))
                .unwrap()
                .unwrap();
            assert_eq!(len as usize, n);
            assert_eq!(frame.len(), h.len(len) + n);
        }
    }
}
