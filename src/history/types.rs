//! The history store's plain values: options in, publications, recovery
//! answers, pages, errors and totals out. No behaviour beyond `Display`.

use std::fmt;

use bytes::Bytes;

use super::Epoch;

/// A channel's history settings: `size` and `ttl_ms` from its namespace,
/// `meta_ttl_ms` from `--history-meta-ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryOptions {
    /// Publications kept per channel (`history_size`).
    pub size: usize,
    /// A publication is dropped this long after it was appended (`history_ttl`).
    pub ttl_ms: u64,
    /// An unused channel keeps its top offset and epoch this long (at least
    /// `ttl_ms`), then is forgotten.
    pub meta_ttl_ms: u64,
}

/// A publication returned by [`HistoryStore::recover`](super::HistoryStore::recover)
/// and [`HistoryStore::read`](super::HistoryStore::read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// Its offset in the channel's current epoch.
    pub offset: u64,
    /// Its data (a refcounted clone of what was appended, not a copy).
    pub payload: Bytes,
}

/// The answer to a recovering subscribe: everything missed, or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Every publication after the client's offset up to the top, in order
    /// (empty when the client is already at the top).
    Recovered(Vec<Publication>),
    /// The client must reload its state: nothing from history is sent.
    NotRecovered,
}

/// A history read's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// The publications asked for, in the order asked for.
    pub publications: Vec<Publication>,
    /// The channel's top offset (0 if nothing was ever published).
    pub top: u64,
    /// The channel's epoch.
    pub epoch: Epoch,
}

/// Why a history read was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryError {
    /// `since` names another epoch (or none): its offset means nothing here.
    /// Centrifugo's code 112, "unrecoverable position".
    UnrecoverablePosition,
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryError::UnrecoverablePosition => f.write_str("unrecoverable position"),
        }
    }
}

impl std::error::Error for HistoryError {}

/// The store's totals, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryStats {
    /// Payload bytes plus [`ENTRY_OVERHEAD`](super::ENTRY_OVERHEAD) per held
    /// publication.
    pub bytes: usize,
    /// Publications held.
    pub publications: usize,
    /// Channels known (with publications or only meta).
    pub channels: usize,
    /// Publications evicted by the byte bound since the store was made.
    pub evictions: u64,
    /// Channel records (without publications) evicted by the record cap.
    pub channel_evictions: u64,
}
