//! permessage-deflate on the shard's side: its one compressor and one
//! decompressor (`deflate/`), and the choice, per connection, between a
//! frame and its compressed copy.
//!
//! A frame bound for several connections ([`Outgoing`]: a publish, a
//! broadcast, a personal message) is compressed the first time one of
//! them negotiated the extension, and that copy is shared by the rest like
//! the plain frame is: at most one compression per shard per publish, and
//! none when no local subscriber asked for it. A reply is compressed for
//! its one connection in [`Shard::deliver`].

use std::cell::{RefCell, RefMut};
use std::rc::Rc;

use bytes::Bytes;

use super::Shard;
use crate::centrifugo::Encoding;
use crate::connection::ConnState;
use crate::deflate::{Deflater, Inflater};
use crate::outbox::{Frame, Published};
use crate::ws;

/// The shard's compressor and decompressor, each made on first use (about
/// 370 KiB and 40 KiB of zlib-rs state), so a server that never sees a
/// compressing client holds neither.
#[derive(Debug, Default)]
pub(super) struct Codec {
    deflater: RefCell<Option<Box<Deflater>>>,
    inflater: RefCell<Option<Box<Inflater>>>,
}

/// A frame on its way to several local connections: the plain frame, and
/// its compressed copy once a connection that negotiated permessage-deflate
/// needed it (the plain frame again when compressing does not pay).
pub(crate) struct Outgoing {
    plain: Frame,
    deflated: Option<Frame>,
    /// The Centrifugo push of the frame, per encoding (JSON, Protobuf),
    /// made for the first /connection/websocket subscriber that needs it;
    /// `Some(None)` when the frame is nothing a Centrifugo client gets.
    centrifugo: [Option<Option<Frame>>; 2],
}

impl Outgoing {
    /// A publish's frame, shared by every local connection through one
    /// shard-local `Rc`; `stamp` is when the publish entered the server.
    pub(crate) fn shared(frame: &Bytes, stamp: u64) -> Outgoing {
        Outgoing {
            plain: Frame::Shared(Rc::new(Published {
                frame: frame.clone(),
                stamp,
            })),
            deflated: None,
            centrifugo: [None, None],
        }
    }
}

impl Shard {
    /// The form of `out` that `conn` takes: the shared compressed copy for
    /// a connection that negotiated permessage-deflate (made now if it is
    /// the first), the plain frame otherwise.
    ///
    /// A /connection/websocket client gets the frame as a Centrifugo push
    /// in its encoding, converted once per encoding per `Outgoing` (so at
    /// most once per shard per publish); `None` when the frame is not one
    /// Centrifugo clients get (a /ws broadcast).
    pub(crate) fn frame_for(&self, out: &mut Outgoing, conn: &ConnState) -> Option<Frame> {
        if let Some(encoding) = conn.centrifugo() {
            let Outgoing {
                plain, centrifugo, ..
            } = out;
            return centrifugo[encoding as usize]
                .get_or_insert_with(|| {
                    self.metrics.bump(|c| c.centrifugo_conversions += 1);
                    to_centrifugo(plain, encoding)
                })
                .clone();
        }
        if !conn.deflate {
            return Some(out.plain.clone());
        }
        let Outgoing {
            plain, deflated, ..
        } = out;
        deflated
            .get_or_insert_with(|| {
                let Frame::Shared(published) = &*plain else {
                    return plain.clone();
                };
                match self.compress(&published.frame) {
                    Some(frame) => Frame::Shared(Rc::new(Published {
                        frame,
                        stamp: published.stamp,
                    })),
                    None => plain.clone(),
                }
            })
            .clone()
            .into()
    }

    /// `frame` compressed with the shard's compressor, or `None` when it
    /// goes as it is (a control frame, under `--compression-min-size`, or
    /// not smaller compressed).
    pub(crate) fn compress(&self, frame: &[u8]) -> Option<Bytes> {
        let min_size = self.config.config.compression_min_size;
        if frame.len() < min_size {
            return None; // A frame is longer than its payload: surely too small.
        }
        let mut deflater = self.codec.deflater.borrow_mut();
        let deflater = deflater.get_or_insert_with(Box::default);
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

/// `frame` (a native /ws frame) as the Centrifugo push of `encoding`.
fn to_centrifugo(frame: &Frame, encoding: Encoding) -> Option<Frame> {
    match frame {
        Frame::Shared(published) => {
            let push = crate::centrifugo::push_from_native(encoding, &published.frame)?;
            Some(Frame::Shared(Rc::new(Published {
                frame: push,
                stamp: published.stamp,
            })))
        }
        Frame::Own(bytes) => crate::centrifugo::push_from_native(encoding, bytes).map(Frame::Own),
    }
}
