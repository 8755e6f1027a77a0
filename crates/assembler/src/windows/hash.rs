//! The window of a hash: its fields with their current values, most recently changed first, each with its
//! recent earlier values. A hash has no "newest N" of its own, so the window holds every field up to its
//! capacity; past it, the least recently changed field is dropped (counted in [`HashWindow::dropped`]) and the
//! window is no longer complete.

use std::collections::VecDeque;

use super::fast_hash::FastMap;
use super::{remember, Events, ItemView, FIELD_HISTORY};
use crate::observe::{ItemId, Payload};

#[derive(Debug, Clone)]
struct Field {
    id: ItemId,
    /// When it last changed, in this window's own sequence.
    seq: u64,
    /// `[field, value]`, the payload reported to observers.
    pair: [Vec<u8>; 2],
    previous: VecDeque<Vec<u8>>,
}

impl Field {
    /// The bytes of its name, value and recent values.
    fn bytes(&self) -> usize {
        self.pair[0].len() + self.pair[1].len() + self.previous.iter().map(Vec::len).sum::<usize>()
    }
}

#[derive(Debug, Clone)]
pub struct HashWindow {
    capacity: usize,
    fields: FastMap<Vec<u8>, Field>,
    /// `(seq, field)`, least recently changed first: sequences only grow, so a change pushes at the back and
    /// the capacity drops from the front; a deque searched by sequence needs no tree.
    by_change: VecDeque<(u64, Vec<u8>)>,
    next_seq: u64,
    dropped: u64,
    complete: bool,
    /// The bytes of the fields held ([`Field::bytes`]), kept as they change, so the relay's state knows a
    /// window's size without walking it.
    field_bytes: usize,
}

impl HashWindow {
    pub fn new(capacity: usize, complete: bool) -> Self {
        HashWindow {
            capacity,
            fields: FastMap::default(),
            by_change: VecDeque::new(),
            next_seq: 0,
            dropped: 0,
            complete,
            field_bytes: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Whether the window holds every field Redis holds.
    pub fn complete(&self) -> bool {
        self.complete
    }

    /// The bytes of the fields held: names, values and recent values.
    pub fn payload_bytes(&self) -> usize {
        self.field_bytes
    }

    /// Fields dropped because the hash had more than the window's capacity.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Sets what a saved view recorded besides the fields (`crate::assembler::saved_view`).
    pub(crate) fn set_counts(&mut self, dropped: u64, complete: bool) {
        self.dropped = dropped;
        self.complete = complete;
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        self.fields.get(field).map(|f| f.pair[1].as_slice())
    }

    /// Sets a field (`HSET`).
    pub(crate) fn set(&mut self, field: &[u8], value: Vec<u8>, events: &mut Events<'_>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(f) = self.fields.get_mut(field) {
            events.removed(f.id);
            // The old value moves into the history: the field grows by the new value, less what the history lets go.
            self.field_bytes += value.len();
            let old = std::mem::replace(&mut f.pair[1], value);
            self.field_bytes -= remember(&mut f.previous, old, FIELD_HISTORY);
            f.id = events.added(None, Payload::Fields(&f.pair));
            forget_change(&mut self.by_change, f.seq);
            f.seq = seq;
            self.by_change.push_back((seq, field.to_vec()));
            return;
        }
        let pair = [field.to_vec(), value];
        self.field_bytes += pair[0].len() + pair[1].len();
        let id = events.added(None, Payload::Fields(&pair));
        self.by_change.push_back((seq, field.to_vec()));
        self.fields.insert(
            field.to_vec(),
            Field {
                id,
                seq,
                pair,
                previous: VecDeque::new(),
            },
        );
        if self.fields.len() > self.capacity {
            if let Some((_, oldest)) = self.by_change.pop_front() {
                if let Some(f) = self.fields.remove(&oldest) {
                    self.field_bytes -= f.bytes();
                    events.removed(f.id);
                }
            }
            self.dropped += 1;
            self.complete = false;
        }
    }

    /// Deletes a field (`HDEL`); returns whether the window held it.
    pub(crate) fn delete(&mut self, field: &[u8], events: &mut Events<'_>) -> bool {
        match self.fields.remove(field) {
            Some(f) => {
                forget_change(&mut self.by_change, f.seq);
                self.field_bytes -= f.bytes();
                events.removed(f.id);
                true
            }
            None => false,
        }
    }

    /// Fields, most recently changed first: `(field, value, earlier values newest first)`.
    pub fn newest_first(&self) -> impl Iterator<Item = (&[u8], &[u8], &VecDeque<Vec<u8>>)> {
        self.items_newest_first().filter_map(|item| match item {
            ItemView::Field {
                field,
                value,
                previous,
                ..
            } => Some((field, value, previous)),
            _ => None,
        })
    }

    pub fn items_newest_first(&self) -> impl Iterator<Item = ItemView<'_>> {
        self.by_change
            .iter()
            .rev()
            .filter_map(|(_, name)| self.fields.get(name))
            .map(|f| ItemView::Field {
                id: f.id,
                field: &f.pair[0],
                value: &f.pair[1],
                previous: &f.previous,
            })
    }

    pub(crate) fn renumber(&mut self, events: &mut Events<'_>) {
        for (_, name) in &self.by_change {
            if let Some(f) = self.fields.get_mut(name) {
                f.id = events.added(None, Payload::Fields(&f.pair));
            }
        }
    }
}

/// Removes the change numbered `seq` from `by_change`.
fn forget_change(by_change: &mut VecDeque<(u64, Vec<u8>)>, seq: u64) {
    if let Ok(at) = by_change.binary_search_by_key(&seq, |&(s, _)| s) {
        by_change.remove(at);
    }
}
