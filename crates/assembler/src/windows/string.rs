//! The window of a string: its value, and the values it had before.

use std::collections::VecDeque;

use super::{remember, Events, ItemView, STRING_HISTORY};
use crate::observe::{ItemId, Payload};

#[derive(Debug, Clone)]
pub struct StringWindow {
    value: Vec<u8>,
    id: ItemId,
    previous: VecDeque<Vec<u8>>,
    history: usize,
    /// The bytes of the value and the recent values, kept as they change, so the relay's state knows a window's
    /// size without walking it.
    bytes: usize,
}

impl StringWindow {
    /// An empty string; its value comes with the first [`StringWindow::set`]. Keeps up to `capacity - 1`
    /// earlier values (at most [`STRING_HISTORY`]).
    pub fn new(capacity: usize) -> Self {
        StringWindow {
            value: Vec::new(),
            id: 0,
            previous: VecDeque::new(),
            history: capacity.saturating_sub(1).min(STRING_HISTORY),
            bytes: 0,
        }
    }

    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The bytes of the value and the recent values.
    pub fn payload_bytes(&self) -> usize {
        self.bytes
    }

    /// Earlier values, newest first.
    pub fn previous(&self) -> &VecDeque<Vec<u8>> {
        &self.previous
    }

    /// Replaces the value; the old one goes into the history.
    pub(crate) fn set(&mut self, value: Vec<u8>, events: &mut Events<'_>) {
        // The old value moves into the history: the window grows by the new value, less what the history lets go.
        self.bytes += value.len();
        let old = std::mem::replace(&mut self.value, value);
        if self.id != 0 {
            events.removed(self.id);
            self.bytes -= remember(&mut self.previous, old, self.history);
        } else {
            self.bytes -= old.len();
        }
        self.id = events.added(None, Payload::Value(&self.value));
    }

    pub(crate) fn item(&self) -> ItemView<'_> {
        ItemView::Value {
            id: self.id,
            value: &self.value,
            previous: &self.previous,
        }
    }

    pub(crate) fn renumber(&mut self, events: &mut Events<'_>) {
        self.id = events.added(None, Payload::Value(&self.value));
    }
}
