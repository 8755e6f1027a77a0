//! Incremental aggregation of the windows' samples: count, min, max, mean, p50/p95/p99 and counter rates of
//! numeric JSON fields, per key, per field value or across keys, over the window and over rolling time buckets
//! (1 s / 10 s / 1 min by default).
//!
//! An [`Aggregator`] follows an assembler's windows as their [`WindowObserver`]: each item that enters is read
//! once (its numbers, group and time; see [`json`]; followers of the same paths can share that read, see
//! [`Aggregator::added_reads`]), and from then on it is known by its [`ItemId`], so leaving costs O(log n)
//! without the item's bytes. Every update is O(log n) (amortized, for the rolling buckets); a query fills the
//! order statistics it reads from the group's members if they changed since (O(n log n), once per read after a
//! change), then reads them in O(log n) per statistic.
//!
//! Memory: per item, a record (key, group, time) and one `f64` per field; per item and field, one node in the
//! window's and in each bucket's [order-statistics multiset](order_stats) (equal values share one), and for
//! counters an entry in the group's per-key chain: O(fields × (1 + buckets)) per item, nothing per update. Items
//! that are not JSON, or have no group, are counted in [`Counters`] and not kept.
//!
//! An item's time is the window's (`Item::time_ms`, a sorted-set score or a stream id's milliseconds), else the
//! spec's time field, else the `now` last given to [`Aggregator::set_now`] (else the clock). The clock that rolls
//! the buckets is the largest of the items' times and `now`s seen; it never goes back.
//!
//! Wiring: give the aggregator to the assembler as its observer; call `set_now(Date.now())` before each
//! `push_message` when the watched types carry no time; read [`Aggregator::summaries`] once per frame.

pub mod json;
pub mod order_stats;
pub mod rate;
pub mod sum;

mod group;
mod ordered;
mod query;
pub mod sample;
mod spec;

use crate::observe::{Item, ItemId, WindowObserver};
use crate::windows::fast_hash::FastMap;
use group::{Group, Member, Members, TimeKey};
use ordered::OrderedSet;
use sample::{Read, SampleReader, MAX_PATHS};

pub use group::Scope;
pub use query::{Counters, FieldSummary, GroupSummary, Latest, Stats};
pub use spec::{
    Across, AggregateSpec, FieldSpec, Grouping, SpecError, DEFAULT_BUCKETS_MS, MAX_BUCKETS,
    MAX_FIELDS,
};

/// What the aggregator keeps of an item.
#[derive(Debug, Clone, Copy)]
struct Record {
    key: u32,
    group: u32,
    time: f64,
    /// Where its values start in `Records::values`.
    slot: u32,
    /// In its group (always, but for `LatestPerKey`, where only each key's newest is).
    member: bool,
}

/// The items' records and their values, one `f64` per field in a slab (NaN: no number).
#[derive(Debug, Clone, Default)]
struct Records {
    /// By id: a few words hashed per item added and removed, where SipHash cost more than the lookup itself.
    items: FastMap<ItemId, Record>,
    values: Vec<f64>,
    free_slots: Vec<u32>,
    fields: usize,
}

impl Records {
    fn insert(&mut self, id: ItemId, mut record: Record, values: &[f64]) {
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                let at = slot as usize * self.fields;
                self.values[at..at + self.fields].copy_from_slice(values);
                slot
            }
            None => {
                self.values.extend_from_slice(values);
                (self.values.len() / self.fields.max(1)).saturating_sub(1) as u32
            }
        };
        record.slot = slot;
        self.items.insert(id, record);
    }

    fn remove(&mut self, id: ItemId) -> Option<Record> {
        let record = self.items.remove(&id)?;
        if self.fields > 0 {
            self.free_slots.push(record.slot);
        }
        Some(record)
    }

    fn values(&self, record: &Record) -> &[f64] {
        let at = record.slot as usize * self.fields;
        &self.values[at..at + self.fields]
    }
}

impl Members for Records {
    fn member(&self, id: ItemId) -> Member<'_> {
        let record = &self.items[&id];
        Member {
            key: record.key,
            time: record.time,
            values: self.values(record),
        }
    }
}

/// Names interned to small indexes, with their slots reused.
#[derive(Debug, Clone)]
struct Slots<T> {
    /// `Vec` keys, not `Box<[u8]>`: the table of the same layout as the keyspace's `Vec<u8>` maps shares their
    /// code in the `.wasm`.
    ids: FastMap<Vec<u8>, u32>,
    slots: Vec<Option<(Box<[u8]>, T)>>,
    free: Vec<u32>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            ids: FastMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slots<T> {
    fn id(&self, name: &[u8]) -> Option<u32> {
        self.ids.get(name).copied()
    }

    fn get_or_insert_with(&mut self, name: &[u8], make: impl FnOnce() -> T) -> u32 {
        if let Some(id) = self.id(name) {
            return id;
        }
        let entry = Some((Box::from(name), make()));
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = entry;
                id
            }
            None => {
                self.slots.push(entry);
                (self.slots.len() - 1) as u32
            }
        };
        self.ids.insert(name.to_vec(), id);
        id
    }

    fn get(&self, id: u32) -> &T {
        match &self.slots[id as usize] {
            Some((_, value)) => value,
            None => unreachable!("slot {id} is in use"),
        }
    }

    fn get_mut(&mut self, id: u32) -> &mut T {
        match &mut self.slots[id as usize] {
            Some((_, value)) => value,
            None => unreachable!("slot {id} is in use"),
        }
    }

    fn remove(&mut self, id: u32) {
        if let Some((name, _)) = self.slots[id as usize].take() {
            self.ids.remove(&name[..]);
            self.free.push(id);
        }
    }

    fn iter(&self) -> impl Iterator<Item = (u32, &[u8], &T)> {
        self.slots.iter().enumerate().filter_map(|(id, slot)| {
            slot.as_ref()
                .map(|(name, value)| (id as u32, &name[..], value))
        })
    }
}

/// Incremental statistics over the windows of an assembler; see the module docs.
#[derive(Debug, Clone)]
pub struct Aggregator {
    spec: AggregateSpec,
    counters_of_fields: Vec<bool>,
    reader: SampleReader,
    /// Index of the group path and of the time path among the reader's paths.
    group_path: Option<usize>,
    time_path: Option<usize>,
    records: Records,
    /// Per key: its items by time.
    keys: Slots<OrderedSet<(TimeKey, ItemId)>>,
    groups: Slots<Group>,
    clock: f64,
    now: Option<f64>,
    counters: Counters,
}

impl Aggregator {
    /// An aggregator computing `spec`.
    pub fn new(spec: AggregateSpec) -> Result<Self, SpecError> {
        spec.check()?;
        let mut paths: Vec<&str> = spec.fields.iter().map(|f| f.path.as_str()).collect();
        let group_path = match &spec.grouping {
            Grouping::ByField(path) => {
                paths.push(path);
                Some(paths.len() - 1)
            }
            _ => None,
        };
        let time_path = spec.time_field.as_deref().map(|path| {
            paths.push(path);
            paths.len() - 1
        });
        let reader = SampleReader::new(&paths)?;
        let latest_only = spec.grouping == Grouping::AcrossKeys(Across::LatestPerKey);
        Ok(Aggregator {
            counters_of_fields: spec
                .fields
                .iter()
                .map(|f| f.counter && !latest_only)
                .collect(),
            records: Records {
                fields: spec.fields.len(),
                ..Records::default()
            },
            spec,
            reader,
            group_path,
            time_path,
            keys: Slots::default(),
            groups: Slots::default(),
            clock: f64::NEG_INFINITY,
            now: None,
            counters: Counters::default(),
        })
    }

    /// The spec it computes.
    pub fn spec(&self) -> &AggregateSpec {
        &self.spec
    }

    /// The JSON paths it reads of each item, in the order [`Aggregator::added_reads`] takes their reads: the
    /// fields', then the group's (`ByField`), then the time's.
    pub fn paths(&self) -> Vec<&str> {
        let group = match &self.spec.grouping {
            Grouping::ByField(path) => Some(path.as_str()),
            _ => None,
        };
        let fields = self.spec.fields.iter().map(|f| f.path.as_str());
        fields
            .chain(group)
            .chain(self.spec.time_field.as_deref())
            .collect()
    }

    /// The index of the field with this path in the spec (and in every query's results).
    pub fn field_index(&self, path: &str) -> Option<usize> {
        self.spec.fields.iter().position(|f| f.path == path)
    }

    /// The time now, in Unix ms: stamps items that carry no time, and moves the clock (never back).
    pub fn set_now(&mut self, now_ms: f64) {
        if now_ms.is_finite() {
            self.now = Some(now_ms);
            self.clock = self.clock.max(now_ms);
        }
    }

    /// The clock the rolling buckets end at: the largest time seen, `None` before any.
    pub fn clock_ms(&self) -> Option<f64> {
        self.clock.is_finite().then_some(self.clock)
    }

    /// What could not be aggregated so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// How many items are tracked.
    pub fn items(&self) -> usize {
        self.records.items.len()
    }

    /// Forgets every item (not the counters or the clock).
    pub fn clear(&mut self) {
        self.records.items.clear();
        self.records.values.clear();
        self.records.free_slots.clear();
        self.keys = Slots::default();
        self.groups = Slots::default();
    }

    fn stamp(&self) -> f64 {
        self.now.or_else(|| self.clock_ms()).unwrap_or(0.0)
    }

    fn join(&mut self, id: ItemId) {
        let Some(record) = self.records.items.get_mut(&id) else {
            return;
        };
        record.member = true;
        let group = record.group;
        // Split borrows: the group mutably, the records for reading.
        let (groups, records) = (&mut self.groups, &self.records);
        let g = groups.get_mut(group);
        g.advance(self.clock, &self.spec.buckets_ms, records);
        g.add(id, records);
    }

    fn leave(&mut self, id: ItemId) {
        let Some(record) = self.records.items.get_mut(&id) else {
            return;
        };
        if !std::mem::replace(&mut record.member, false) {
            return;
        }
        let group = record.group;
        let (groups, records) = (&mut self.groups, &self.records);
        let g = groups.get_mut(group);
        g.advance(self.clock, &self.spec.buckets_ms, records);
        g.remove(id, records);
    }

    fn latest_only(&self) -> bool {
        self.spec.grouping == Grouping::AcrossKeys(Across::LatestPerKey)
    }

    fn forget(&mut self, id: ItemId) {
        let Some(record) = self.records.items.get(&id).copied() else {
            self.counters.unknown_removals += 1;
            return;
        };
        let time = TimeKey::new(record.time);
        let latest_only = self.latest_only();
        let was_member = record.member;
        self.leave(id);
        let items = self.keys.get_mut(record.key);
        items.remove(&(time, id));
        let next_latest = items.last().map(|&(_, next)| next);
        if items.is_empty() {
            self.keys.remove(record.key);
        }
        if latest_only && was_member {
            if let Some(next) = next_latest {
                self.join(next);
            }
        }
        self.records.remove(id);
        self.counters.removed += 1;
        if self.groups.get_mut(record.group).is_empty() {
            self.groups.remove(record.group);
        }
    }
}

impl Aggregator {
    /// `item` entered `key`'s window, already read at [`Aggregator::paths`] (`Err` when its payload was not
    /// JSON): what [`WindowObserver::added`] does after reading it, for followers that read each item once
    /// between them.
    pub fn added_reads(&mut self, key: &[u8], item: Item<'_>, reads: Result<&[Read<'_>], ()>) {
        if self.records.items.contains_key(&item.id) {
            // Ids are never reused; should one come twice, the newer data wins.
            self.forget(item.id);
        }
        let Ok(reads) = reads else {
            self.counters.not_json += 1;
            return;
        };
        let fields = self.spec.fields.len();
        let mut values = [f64::NAN; MAX_FIELDS];
        let (mut missing, mut not_numeric) = (0, 0);
        for (value, read) in values.iter_mut().zip(&reads[..fields.min(reads.len())]) {
            match *read {
                Read::Number(v, _) => *value = v,
                Read::Missing => missing += 1,
                Read::Text(_) | Read::Other => not_numeric += 1,
            }
        }
        let group_name = match self.group_path.and_then(|i| reads.get(i)) {
            Some(Read::Number(_, text) | Read::Text(text)) => Some(*text),
            _ => None,
        };
        let field_time = match self.time_path.and_then(|i| reads.get(i)) {
            Some(Read::Number(v, _)) => Some(*v),
            _ => None,
        };
        let group_name: &[u8] = match &self.spec.grouping {
            Grouping::ByKey => key,
            Grouping::ByField(_) => match group_name {
                Some(name) => name,
                None => {
                    self.counters.no_group += 1;
                    return;
                }
            },
            Grouping::AcrossKeys(_) => b"",
        };
        self.counters.added += 1;
        self.counters.missing += missing;
        self.counters.not_numeric += not_numeric;
        let time = item
            .time_ms
            .filter(|t| t.is_finite())
            .or(field_time)
            .unwrap_or_else(|| self.stamp());
        self.clock = self.clock.max(time);

        let key_id = self.keys.get_or_insert_with(key, OrderedSet::new);
        let items = self.keys.get_mut(key_id);
        let previous_latest = items.last().map(|&(_, id)| id);
        items.insert((TimeKey::new(time), item.id));
        let is_latest = items.last().map(|&(_, id)| id) == Some(item.id);
        let (counters, buckets) = (&self.counters_of_fields, self.spec.buckets_ms.len());
        let group = self
            .groups
            .get_or_insert_with(group_name, || Group::new(counters, buckets));
        let record = Record {
            key: key_id,
            group,
            time,
            slot: 0,
            member: false,
        };
        self.records.insert(item.id, record, &values[..fields]);
        if !self.latest_only() {
            self.join(item.id);
        } else if is_latest {
            if let Some(previous) = previous_latest {
                self.leave(previous);
            }
            self.join(item.id);
        }
    }
}

impl WindowObserver for Aggregator {
    fn added(&mut self, key: &[u8], item: Item<'_>) {
        let mut reads = [Read::Missing; MAX_PATHS];
        let read = self.reader.read_into(item.payload, &mut reads);
        let paths = self.reader.len();
        self.added_reads(key, item, read.map(|()| &reads[..paths]).map_err(|_| ()));
    }

    fn removed(&mut self, _key: &[u8], id: ItemId) {
        self.forget(id);
    }

    fn key_cleared(&mut self, key: &[u8]) {
        let Some(key_id) = self.keys.id(key) else {
            return;
        };
        // Oldest first, so that under `LatestPerKey` no older item is promoted only to leave next.
        let ids: Vec<ItemId> = self
            .keys
            .get_mut(key_id)
            .iter()
            .map(|&(_, id)| id)
            .collect();
        for id in ids {
            self.forget(id);
        }
    }
}

#[cfg(test)]
mod tests;
