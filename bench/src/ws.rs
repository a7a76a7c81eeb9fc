//! Client side of RFC 6455, reduced to what a load generator needs: the
//! upgrade request, the status line of the answer, masked frames out and
//! unmasked server frames in. No I/O happens here, so it is unit-tested.
//!
//! Hand-rolled rather than tungstenite's `WebSocket`: that type reserves
//! its own read and write buffers per connection, and 19,000 idle
//! connections per process would cost the bench more memory than the
//! server under test.

/// Opcode of a text frame.
pub const OP_TEXT: u8 = 0x1;
/// Opcode of a binary frame.
pub const OP_BINARY: u8 = 0x2;
/// Opcode of a close frame.
pub const OP_CLOSE: u8 = 0x8;
/// Opcode of a ping.
pub const OP_PING: u8 = 0x9;
/// Opcode of a pong.
pub const OP_PONG: u8 = 0xA;

/// Largest server frame accepted. The bench's own messages are a few KiB;
/// a bigger length is a broken peer, and waiting for it would grow the
/// connection's receive buffer without bound. It also rejects lengths with
/// the top bit set, which RFC 6455 5.2 forbids.
pub const MAX_FRAME: u64 = 64 << 20;

/// A fixed key: the server only echoes its hash, and the bench does not
/// check the accept value (a non-101 status is what it counts).
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The HTTP upgrade request for `path` on `host`.
pub fn upgrade_request(host: &str, path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    write_upgrade_request(&mut out, host, path, None);
    out
}

/// Appends the upgrade request for `path` on `host` to `out`, with
/// `token=TOKEN` added to the path's query when a token is given (a JWT is
/// base64url and dots, so it needs no percent-encoding).
pub fn write_upgrade_request(out: &mut Vec<u8>, host: &str, path: &str, token: Option<&str>) {
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(path.as_bytes());
    if let Some(token) = token {
        out.extend_from_slice(if path.contains('?') { b"&" } else { b"?" });
        out.extend_from_slice(b"token=");
        out.extend_from_slice(token.as_bytes());
    }
    out.extend_from_slice(
        format!(
            " HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    );
}

/// Parses the head of the upgrade answer: `Ok(None)` until the blank line
/// has arrived, then the status code and the length of the head.
pub fn parse_upgrade_response(buf: &[u8]) -> Result<Option<(u16, usize)>, &'static str> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > 16 * 1024 {
            return Err("upgrade response head too long");
        }
        return Ok(None);
    };
    let line = &buf[..buf.iter().position(|&b| b == b'\r').unwrap_or(end)];
    let status = line
        .split(|&b| b == b' ')
        .nth(1)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or("malformed status line")?;
    Ok(Some((status, end + 4)))
}

/// Appends one final, masked client frame to `out`.
pub fn encode(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    encode_header(out, opcode, payload.len(), true);
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    for (i, b) in out[start..].iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Appends the header of one final frame of `len` payload bytes: opcode,
/// mask bit and the shortest length encoding, but not the masking key.
pub fn encode_header(out: &mut Vec<u8>, opcode: u8, len: usize, masked: bool) {
    let mask_bit = if masked { 0x80 } else { 0 };
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// One server frame decoded from a buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Opcode (low 4 bits of the first byte).
    pub opcode: u8,
    /// FIN bit.
    pub fin: bool,
    /// RSV1 bit: a permessage-deflate (compressed) message.
    pub rsv1: bool,
    /// Payload (servers never mask).
    pub payload: &'a [u8],
}

/// Decodes the frame at the start of `buf`: `Ok(None)` if it is incomplete,
/// else the frame and the bytes it took.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, &'static str> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b1 & 0x80 != 0 {
        return Err("server frame is masked");
    }
    let (len, mut at) = match b1 & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4),
        127 if buf.len() >= 10 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b), 10)
        }
        126 | 127 => return Ok(None),
        n => (n as u64, 2),
    };
    if len > MAX_FRAME {
        return Err("frame longer than 64 MiB (MAX_FRAME)");
    }
    // Fits: MAX_FRAME is far below usize::MAX.
    let len = len as usize;
    if buf.len() - at < len {
        return Ok(None);
    }
    let payload = &buf[at..at + len];
    at += len;
    Ok(Some((
        Frame {
            opcode: b0 & 0x0f,
            fin: b0 & 0x80 != 0,
            rsv1: b0 & 0x40 != 0,
            payload,
        },
        at,
    )))
}

/// The status code of a close frame's payload (1005 when it has none) and its reason.
pub fn close_code(payload: &[u8]) -> (u16, String) {
    if payload.len() < 2 {
        return (1005, String::new());
    }
    let code = u16::from_be_bytes([payload[0], payload[1]]);
    (code, String::from_utf8_lossy(&payload[2..]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unmask(frame: &[u8], hdr: usize) -> Vec<u8> {
        let mask = &frame[hdr - 4..hdr];
        frame[hdr..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i & 3])
            .collect()
    }

    #[test]
    fn encodes_short_medium_and_long_masked_frames() {
        for (len, hdr) in [(5usize, 6usize), (200, 8), (70_000, 14)] {
            let payload = vec![b'a'; len];
            let mut out = Vec::new();
            encode(&mut out, OP_TEXT, &payload, [1, 2, 3, 4]);
            assert_eq!(out[0], 0x81);
            assert_eq!(out[1] & 0x80, 0x80, "client frames are masked");
            assert_eq!(out.len(), hdr + len);
            assert_eq!(unmask(&out, hdr), payload);
        }
    }

    #[test]
    fn decodes_server_frames_and_waits_for_partial_ones() {
        let mut buf = vec![0x81, 126, 0x01, 0x00];
        buf.extend(std::iter::repeat_n(b'x', 256));
        assert_eq!(decode(&buf[..100]).unwrap(), None);
        let (frame, used) = decode(&buf).unwrap().unwrap();
        assert_eq!(
            (frame.opcode, frame.fin, frame.payload.len(), used),
            (1, true, 256, 260)
        );
        assert_eq!(decode(&[0x89]).unwrap(), None);
        assert!(decode(&[0x81, 0x81, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn rejects_frames_over_max_frame_without_waiting_for_them() {
        let header = |len: u64| {
            let mut b = vec![0x82, 127];
            b.extend_from_slice(&len.to_be_bytes());
            b
        };
        assert_eq!(decode(&header(MAX_FRAME)).unwrap(), None);
        assert!(decode(&header(MAX_FRAME + 1)).is_err());
        assert!(decode(&header(1 << 63)).is_err(), "top bit set");
        assert!(decode(&header(u64::MAX)).is_err());
    }

    #[test]
    fn unmasked_headers_match_the_masked_ones_but_for_the_mask_bit() {
        for len in [0usize, 125, 126, 65_535, 65_536] {
            let (mut masked, mut plain) = (Vec::new(), Vec::new());
            encode_header(&mut masked, OP_TEXT, len, true);
            encode_header(&mut plain, OP_TEXT, len, false);
            assert_eq!(masked.len(), plain.len());
            assert_eq!(masked[1], plain[1] | 0x80);
            assert_eq!(masked[2..], plain[2..]);
        }
    }

    #[test]
    fn tokens_go_into_the_request_line_query() {
        let plain = upgrade_request("h:1", "/ws");
        assert!(plain.starts_with(b"GET /ws HTTP/1.1\r\nHost: h:1\r\n"));
        let mut out = Vec::new();
        write_upgrade_request(&mut out, "h:1", "/ws", Some("a.b-c_d"));
        assert!(out.starts_with(b"GET /ws?token=a.b-c_d HTTP/1.1\r\nHost: h:1\r\n"));
        assert_eq!(out.len(), plain.len() + "?token=a.b-c_d".len());
        assert!(out.ends_with(b"\r\n\r\n"));
        out.clear();
        write_upgrade_request(&mut out, "h:1", "/ws?x=1", Some("t"));
        assert!(out.starts_with(b"GET /ws?x=1&token=t HTTP/1.1\r\n"));
    }

    #[test]
    fn parses_upgrade_status_and_head_length() {
        let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00";
        assert_eq!(
            parse_upgrade_response(head).unwrap(),
            Some((101, head.len() - 2))
        );
        assert_eq!(parse_upgrade_response(b"HTTP/1.1 503 Ser").unwrap(), None);
        assert_eq!(
            parse_upgrade_response(b"HTTP/1.1 503 Service Unavailable\r\n\r\n").unwrap(),
            Some((503, 36))
        );
        assert_eq!(close_code(&[0x03, 0xf0, b'h']), (1008, "h".into()));
    }
}
