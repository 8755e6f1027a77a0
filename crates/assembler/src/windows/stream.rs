//! The window of a stream: its newest entries by id. Redis keeps a stream's ids increasing, so `XADD` always
//! appends at the newest end, and trimming (`MAXLEN`, `MINID`) always takes from the oldest.

use std::collections::VecDeque;

use super::{Events, ItemView};
use crate::observe::ItemId;
#[cfg(not(feature = "entry-ids"))]
use crate::observe::Payload;

/// A stream entry id, `<ms>-<seq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    /// `<ms>-<seq>`, or `<ms>` alone (sequence 0), as Redis reads an explicit id (`XADD`, `XDEL`, `MINID`):
    /// each part by its `string2ull` (so `007-1` and `+7-1` too), up to a NUL byte.
    pub fn parse(bytes: &[u8]) -> Option<StreamId> {
        let (ms, seq) = crate::commands::numbers::stream_id(bytes)?;
        Some(StreamId { ms, seq })
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// The newest `capacity` entries of a stream.
#[derive(Debug, Clone)]
pub struct StreamWindow {
    capacity: usize,
    /// Oldest first, sorted by id: `XADD` pushes at the back and trims pop at the front, and a window holds at
    /// most `capacity` entries, so a deque with binary search serves every command without a tree.
    entries: VecDeque<(StreamId, ItemId, Vec<Vec<u8>>)>,
    /// The stream's length in Redis (`XLEN`), when known.
    total: Option<u64>,
    /// The bytes of the entries' fields and values, kept as entries enter and leave, so the relay's state knows a
    /// window's size without walking it.
    field_bytes: usize,
}

/// The bytes of an entry's fields and values.
fn entry_bytes(fields: &[Vec<u8>]) -> usize {
    fields.iter().map(Vec::len).sum()
}

impl StreamWindow {
    pub fn new(capacity: usize, complete: bool) -> Self {
        StreamWindow {
            capacity,
            entries: VecDeque::new(),
            total: complete.then_some(0),
            field_bytes: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The stream's length in Redis, when known.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// The bytes of the entries' fields and values held.
    pub fn payload_bytes(&self) -> usize {
        self.field_bytes
    }

    pub fn complete(&self) -> bool {
        self.total == Some(self.entries.len() as u64)
    }

    pub(crate) fn set_complete(&mut self, complete: bool) {
        self.total = complete.then_some(self.entries.len() as u64);
    }

    /// Where `id` is in `entries`, or where it would go.
    fn position(&self, id: StreamId) -> Result<usize, usize> {
        self.entries.binary_search_by(|(e, _, _)| e.cmp(&id))
    }

    /// Sets the length Redis holds, as a saved view recorded it (`crate::assembler::saved_view`).
    pub(crate) fn set_total(&mut self, total: Option<u64>) {
        self.total = total;
    }

    pub fn fields(&self, id: StreamId) -> Option<&[Vec<u8>]> {
        let at = self.position(id).ok()?;
        self.entries.get(at).map(|(_, _, f)| f.as_slice())
    }

    fn pop_oldest(&mut self, events: &mut Events<'_>) {
        if let Some((_, item, fields)) = self.entries.pop_front() {
            self.field_bytes -= entry_bytes(&fields);
            events.removed(item);
        }
    }

    /// Appends an entry (`XADD`).
    pub(crate) fn add(&mut self, id: StreamId, fields: Vec<Vec<u8>>, events: &mut Events<'_>) {
        #[cfg(not(feature = "entry-ids"))]
        let item = events.added(Some(id.ms as f64), Payload::Fields(&fields));
        #[cfg(feature = "entry-ids")]
        let item = events.entry_added(id, &fields);
        self.field_bytes += entry_bytes(&fields);
        match self.position(id) {
            Ok(at) => {
                // Redis never reuses an id; a corrupt stream might.
                if let Some(old) = self.entries.get_mut(at) {
                    let (_, old, old_fields) = std::mem::replace(old, (id, item, fields));
                    self.field_bytes -= entry_bytes(&old_fields);
                    events.removed(old);
                }
            }
            Err(at) => {
                self.entries.insert(at, (id, item, fields));
                if let Some(total) = &mut self.total {
                    *total += 1;
                }
            }
        }
        while self.entries.len() > self.capacity {
            self.pop_oldest(events);
        }
    }

    /// Deletes an entry (`XDEL`); returns whether it was in the window.
    pub(crate) fn delete(&mut self, id: StreamId, events: &mut Events<'_>) -> bool {
        if let Some((_, item, fields)) = self
            .position(id)
            .ok()
            .and_then(|at| self.entries.remove(at))
        {
            self.field_bytes -= entry_bytes(&fields);
            events.removed(item);
            self.total = self.total.map(|t| t.saturating_sub(1));
            return true;
        }
        let older_than_window = self.entries.front().is_none_or(|&(o, _, _)| id < o);
        if older_than_window && !self.complete() {
            // It may have been one of the entries the window does not hold.
            self.total = None;
        }
        false
    }

    /// `MAXLEN = n`: keeps the newest `n` entries.
    pub(crate) fn trim_maxlen(&mut self, n: u64, events: &mut Events<'_>) {
        let held = self.entries.len() as u64;
        while self.entries.len() as u64 > n {
            self.pop_oldest(events);
        }
        self.total = match self.total {
            Some(t) => Some(t.min(n)),
            // Redis held at least what the window held, so at least `n`, and now exactly `n`.
            None if held >= n => Some(n),
            None => None,
        };
    }

    /// `MINID = id`: drops the entries older than `id`.
    pub(crate) fn trim_minid(&mut self, min: StreamId, events: &mut Events<'_>) {
        let before = self.entries.len();
        while self
            .entries
            .front()
            .is_some_and(|&(oldest, _, _)| oldest < min)
        {
            self.pop_oldest(events);
        }
        if self.entries.len() < before {
            // Every unseen entry was older than the ones just dropped: none is left.
            self.total = Some(self.entries.len() as u64);
        } else if !self.complete() {
            self.total = None;
        }
    }

    /// The newest entry's id.
    pub fn last_id(&self) -> Option<StreamId> {
        self.entries.back().map(|&(id, _, _)| id)
    }

    /// Entries from the newest.
    pub fn newest_first(&self) -> impl Iterator<Item = (StreamId, &[Vec<u8>])> {
        self.entries
            .iter()
            .rev()
            .map(|(id, _, f)| (*id, f.as_slice()))
    }

    pub fn items_newest_first(&self) -> impl Iterator<Item = ItemView<'_>> {
        self.entries
            .iter()
            .rev()
            .map(|(entry, id, fields)| ItemView::Entry {
                id: *id,
                entry: *entry,
                fields,
            })
    }

    pub(crate) fn renumber(&mut self, events: &mut Events<'_>) {
        for (id, item, fields) in self.entries.iter_mut() {
            #[cfg(not(feature = "entry-ids"))]
            {
                *item = events.added(Some(id.ms as f64), Payload::Fields(fields));
            }
            #[cfg(feature = "entry-ids")]
            {
                *item = events.entry_added(*id, fields);
            }
        }
    }
}
