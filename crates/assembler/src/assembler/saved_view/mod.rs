//! A saved view: an assembler's windows and stream positions as bytes, so that a page can keep them across a reload
//! (the browser client keeps them in IndexedDB) and a fresh assembler can start from them, asking the relay to
//! resume (`at=`) instead of sending a snapshot. The windows are shown at once; the relay's hello then says whether
//! the stream continues (the windows stay) or not (they are cleared and a snapshot follows, as on any join).
//!
//! The bytes come back from storage a page does not control, so restoring treats them as untrusted input, like a
//! relay message: every length is checked against the bytes left, every count against the window it fills, every
//! key against the watched patterns, and a checksum catches what a structural check cannot (a flipped byte inside
//! a value). A record that fails is refused whole, with the byte offset and what was expected, and the assembler is
//! left as it was: nothing is applied until the whole record has been read.
//!
//! Format version 1 (integers are LEB128 varints unless said otherwise; `bytes` is a varint length, then the bytes):
//!
//! ```text
//! "RCVW" version:u8(1)
//! watch:    db, window, pattern count, patterns (bytes)            must equal the restoring assembler's
//! streams:  count, then per stream: shard, epoch (bytes, UTF-8, ≤ 64), offset, SELECTed db + 1 (0: none yet)
//! unknown:  count, then per key: key (bytes), shard                keys whose state is unknown (top-ups due)
//! windows:  count, then per window: key (bytes), kind:u8, flags:u8 (1 stale, 2 complete, 4 has a TTL),
//!           [expires at, Unix ms], home shard, then by kind:
//!   0 zset    count, members newest first: score (f64, little-endian), member (bytes)
//!   1 stream  length in Redis + 1 (0: unknown), count, entries oldest first: ms, seq, field count, fields (bytes)
//!   2 list    length in Redis + 1 (0: unknown), count, items oldest first (bytes)
//!   3 hash    fields dropped, count, fields least recently changed first: field, value (bytes), previous count,
//!             previous values newest first (bytes)
//!   4 string  value (bytes), previous count, previous values newest first (bytes)
//! checksum: FNV-1a 64 of every byte before it, u64 little-endian
//! ```

mod bytes;
mod read;

use std::hash::Hasher;

use thiserror::Error;

use super::{ShardStream, StreamAssembler};
use crate::keyspace::Keyspace;
use crate::observe::WindowObserver;
use crate::windows::{Body, Events, Kind, StreamId, Window};
use bytes::{put_bytes, put_f64, put_varint};
use read::read_view;
use replicast_protocol::resp::CommandReader;

/// The format this code writes, and the only one it reads.
pub const SAVED_VIEW_VERSION: u8 = 1;
const MAGIC: &[u8; 4] = b"RCVW";
const CHECKSUM_BYTES: usize = 8;
/// Longest epoch kept (a Redis replication ID is 40 hex characters; the wire format allows 64).
const MAX_EPOCH_LEN: usize = 64;
/// Most patterns a subscription may name (the relay refuses more).
const MAX_PATTERNS: usize = 64;

const STALE: u8 = 1;
const COMPLETE: u8 = 2;
const HAS_TTL: u8 = 4;

/// Why a saved view was not restored.
#[derive(Debug, Error, PartialEq)]
pub enum SavedViewError {
    #[error("{}", replicast_protocol::text!("not a saved view: it does not start with \"RCVW\""))]
    NotASavedView,
    #[error("a saved view of format version {0}; this client reads version {SAVED_VIEW_VERSION}")]
    Version(u8),
    #[error("{}", replicast_protocol::text!("the saved view's checksum does not match its bytes: the record was corrupted"))]
    Checksum,
    #[error("{}", replicast_protocol::text!("the saved view watches other keys, another database or another window length than this client"))]
    OtherWatch,
    #[error("{}", replicast_protocol::text!("a view is restored only into an assembler that has joined no stream yet"))]
    NotFresh,
    #[error("saved view, byte {at}: expected {expected}")]
    Malformed { at: usize, expected: &'static str },
}

/// One stream's position in a saved view.
struct SavedStream<'a> {
    shard: u16,
    epoch: &'a str,
    offset: u64,
    selected_db: Option<u32>,
}

/// One window of a saved view, read and checked, borrowing its bytes from the record.
struct SavedWindow<'a> {
    key: &'a [u8],
    stale: bool,
    expires_at_ms: Option<u64>,
    shard: u16,
    body: SavedBody<'a>,
}

enum SavedBody<'a> {
    Zset {
        complete: bool,
        /// Newest (highest) first.
        members: Vec<(f64, &'a [u8])>,
    },
    Stream {
        total: Option<u64>,
        entries: Vec<(StreamId, Vec<&'a [u8]>)>,
    },
    List {
        total: Option<u64>,
        items: Vec<&'a [u8]>,
    },
    Hash {
        complete: bool,
        dropped: u64,
        /// Least recently changed first.
        fields: Vec<SavedField<'a>>,
    },
    String {
        value: &'a [u8],
        previous: Vec<&'a [u8]>,
    },
}

/// A hash field: its name, its value and its earlier values, newest first.
type SavedField<'a> = (&'a [u8], &'a [u8], Vec<&'a [u8]>);

/// A saved view read whole and checked, not yet applied.
struct SavedView<'a> {
    streams: Vec<SavedStream<'a>>,
    unknown: Vec<(&'a [u8], u16)>,
    windows: Vec<SavedWindow<'a>>,
}

fn checksum(bytes: &[u8]) -> u64 {
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(bytes);
    hasher.finish()
}

impl<O: WindowObserver> StreamAssembler<O> {
    /// The windows and stream positions as a saved view (see the module's documentation), or `None` when there is
    /// nothing a later session could resume: no hello yet, a swapped database (only a snapshot can say what it
    /// holds), or a `MULTI` block half received.
    pub fn save_view(&self) -> Option<Vec<u8>> {
        let keyspace = &self.keyspace;
        let joined = self.streams.iter().any(|s| s.epoch.is_some());
        let open = self.streams.iter().any(|s| s.transaction.is_some());
        if !joined || open || !keyspace.swapped.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.push(SAVED_VIEW_VERSION);
        let watch = &keyspace.watch;
        put_varint(&mut out, u64::from(watch.db));
        put_varint(&mut out, watch.window as u64);
        put_varint(&mut out, watch.patterns.len() as u64);
        for pattern in &watch.patterns {
            put_bytes(&mut out, pattern);
        }
        let positions = self.positions();
        put_varint(&mut out, positions.len() as u64);
        for (shard, epoch, offset) in &positions {
            put_varint(&mut out, u64::from(*shard));
            put_bytes(&mut out, epoch.as_bytes());
            put_varint(&mut out, *offset);
            let selected = self.streams[usize::from(*shard)].selected_db;
            put_varint(&mut out, selected.map_or(0, |db| u64::from(db) + 1));
        }
        // Key order, so that the same view always saves to the same bytes.
        let mut unknown: Vec<(&Vec<u8>, &u16)> = keyspace.unknown.iter().collect();
        crate::sort::sort(&mut unknown);
        put_varint(&mut out, unknown.len() as u64);
        for (key, shard) in unknown {
            put_bytes(&mut out, key);
            put_varint(&mut out, u64::from(*shard));
        }
        let windows = keyspace.sorted_windows();
        put_varint(&mut out, windows.len() as u64);
        for (key, window) in windows {
            put_window(&mut out, key, window);
        }
        let sum = checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        Some(out)
    }

    /// Starts this assembler, which must not have joined any stream yet, from a saved view: its windows (reported
    /// to the observer as items added), its stream positions (what [`StreamAssembler::positions`] then gives, to
    /// resume from) and its pending top-ups (of stale windows and unknown keys). A record that cannot be read, was
    /// corrupted or watches something else is refused whole, and the assembler stays as it was.
    pub fn restore_view(&mut self, bytes: &[u8]) -> Result<(), SavedViewError> {
        if !self.streams.is_empty() || !self.keyspace.windows.is_empty() {
            return Err(SavedViewError::NotFresh);
        }
        let view = read_view(bytes, &mut self.keyspace)?;
        for saved in view.streams {
            let index = usize::from(saved.shard);
            if self.streams.len() <= index {
                self.streams.resize_with(index + 1, ShardStream::new);
            }
            let stream = &mut self.streams[index];
            stream.epoch = Some(saved.epoch.to_string());
            stream.reader = CommandReader::new(saved.offset);
            stream.selected_db = saved.selected_db;
        }
        let keyspace = &mut self.keyspace;
        for (key, shard) in view.unknown {
            keyspace.unknown.insert(key.to_vec(), shard);
            Keyspace::request_topup(&mut keyspace.topups, &mut keyspace.diagnostics, key);
        }
        for saved in view.windows {
            let key = saved.key;
            let mut events = Events::new(key, &mut self.observer, &mut keyspace.next_id);
            let mut window = build_window(saved, keyspace.watch.window, &mut events);
            // A window that may lack items Redis holds is only exact again after a top-up.
            if window.lacks_items() {
                window.stale = true;
            }
            if window.stale {
                Keyspace::request_topup(&mut keyspace.topups, &mut keyspace.diagnostics, key);
            }
            keyspace.windows.insert(key.to_vec(), window);
        }
        Ok(())
    }
}

fn put_window(out: &mut Vec<u8>, key: &[u8], window: &Window) {
    put_bytes(out, key);
    let kind = match window.kind() {
        Kind::Zset => 0,
        Kind::Stream => 1,
        Kind::List => 2,
        Kind::Hash => 3,
        Kind::String => 4,
    };
    out.push(kind);
    let mut flags = 0;
    if window.stale {
        flags |= STALE;
    }
    if window.complete() {
        flags |= COMPLETE;
    }
    if window.expires_at_ms.is_some() {
        flags |= HAS_TTL;
    }
    out.push(flags);
    if let Some(at) = window.expires_at_ms {
        put_varint(out, at);
    }
    put_varint(out, u64::from(window.shard));
    let total = |total: Option<u64>| total.map_or(0, |t| t.saturating_add(1));
    match &window.body {
        Body::Zset(w) => {
            put_varint(out, w.len() as u64);
            for (member, score) in w.newest_first() {
                put_f64(out, score);
                put_bytes(out, member);
            }
        }
        Body::Stream(w) => {
            put_varint(out, total(w.total()));
            put_varint(out, w.len() as u64);
            let entries: Vec<_> = w.newest_first().collect();
            for (id, fields) in entries.into_iter().rev() {
                put_varint(out, id.ms);
                put_varint(out, id.seq);
                put_varint(out, fields.len() as u64);
                for field in fields {
                    put_bytes(out, field);
                }
            }
        }
        Body::List(w) => {
            put_varint(out, total(w.total()));
            put_varint(out, w.len() as u64);
            let items: Vec<_> = w.newest_first().collect();
            for item in items.into_iter().rev() {
                put_bytes(out, item);
            }
        }
        Body::Hash(w) => {
            put_varint(out, w.dropped());
            put_varint(out, w.len() as u64);
            let fields: Vec<_> = w.newest_first().collect();
            for (field, value, previous) in fields.into_iter().rev() {
                put_bytes(out, field);
                put_bytes(out, value);
                put_varint(out, previous.len() as u64);
                for old in previous {
                    put_bytes(out, old);
                }
            }
        }
        Body::String(w) => {
            put_bytes(out, w.value());
            put_varint(out, w.previous().len() as u64);
            for old in w.previous() {
                put_bytes(out, old);
            }
        }
    }
}

/// Builds a checked window, its items reported to `events` as they enter: through the windows' own operations, so
/// that the window is exactly what following the stream would have made (earlier values replayed oldest first).
fn build_window(saved: SavedWindow<'_>, capacity: usize, events: &mut Events<'_>) -> Window {
    let kind = match saved.body {
        SavedBody::Zset { .. } => Kind::Zset,
        SavedBody::Stream { .. } => Kind::Stream,
        SavedBody::List { .. } => Kind::List,
        SavedBody::Hash { .. } => Kind::Hash,
        SavedBody::String { .. } => Kind::String,
    };
    // Built complete so that no insertion is refused as below an incomplete window's floor; the saved state is
    // set afterwards.
    let mut window = Window::new(kind, capacity, true);
    window.stale = saved.stale;
    window.expires_at_ms = saved.expires_at_ms;
    window.shard = saved.shard;
    match (&mut window.body, saved.body) {
        (Body::Zset(w), SavedBody::Zset { complete, members }) => {
            for (score, member) in members.into_iter().rev() {
                w.insert(member, score, events);
            }
            w.set_complete(complete);
        }
        (Body::Stream(w), SavedBody::Stream { total, entries }) => {
            for (id, fields) in entries {
                w.add(id, fields.into_iter().map(<[u8]>::to_vec).collect(), events);
            }
            w.set_total(total);
        }
        (Body::List(w), SavedBody::List { total, items }) => {
            for item in items {
                w.push_back(item, events);
            }
            w.set_total(total);
        }
        (
            Body::Hash(w),
            SavedBody::Hash {
                complete,
                dropped,
                fields,
            },
        ) => {
            for (field, value, previous) in fields {
                for old in previous.into_iter().rev() {
                    w.set(field, old.to_vec(), events);
                }
                w.set(field, value.to_vec(), events);
            }
            w.set_counts(dropped, complete);
        }
        (Body::String(w), SavedBody::String { value, previous }) => {
            for old in previous.into_iter().rev() {
                w.set(old.to_vec(), events);
            }
            w.set(value.to_vec(), events);
        }
        // `kind` came from the body: the window was made of the same type.
        _ => {}
    }
    window
}
