//! How a connection wants its frames ([`Wire`]: an encoding and a
//! compression), and the conversion of the server's native JSON messages
//! into the other encodings: pure functions, no I/O and no frames (the
//! shard's fan-out derives each form once per publish, `shard/compress.rs`).
//!
//! The server makes every message once, in the native form: JSON text,
//! uncompressed. A connection in another form gets a copy derived from
//! it: first the payload converted to the connection's [`Encoding`]
//! ([`convert`]), then that compressed with the connection's window
//! ([`Wire::deflate`]). Another encoding is one more [`Encoding`] variant
//! plus its arm in [`convert`] (and in the request path, which turns what
//! such a client sends into the native JSON request).

use std::fmt;
use std::num::NonZeroU8;

/// The encodings a connection can speak on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Encoding {
    /// The native /ws protocol: JSON in text frames. Every message the
    /// server makes starts in this form.
    #[default]
    Json,
    /// Centrifugo's client protocol, JSON (`/connection/websocket`).
    CentrifugoJson,
    /// Centrifugo's client protocol, Protobuf (`/connection/websocket`
    /// with the `centrifuge-protobuf` subprotocol).
    CentrifugoProtobuf,
}

impl Encoding {
    /// Every encoding, by discriminant (`encoding as usize` indexes it).
    pub const ALL: [Encoding; 3] = [
        Encoding::Json,
        Encoding::CentrifugoJson,
        Encoding::CentrifugoProtobuf,
    ];

    /// Whether this encoding's messages go in binary frames (text ones
    /// otherwise).
    pub fn is_binary(self) -> bool {
        match self {
            Encoding::Json | Encoding::CentrifugoJson => false,
            Encoding::CentrifugoProtobuf => true,
        }
    }

    /// Whether the protocol layer writes this encoding's replies itself
    /// (Centrifugo's replies answer numbered commands and have no native
    /// counterpart): `Shard::deliver` then only compresses them. Only
    /// fan-out frames (publications, join/leave) are converted.
    pub fn writes_own_replies(self) -> bool {
        match self {
            Encoding::Json => false,
            Encoding::CentrifugoJson | Encoding::CentrifugoProtobuf => true,
        }
    }

    /// The Centrifugo encoding this is, if it is one.
    pub fn centrifugo(self) -> Option<crate::centrifugo::Encoding> {
        match self {
            Encoding::Json => None,
            Encoding::CentrifugoJson => Some(crate::centrifugo::Encoding::Json),
            Encoding::CentrifugoProtobuf => Some(crate::centrifugo::Encoding::Protobuf),
        }
    }
}

impl From<crate::centrifugo::Encoding> for Encoding {
    fn from(encoding: crate::centrifugo::Encoding) -> Encoding {
        match encoding {
            crate::centrifugo::Encoding::Json => Encoding::CentrifugoJson,
            crate::centrifugo::Encoding::Protobuf => Encoding::CentrifugoProtobuf,
        }
    }
}

/// The LZ77 window the server compresses a connection's messages with
/// (RFC 7692 `server_max_window_bits`), 8 to 15 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowBits(NonZeroU8);

impl WindowBits {
    /// The largest window (32 KiB), what a connection gets unless its offer
    /// asked for less.
    pub const MAX: WindowBits = WindowBits(NonZeroU8::new(15).unwrap());

    /// `bits` when it is a valid window size (8 to 15).
    pub fn new(bits: u8) -> Option<WindowBits> {
        (8..=15)
            .contains(&bits)
            .then(|| NonZeroU8::new(bits).map(WindowBits))
            .flatten()
    }

    /// The number of bits.
    pub fn get(self) -> u8 {
        self.0.get()
    }
}

/// How one connection wants its frames: the encoding, and the
/// permessage-deflate window when it negotiated compression. One byte,
/// kept in the connection's `ConnState` (the encoding in the high nibble,
/// the window bits or 0 in the low one): the whole of what fan-out needs
/// to pick a form for it.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Wire(u8);

impl Wire {
    /// The native form, in which every message is made: JSON, uncompressed.
    pub const NATIVE: Wire = Wire(0);

    /// Messages in `encoding`, compressed with `deflate`'s window if any.
    pub const fn new(encoding: Encoding, deflate: Option<WindowBits>) -> Wire {
        let window = match deflate {
            Some(bits) => bits.0.get(),
            None => 0,
        };
        Wire((encoding as u8) << 4 | window)
    }

    /// What the connection's messages are written in.
    pub fn encoding(self) -> Encoding {
        Encoding::ALL
            .get(usize::from(self.0 >> 4))
            .copied()
            .unwrap_or_default()
    }

    /// The window messages to the connection are compressed with, when it
    /// negotiated permessage-deflate (RSV1 from it then means a compressed
    /// message); `None`: uncompressed.
    pub fn deflate(self) -> Option<WindowBits> {
        WindowBits::new(self.0 & 0x0f)
    }

    /// True for the native form (a connection that takes frames as made).
    pub fn is_native(self) -> bool {
        self == Wire::NATIVE
    }

    /// The same encoding, uncompressed: the form a compressed one is made from.
    pub fn uncompressed(self) -> Wire {
        Wire(self.0 & 0xf0)
    }
}

impl fmt::Debug for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wire")
            .field("encoding", &self.encoding())
            .field("deflate", &self.deflate().map(WindowBits::get))
            .finish()
    }
}

/// Why a message has no form in an encoding (a value that encoding cannot
/// represent exactly, or a payload that is not a server message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertError(pub String);

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One native message's payload (JSON text, as the server made it) in
/// `encoding`, appended to `out`.
pub fn convert(encoding: Encoding, json: &[u8], out: &mut Vec<u8>) -> Result<(), ConvertError> {
    match encoding {
        Encoding::Json => {
            out.extend_from_slice(json);
            Ok(())
        }
        Encoding::CentrifugoJson => {
            crate::centrifugo::convert_native(crate::centrifugo::Encoding::Json, json, out)
        }
        Encoding::CentrifugoProtobuf => {
            crate::centrifugo::convert_native(crate::centrifugo::Encoding::Protobuf, json, out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wire_is_one_byte_and_native_by_default() {
        assert_eq!(std::mem::size_of::<Wire>(), 1);
        assert!(Wire::default().is_native());
        assert_eq!(WindowBits::MAX.get(), 15);
        assert_eq!(WindowBits::new(8).map(WindowBits::get), Some(8));
        assert_eq!(WindowBits::new(7), None);
        assert_eq!(WindowBits::new(16), None);
        let deflate = Wire::new(Encoding::Json, WindowBits::new(9));
        assert!(!deflate.is_native());
        assert_eq!(deflate.deflate(), WindowBits::new(9));
        assert_eq!(deflate.encoding(), Encoding::Json);
        assert!(deflate.uncompressed().is_native());
        for (i, encoding) in Encoding::ALL.into_iter().enumerate() {
            assert_eq!(encoding as usize, i);
            for bits in [None, WindowBits::new(8), WindowBits::new(15)] {
                let wire = Wire::new(encoding, bits);
                assert_eq!((wire.encoding(), wire.deflate()), (encoding, bits));
            }
        }
    }
}
