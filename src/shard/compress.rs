//! Frames in each connection's form ([`crate::wire::Wire`]): the shard's
//! compressors (one per window size, made on first use) and decompressor,
//! and the choice, per connection, among a frame's forms.
//!
//! A frame bound for several connections ([`Outgoing`]: a publish, a
//! broadcast, a personal message) is made once in the native form (JSON,
//! uncompressed). The first connection that wants another form derives it
//! (converted to its encoding, then compressed with its window), and that
//! copy is shared by every other connection of the same form like the
//! native frame is: at most one conversion per encoding and one
//! compression per (encoding, window) per shard per publish, and none for
//! a form no local connection wants. A reply is derived for its one
//! connection in [`Shard::deliver`].

use std::cell::{RefCell, RefMut};
use std::rc::Rc;

use bytes::Bytes;

use super::Shard;
use crate::connection::ConnState;
use crate::deflate::{Deflater, Inflater};
use crate::outbox::{Frame, Published};
use crate::wire::{self, Encoding, WindowBits, Wire};
use crate::ws;

/// Window sizes a compressor can be made for: 8 to 15 bits.
const WINDOWS: usize = 8;

/// Every form a frame can take: each encoding uncompressed and with each
/// window. An [`Outgoing`] has a slot for each (found by index, not by
/// search), so however many forms a shard's subscribers want at once, each
/// is derived once per publish. The table (36 slots; the `Outgoing` is 1,472 bytes) lives
/// on the stack for one fan-out.
const FORMS: usize = Encoding::ALL.len() * (1 + WINDOWS);

/// `wire`'s slot among an [`Outgoing`]'s forms.
fn slot(wire: Wire) -> usize {
    let window = wire.deflate().map_or(0, |bits| usize::from(bits.get()) - 7);
    wire.encoding() as usize * (1 + WINDOWS) + window
}

/// The shard's compressors, one per window size, and its decompressor,
/// each made on first use (about 370 KiB of zlib-rs state for a 15-bit
/// compressor, 240 KiB for a 9-bit one, 40 KiB for the decompressor), so
/// a server that never sees a compressing client holds none.
#[derive(Debug, Default)]
pub(super) struct Codec {
    /// By window bits minus 8.
    deflaters: RefCell<[Option<Box<Deflater>>; WINDOWS]>,
    inflater: RefCell<Option<Box<Inflater>>>,
}

/// A frame on its way to several local connections: the native frame, and
/// the other forms derived from it so far.
pub(crate) struct Outgoing {
    native: Frame,
    /// Each form derived so far, by [`slot`], and the frame it gave
    /// (`None`: the message has no form in that encoding, and a connection
    /// of that form gets nothing).
    forms: [Option<Option<Frame>>; FORMS],
}

impl Outgoing {
    /// A publish's frame, shared by every local connection through one
    /// shard-local `Rc`; `stamp` is when the publish entered the server.
    pub(crate) fn shared(frame: &Bytes, stamp: u64) -> Outgoing {
        Outgoing::new(Frame::Shared(Rc::new(Published {
            frame: frame.clone(),
            stamp,
        })))
    }

    fn new(native: Frame) -> Outgoing {
        Outgoing {
            native,
            forms: [const { None }; FORMS],
        }
    }

    fn find(&self, wire: Wire) -> Option<&Option<Frame>> {
        self.forms[slot(wire)].as_ref()
    }

    fn remember(&mut self, wire: Wire, frame: &Option<Frame>) {
        self.forms[slot(wire)] = Some(frame.clone());
    }
}

impl Shard {
    /// The form of `out` that `conn` takes: the native frame for a
    /// connection in the native form (a comparison, nothing else), the
    /// shared derived copy otherwise (made now if it is the first).
    /// `None` when the message has no form in the connection's encoding.
    pub(crate) fn frame_for(&self, out: &mut Outgoing, conn: &ConnState) -> Option<Frame> {
        if conn.wire.is_native() {
            return Some(out.native.clone());
        }
        self.derive(out, conn.wire)
    }

    /// `frame` (native) in the form of a connection whose [`Wire`] is `wire`;
    /// `None` when it has no form in that encoding (nothing is sent then).
    /// A reply in an encoding whose protocol layer writes its own replies
    /// (Centrifugo's) is already in that encoding: only compressed here.
    pub(super) fn form_of(&self, frame: Frame, wire: Wire) -> Option<Frame> {
        if wire.is_native() {
            return Some(frame);
        }
        if wire.encoding().writes_own_replies() {
            let Some(bits) = wire.deflate() else {
                return Some(frame);
            };
            return Some(match self.compress(frame.bytes(), bits) {
                Some(compressed) => frame.derived(compressed),
                None => frame,
            });
        }
        self.derive(&mut Outgoing::new(frame), wire)
    }

    /// The `wire` form of `out` (never native), from its remembered forms
    /// or derived now: converted from the native frame, compressed from
    /// the uncompressed form of the same encoding.
    fn derive(&self, out: &mut Outgoing, wire: Wire) -> Option<Frame> {
        if let Some(frame) = out.find(wire) {
            return frame.clone();
        }
        let frame = match wire.deflate() {
            None => self.convert(&out.native, wire.encoding()),
            Some(bits) => {
                let base = if wire.encoding() == Encoding::Json {
                    Some(out.native.clone())
                } else {
                    self.derive(out, wire.uncompressed())
                };
                base.map(|base| match self.compress(base.bytes(), bits) {
                    Some(compressed) => base.derived(compressed),
                    None => base,
                })
            }
        };
        out.remember(wire, &frame);
        frame
    }

    /// `frame` (native) converted to `encoding`; `None` when the message
    /// cannot be represented in it.
    fn convert(&self, frame: &Frame, encoding: Encoding) -> Option<Frame> {
        let kind = if encoding.is_binary() {
            ws::Kind::Binary
        } else {
            ws::Kind::Text
        };
        let converted = ws::convert_frame(frame.bytes(), kind, |json, out| {
            wire::convert(encoding, json, out)
        });
        match converted {
            None => Some(frame.clone()), // A control frame: the same in every encoding.
            Some(Ok(bytes)) => {
                self.metrics.bump(|c| c.converted_frames += 1);
                Some(frame.derived(bytes))
            }
            Some(Err(e)) => {
                log::debug!("message not sent: no {encoding:?} form: {e}");
                None
            }
        }
    }

    /// `frame` compressed with the shard's compressor for `window`, or
    /// `None` when it goes as it is (a control frame, under
    /// `--compression-min-size`, or not smaller compressed).
    pub(crate) fn compress(&self, frame: &[u8], window: WindowBits) -> Option<Bytes> {
        let min_size = self.config.config.compression_min_size;
        if frame.len() < min_size {
            return None; // A frame is longer than its payload: surely too small.
        }
        let mut deflaters = self.codec.deflaters.borrow_mut();
        let deflater = deflaters[usize::from(window.get() - 8)]
            .get_or_insert_with(|| Box::new(Deflater::new(window.get())));
        let compressed = ws::compress_frame(frame, deflater, min_size);
        self.metrics.bump(|c| {
            c.compressed_frames += u64::from(compressed.is_some());
        });
        compressed
    }

    /// The shard's decompressor, for one decode of a connection that
    /// negotiated permessage-deflate. Borrowed for the decode only: nothing
    /// a message's handling does reaches it.
    pub(crate) fn inflater(&self) -> RefMut<'_, Inflater> {
        RefMut::map(self.codec.inflater.borrow_mut(), |i| {
            &mut **i.get_or_insert_with(Box::default)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_has_its_own_slot() {
        let mut seen = std::collections::HashSet::new();
        for encoding in Encoding::ALL {
            let windows = (8..=15).map(|b| WindowBits::new(b).map(Some).unwrap());
            for deflate in std::iter::once(None).chain(windows) {
                let at = slot(Wire::new(encoding, deflate));
                assert!(at < FORMS, "{encoding:?} {deflate:?}");
                assert!(seen.insert(at), "{encoding:?} {deflate:?} shares slot {at}");
            }
        }
        assert_eq!(seen.len(), FORMS);
        let size = std::mem::size_of::<Outgoing>();
        assert!(
            size <= 1536,
            "the table stays small for the stack: {size} B"
        );
    }
}
