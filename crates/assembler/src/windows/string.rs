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
        }
    }

    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// Earlier values, newest first.
    pub fn previous(&self) -> &VecDeque<Vec<u8>> {
        &self.previous
    }

    /// Replaces the value; the old one goes into the history.
    pub(crate) fn set(&mut self, value: Vec<u8>, events: &mut Events<'_>) {
        if self.id != 0 {
            events.removed(self.id);
            let old = std::mem::replace(&mut self.value, value);
            remember(&mut self.previous, old, self.history);
        } else {
            self.value = value;
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
