//! The window of a list: its last N items (`LRANGE key -N -1`), with the list's length when known.
//!
//! Operations at the tail are always exact. Operations at the head, or at an index counted from the head, reach
//! the window only when the list is short enough, which needs the list's length: known when the window holds the
//! whole list, or kept since. When it is not known and the effect could reach the window, the operation is
//! [`Inexact`] and the window needs a top-up.

use std::collections::VecDeque;

use super::{Events, Inexact, ItemView};
use crate::observe::{ItemId, Payload};

#[derive(Debug, Clone)]
pub struct ListWindow {
    capacity: usize,
    items: VecDeque<(ItemId, Vec<u8>)>,
    /// The list's length in Redis (`LLEN`), when known.
    total: Option<u64>,
    /// The bytes of the items held, kept as they enter and leave, so the relay's state knows a window's size
    /// without walking it.
    value_bytes: usize,
}

impl ListWindow {
    pub fn new(capacity: usize, complete: bool) -> Self {
        ListWindow {
            capacity,
            items: VecDeque::new(),
            total: complete.then_some(0),
            value_bytes: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The list's length in Redis, when known.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// The bytes of the items held.
    pub fn payload_bytes(&self) -> usize {
        self.value_bytes
    }

    pub fn complete(&self) -> bool {
        self.total == Some(self.items.len() as u64)
    }

    pub(crate) fn set_complete(&mut self, complete: bool) {
        self.total = complete.then_some(self.items.len() as u64);
    }

    /// Sets the length Redis holds, as a saved view recorded it (`crate::assembler::saved_view`).
    pub(crate) fn set_total(&mut self, total: Option<u64>) {
        self.total = total;
    }

    /// The last item.
    pub fn last(&self) -> Option<&[u8]> {
        self.items.back().map(|(_, v)| v.as_slice())
    }

    /// The first item of the list, if the window holds it.
    pub fn first_of_list(&self) -> Option<&[u8]> {
        if self.complete() {
            self.items.front().map(|(_, v)| v.as_slice())
        } else {
            None
        }
    }

    fn add(events: &mut Events<'_>, value: &[u8]) -> ItemId {
        events.added(None, Payload::Value(value))
    }

    /// Takes the first item held out of the window.
    fn take_front(&mut self) -> Option<(ItemId, Vec<u8>)> {
        let item = self.items.pop_front()?;
        self.value_bytes -= item.1.len();
        Some(item)
    }

    /// Takes the last item held out of the window.
    fn take_back(&mut self) -> Option<(ItemId, Vec<u8>)> {
        let item = self.items.pop_back()?;
        self.value_bytes -= item.1.len();
        Some(item)
    }

    /// `RPUSH`.
    pub(crate) fn push_back(&mut self, value: &[u8], events: &mut Events<'_>) {
        let id = Self::add(events, value);
        self.items.push_back((id, value.to_vec()));
        self.value_bytes += value.len();
        if let Some(t) = &mut self.total {
            *t += 1;
        }
        if self.items.len() > self.capacity {
            if let Some((id, _)) = self.take_front() {
                events.removed(id);
            }
        }
    }

    /// `LPUSH` of one item: it enters the window only if the window holds the whole list and has room.
    pub(crate) fn push_front(&mut self, value: &[u8], events: &mut Events<'_>) {
        if self.complete() && self.items.len() < self.capacity {
            let id = Self::add(events, value);
            self.items.push_front((id, value.to_vec()));
            self.value_bytes += value.len();
        }
        if let Some(t) = &mut self.total {
            *t += 1;
        }
    }

    /// `LPOP key count`: returns the popped items that were in the window.
    pub(crate) fn pop_front(
        &mut self,
        count: u64,
        events: &mut Events<'_>,
    ) -> Result<Vec<Vec<u8>>, Inexact> {
        let total = self.total.ok_or(Inexact)?;
        let popped = count.min(total);
        let outside = total - self.items.len() as u64;
        let mut values = Vec::new();
        for _ in 0..popped.saturating_sub(outside) {
            if let Some((id, v)) = self.take_front() {
                events.removed(id);
                values.push(v);
            }
        }
        self.total = Some(total - popped);
        Ok(values)
    }

    /// `RPOP key count`: returns the popped items that were in the window, in popping order.
    pub(crate) fn pop_back(&mut self, count: u64, events: &mut Events<'_>) -> Vec<Vec<u8>> {
        let count = self.total.map_or(count, |t| count.min(t));
        let mut values = Vec::new();
        for _ in 0..count {
            let Some((id, v)) = self.take_back() else {
                break;
            };
            events.removed(id);
            values.push(v);
        }
        // With the length unknown, more may have left than the window held: it then lacks items, and knows it.
        if let Some(t) = &mut self.total {
            *t -= count;
        }
        values
    }

    fn clear(&mut self, events: &mut Events<'_>) {
        for (id, _) in self.items.drain(..) {
            events.removed(id);
        }
        self.value_bytes = 0;
        self.total = Some(0);
    }

    /// Keeps the window items whose index from the end (1 for the last) satisfies `keep`.
    fn retain_from_end(&mut self, mut keep: impl FnMut(u64) -> bool, events: &mut Events<'_>) {
        let len = self.items.len() as u64;
        let mut index = 0;
        let value_bytes = &mut self.value_bytes;
        self.items.retain(|(id, value)| {
            let from_end = len - index;
            index += 1;
            let kept = keep(from_end);
            if !kept {
                events.removed(*id);
                *value_bytes -= value.len();
            }
            kept
        });
    }

    /// `LTRIM key start stop`.
    pub(crate) fn trim(
        &mut self,
        start: i64,
        stop: i64,
        events: &mut Events<'_>,
    ) -> Result<(), Inexact> {
        if let Some(total) = self.total {
            let t = total as i64;
            let s = if start < 0 { t + start } else { start }.max(0);
            let e = if stop < 0 { t + stop } else { stop };
            if s > e || s >= t {
                self.clear(events);
                return Ok(());
            }
            let e = e.min(t - 1);
            // Index from the end r (1 = last) is position t - r.
            self.retain_from_end(|r| (s..=e).contains(&(t - r as i64)), events);
            self.total = Some((e - s + 1) as u64);
            return Ok(());
        }
        match (start, stop) {
            (0, -1) => Ok(()),
            (start, stop) if start < 0 && stop < 0 => {
                let (a, b) = (start.unsigned_abs(), stop.unsigned_abs());
                if b > a {
                    self.clear(events);
                    return Ok(());
                }
                let held = self.items.len() as u64;
                self.retain_from_end(|r| (b..=a).contains(&r), events);
                // Redis held at least `held` items: if that reaches `a`, it now holds exactly a - b + 1.
                self.total = (held >= a).then_some(a - b + 1);
                Ok(())
            }
            _ => Err(Inexact),
        }
    }

    /// `LSET key index value`.
    pub(crate) fn set(
        &mut self,
        index: i64,
        value: &[u8],
        events: &mut Events<'_>,
    ) -> Result<(), Inexact> {
        let len = self.items.len() as u64;
        let slot = if index < 0 {
            let r = index.unsigned_abs();
            (r <= len).then(|| (len - r) as usize)
        } else {
            let total = self.total.ok_or(Inexact)?;
            let index = index as u64;
            (index < total && index >= total - len).then(|| (index - (total - len)) as usize)
        };
        if let Some(slot) = slot {
            let id = Self::add(events, value);
            let old = std::mem::replace(&mut self.items[slot], (id, value.to_vec()));
            self.value_bytes = self.value_bytes + value.len() - old.1.len();
            events.removed(old.0);
        }
        Ok(())
    }

    /// `LREM key count value`.
    pub(crate) fn remove(
        &mut self,
        count: i64,
        value: &[u8],
        events: &mut Events<'_>,
    ) -> Result<(), Inexact> {
        let complete = self.complete();
        let matching = self.items.iter().filter(|(_, v)| v == value).count() as u64;
        if count > 0 && !complete && matching > 0 {
            // The first occurrences may be among the items the window does not hold.
            return Err(Inexact);
        }
        let limit = if count == 0 {
            u64::MAX
        } else {
            count.unsigned_abs()
        };
        let mut removed = 0u64;
        let value_bytes = &mut self.value_bytes;
        let mut drop_one = |(id, v): &(ItemId, Vec<u8>)| {
            if removed < limit && v == value {
                removed += 1;
                events.removed(*id);
                *value_bytes -= v.len();
                false
            } else {
                true
            }
        };
        if count < 0 {
            let mut kept: VecDeque<_> = VecDeque::with_capacity(self.items.len());
            while let Some(item) = self.items.pop_back() {
                if drop_one(&item) {
                    kept.push_front(item);
                }
            }
            self.items = kept;
        } else {
            self.items.retain(drop_one);
        }
        self.total = match self.total {
            Some(t) if complete || removed == limit => Some(t - removed),
            _ => None,
        };
        Ok(())
    }

    /// `LINSERT key BEFORE|AFTER pivot value`.
    pub(crate) fn insert(
        &mut self,
        before: bool,
        pivot: &[u8],
        value: &[u8],
        events: &mut Events<'_>,
    ) -> Result<(), Inexact> {
        let at = self.items.iter().position(|(_, v)| v == pivot);
        match at {
            Some(i) if self.complete() => {
                let id = Self::add(events, value);
                self.items
                    .insert(if before { i } else { i + 1 }, (id, value.to_vec()));
                self.value_bytes += value.len();
                self.total = Some(self.items.len() as u64);
                if self.items.len() > self.capacity {
                    if let Some((id, _)) = self.take_front() {
                        events.removed(id);
                    }
                }
                Ok(())
            }
            // The first occurrence of the pivot may be among the items the window does not hold.
            Some(_) => Err(Inexact),
            // The pivot is before the window: so is the new item.
            None => {
                if let Some(t) = &mut self.total {
                    *t += 1;
                }
                Ok(())
            }
        }
    }

    /// Items from the last.
    pub fn newest_first(&self) -> impl Iterator<Item = &[u8]> {
        self.items.iter().rev().map(|(_, v)| v.as_slice())
    }

    pub fn items_newest_first(&self) -> impl Iterator<Item = ItemView<'_>> {
        self.items
            .iter()
            .rev()
            .map(|(id, value)| ItemView::ListItem { id: *id, value })
    }

    pub(crate) fn renumber(&mut self, events: &mut Events<'_>) {
        for (id, value) in self.items.iter_mut().rev() {
            *id = events.added(None, Payload::Value(value));
        }
    }
}
