//! One group's statistics: per field, over the whole window and over rolling time buckets.
//!
//! A group holds its members (item ids) ordered by time. Each field has one [`Series`] for the window and one per
//! rolling bucket; bucket `T` holds the members whose time is in `(clock − T, clock]`. Buckets move lazily: the
//! aggregator calls [`Group::advance`] before touching or reading a group, which evicts from each bucket the
//! members its horizon passed, oldest first, O(log n) each. An item enters and leaves every bucket at most once,
//! so upkeep is O(log n) amortized per item and field, whatever the number of groups.
//!
//! A series' values (its order statistics) are filled when they are read, not as members come and go: a page
//! reads the statistics of one host and the fleet's, while every host's sample enters and leaves a window and
//! three buckets per field, so keeping every tree current cost each sample a dozen tree updates per field that
//! nobody read. A change counts in the scopes (the window, the buckets) it touches; [`Group::refresh`] rebuilds
//! a series whose scope changed since it was filled from its members, in time order, O(n log n) once per read
//! after a change. Counters' increases stay incremental: they
//! need each member's neighbours of its key at the time it enters or leaves.

use std::ops::Bound;

use super::order_stats::OrderStats;
use super::ordered::OrderedSet;
use super::rate::Increase;
use crate::observe::ItemId;

/// A finite time in ms as a totally ordered key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct TimeKey(u64);

impl TimeKey {
    pub(super) fn new(time_ms: f64) -> Self {
        let bits = (time_ms + 0.0).to_bits();
        TimeKey(if bits >> 63 == 1 {
            !bits
        } else {
            bits | 1 << 63
        })
    }

    /// The smallest key after `time_ms`.
    fn after(time_ms: f64) -> Self {
        TimeKey(Self::new(time_ms).0 + 1)
    }
}

/// What a group needs to know of a member.
pub(super) struct Member<'a> {
    pub key: u32,
    pub time: f64,
    /// One per field; NaN where the item had no number.
    pub values: &'a [f64],
}

/// Where the group finds its members' data.
pub(super) trait Members {
    fn member(&self, id: ItemId) -> Member<'_>;
}

/// Statistics of one field over one set of members.
#[derive(Debug, Clone, Default)]
pub(super) struct Series {
    /// The members' values, as of change `filled_at` of its scope.
    pub values: OrderStats,
    pub increase: Increase,
    filled_at: u64,
}

/// Which members a query covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every member of the group.
    Window,
    /// The members in rolling bucket `i` (an index into [`AggregateSpec::buckets_ms`](super::AggregateSpec)).
    Bucket(usize),
}

#[derive(Debug, Clone)]
struct Field {
    window: Series,
    buckets: Vec<Series>,
    /// For counters: the members with this field, by key then time, to find a sample's neighbours.
    chain: Option<OrderedSet<(u32, TimeKey, ItemId)>>,
}

/// One group: see the module docs.
#[derive(Debug, Clone)]
pub(super) struct Group {
    by_time: OrderedSet<(TimeKey, ItemId)>,
    /// Per bucket: its members are those with time > horizon.
    horizons: Vec<f64>,
    /// How many times members came or left: in the window, then in each bucket.
    changes: Vec<u64>,
    fields: Vec<Field>,
}

impl Group {
    /// An empty group; `counters[f]` says whether field `f` needs rates.
    pub fn new(counters: &[bool], buckets: usize) -> Self {
        Group {
            by_time: OrderedSet::new(),
            horizons: vec![f64::NEG_INFINITY; buckets],
            changes: vec![0; 1 + buckets],
            fields: counters
                .iter()
                .map(|&counter| Field {
                    window: Series::default(),
                    buckets: vec![Series::default(); buckets],
                    chain: counter.then(OrderedSet::new),
                })
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_time.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_time.is_empty()
    }

    /// Moves the buckets' horizons to `clock − length`, evicting the members they pass.
    pub fn advance(&mut self, clock: f64, buckets_ms: &[f64], members: &impl Members) {
        for (b, length) in buckets_ms.iter().enumerate() {
            let horizon = clock - length;
            let old = self.horizons[b];
            if horizon <= old {
                continue;
            }
            self.horizons[b] = horizon;
            let mut passed = self
                .by_time
                .range(
                    Bound::Included((TimeKey::after(old), 0)),
                    Bound::Included((TimeKey::new(horizon), ItemId::MAX)),
                )
                .peekable();
            if passed.peek().is_none() {
                continue;
            }
            self.changes[1 + b] += 1;
            if !self.fields.iter().any(|field| field.chain.is_some()) {
                continue;
            }
            for &(_, id) in passed {
                let m = members.member(id);
                for (f, field) in self.fields.iter_mut().enumerate() {
                    let value = m.values[f];
                    let Some(chain) = &field.chain else {
                        continue;
                    };
                    if value.is_nan() {
                        continue;
                    }
                    // Evicted oldest first: nothing of its key is left before it in the bucket.
                    let after = next_in_chain(chain, m.key, TimeKey::new(m.time), id, members, f);
                    field.buckets[b]
                        .increase
                        .remove(None, value, after.map(|(_, v)| v));
                }
            }
        }
    }

    /// `id` joins the group (after [`advance`](Self::advance) to the current clock).
    pub fn add(&mut self, id: ItemId, members: &impl Members) {
        self.change(id, members, true);
    }

    /// `id` leaves the group (after [`advance`](Self::advance) to the current clock).
    pub fn remove(&mut self, id: ItemId, members: &impl Members) {
        self.change(id, members, false);
    }

    fn change(&mut self, id: ItemId, members: &impl Members, joining: bool) {
        let m = members.member(id);
        let time = TimeKey::new(m.time);
        if joining {
            self.by_time.insert((time, id));
        } else {
            self.by_time.remove(&(time, id));
        }
        self.changes[0] += 1;
        for (changes, horizon) in self.changes[1..].iter_mut().zip(&self.horizons) {
            if m.time > *horizon {
                *changes += 1;
            }
        }
        for (f, field) in self.fields.iter_mut().enumerate() {
            let value = m.values[f];
            if value.is_nan() {
                continue;
            }
            let Some(chain) = field.chain.as_mut() else {
                continue;
            };
            let neighbours = {
                if joining {
                    chain.insert((m.key, time, id));
                } else {
                    chain.remove(&(m.key, time, id));
                }
                (
                    previous_in_chain(chain, m.key, time, id, members, f),
                    next_in_chain(chain, m.key, time, id, members, f),
                )
            };
            let in_window = std::iter::once((&mut field.window, f64::NEG_INFINITY));
            let in_buckets = field.buckets.iter_mut().zip(self.horizons.iter().copied());
            for (series, horizon) in in_window.chain(in_buckets) {
                if m.time <= horizon {
                    continue;
                }
                let (before, after) = neighbours;
                let before = before.filter(|&(t, _)| t > horizon).map(|(_, v)| v);
                let after = after.map(|(_, v)| v);
                if joining {
                    series.increase.insert(before, value, after);
                } else {
                    series.increase.remove(before, value, after);
                }
            }
        }
    }

    /// Fills the values of `field` over `scope` if members came or left since they were (after
    /// [`advance`](Self::advance) to the current clock).
    pub fn refresh(&mut self, field: usize, scope: Scope, members: &impl Members) {
        let (from, changes) = match scope {
            Scope::Window => (Bound::Unbounded, self.changes[0]),
            Scope::Bucket(b) => match self.horizons.get(b) {
                Some(&horizon) => (
                    Bound::Included((TimeKey::after(horizon), 0)),
                    self.changes[1 + b],
                ),
                None => return,
            },
        };
        let Some(f) = self.fields.get_mut(field) else {
            return;
        };
        let series = match scope {
            Scope::Window => &mut f.window,
            Scope::Bucket(b) => &mut f.buckets[b],
        };
        if series.filled_at == changes {
            return;
        }
        series.filled_at = changes;
        // The aggregator stores NaN where a member has no number, which `fill` leaves out.
        let values = self.by_time.range(from, Bound::Unbounded);
        series
            .values
            .fill(values.map(|&(_, id)| members.member(id).values[field]));
    }

    /// Every field over every scope: [`refresh`](Self::refresh) of each.
    pub fn refresh_all(&mut self, members: &impl Members) {
        for field in 0..self.fields.len() {
            self.refresh(field, Scope::Window, members);
            for b in 0..self.horizons.len() {
                self.refresh(field, Scope::Bucket(b), members);
            }
        }
    }

    /// The series of `field` over `scope`, its values as last [refreshed](Self::refresh); `None` for a bucket
    /// index out of range.
    pub fn series(&self, field: usize, scope: Scope) -> Option<&Series> {
        let field = self.fields.get(field)?;
        match scope {
            Scope::Window => Some(&field.window),
            Scope::Bucket(b) => field.buckets.get(b),
        }
    }

    /// The times of the first and last member in `scope`.
    pub fn time_span(&self, scope: Scope, members: &impl Members) -> Option<(f64, f64)> {
        let from = match scope {
            Scope::Window => Bound::Unbounded,
            Scope::Bucket(b) => Bound::Included((TimeKey::after(*self.horizons.get(b)?), 0)),
        };
        let mut range = self.by_time.range(from, Bound::Unbounded);
        let first = range.next()?.1;
        let last = range.next_back().map_or(first, |&(_, id)| id);
        Some((members.member(first).time, members.member(last).time))
    }

    /// The newest member with a value for `field`: (value, time).
    pub fn latest(&self, field: usize, members: &impl Members) -> Option<(f64, f64)> {
        self.by_time.iter().rev().find_map(|&(_, id)| {
            let m = members.member(id);
            let value = *m.values.get(field)?;
            (!value.is_nan()).then_some((value, m.time))
        })
    }
}

/// The member of `key` just before `(time, id)` in `chain`: (time, value of field `f`).
fn previous_in_chain(
    chain: &OrderedSet<(u32, TimeKey, ItemId)>,
    key: u32,
    time: TimeKey,
    id: ItemId,
    members: &impl Members,
    f: usize,
) -> Option<(f64, f64)> {
    let &(k, _, other) = chain
        .range(Bound::Unbounded, Bound::Excluded((key, time, id)))
        .next_back()?;
    (k == key).then(|| {
        let m = members.member(other);
        (m.time, m.values[f])
    })
}

/// The member of `key` just after `(time, id)` in `chain`: (time, value of field `f`).
fn next_in_chain(
    chain: &OrderedSet<(u32, TimeKey, ItemId)>,
    key: u32,
    time: TimeKey,
    id: ItemId,
    members: &impl Members,
    f: usize,
) -> Option<(f64, f64)> {
    let &(k, _, other) = chain
        .range(Bound::Excluded((key, time, id)), Bound::Unbounded)
        .next()?;
    (k == key).then(|| {
        let m = members.member(other);
        (m.time, m.values[f])
    })
}
