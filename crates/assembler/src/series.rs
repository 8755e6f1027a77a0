//! Numeric series kept up to date as items come and go, so that a page reading `series(key, path)` every frame
//! for dozens of keys pays for copying numbers, not for scanning each item's JSON again.
//!
//! For every timed item (sorted-set members, whose time is their score, and stream entries) the aggregated
//! fields are read once, when the item enters its window, and kept in time order next to its id. Items that
//! share a time keep the order they arrived in, where Redis orders equal scores by member bytes; a page that
//! needs that order exactly reads the window itself.
//!
//! A page that draws hundreds of keys registers them once ([`SeriesCache::track`], a small integer handle each)
//! and then reads, once a frame, only what changed ([`SeriesCache::read_changes`]): as items come and go each
//! tracked key's handle is pushed on a list the first time its series changes after a read, with how many rows
//! were appended at its newest end, or that it changed otherwise. A read walks that list alone, never every
//! tracked key, so at 1,000 keys writing once a second a frame copies the ~17 rows that moved.

use std::collections::VecDeque;

use crate::aggregate::json::PathError;
use crate::aggregate::sample::{Read, SampleReader};
use crate::observe::{Item, ItemId};
use crate::windows::fast_hash::FastMap;

/// A time in an order that sorts like `f64::total_cmp`.
fn ordered(time: f64) -> i64 {
    let bits = time.to_bits() as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

/// One key's timed items in time order, a column per field. Samples almost always arrive newest and leave
/// oldest, so the columns are double-ended queues: both ends cost O(1), and a series is one contiguous copy.
#[derive(Debug, Default)]
struct KeySeries {
    /// Its handle, when the key is tracked.
    handle: Option<u32>,
    /// (time, id) of each row, ascending.
    rows: VecDeque<(i64, ItemId)>,
    times: VecDeque<f64>,
    columns: Vec<VecDeque<f64>>,
    /// Where each item's row is, by its time.
    by_id: FastMap<ItemId, i64>,
}

impl KeySeries {
    /// A series of `fields` columns without rows.
    fn empty(fields: usize, handle: Option<u32>) -> KeySeries {
        KeySeries {
            handle,
            columns: vec![VecDeque::new(); fields],
            ..KeySeries::default()
        }
    }

    fn position(&self, row: (i64, ItemId)) -> Result<usize, usize> {
        // The common case, a sample newer than all others, without a search.
        match self.rows.back() {
            Some(last) if *last < row => Err(self.rows.len()),
            None => Err(0),
            _ => self.rows.binary_search(&row),
        }
    }
}

/// The series of the aggregated fields, per key.
#[derive(Debug)]
pub struct SeriesCache {
    paths: Vec<String>,
    reader: SampleReader,
    values: Vec<f64>,
    keys: FastMap<Vec<u8>, KeySeries>,
    changes: Changes,
}

/// A tracked key's state since its last read: not changed, `n + 1` for `n` rows appended at the newest end (and
/// maybe rows removed from the oldest), or [`OTHERWISE`].
type Change = u32;
/// Changed in another way than rows appended at the newest end and removed from the oldest: read it whole.
const OTHERWISE: Change = u32::MAX;

/// The tracked keys, by handle, and those changed since the last read. A tracked key keeps its entry in the cache
/// (empty while it has no rows), which holds its handle, so that following a change costs no lookup of its own.
#[derive(Debug, Default)]
pub struct Changes {
    keys: Vec<Vec<u8>>,
    state: Vec<Change>,
    /// Handles whose state is not 0, each once, in the order they changed.
    changed: Vec<u32>,
}

impl Changes {
    /// `handle`'s series gained a row at its newest end (`appended`), lost its oldest (`!appended`), or changed
    /// otherwise (`None`).
    fn mark(&mut self, handle: Option<u32>, appended: Option<bool>) {
        let Some(handle) = handle else {
            return;
        };
        let state = &mut self.state[handle as usize];
        if *state == 0 {
            self.changed.push(handle);
        }
        *state = match appended {
            _ if *state == OTHERWISE => OTHERWISE,
            Some(true) => (*state).max(1).saturating_add(1).min(OTHERWISE - 1),
            Some(false) => (*state).max(1),
            None => OTHERWISE,
        };
    }
}

impl SeriesCache {
    pub fn new(paths: Vec<String>) -> Result<Self, PathError> {
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        Ok(SeriesCache {
            reader: SampleReader::new(&refs)?,
            values: vec![f64::NAN; paths.len()],
            paths,
            keys: FastMap::default(),
            changes: Changes::default(),
        })
    }

    /// The same, tracking the keys `changes` tracks (of a cache this one replaces: the windows started over),
    /// each reported as changed otherwise once its series is back, and not before.
    pub fn with_changes(mut self, mut changes: Changes) -> Self {
        changes.state.fill(0);
        changes.changed.clear();
        for (handle, key) in changes.keys.iter().enumerate() {
            let empty = KeySeries::empty(self.paths.len(), Some(handle as u32));
            self.keys.insert(key.clone(), empty);
        }
        self.changes = changes;
        self
    }

    /// `key`'s series, if it has rows.
    fn rows_of(&self, key: &[u8]) -> Option<&KeySeries> {
        self.keys.get(key).filter(|s| !s.rows.is_empty())
    }

    /// The tracked keys, for a cache that replaces this one.
    pub fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }

    /// `key`'s handle for [`SeriesCache::read_changes`], given the first time it is asked for (and then reported
    /// as changed otherwise, so that it is read whole once), the same afterwards.
    pub fn track(&mut self, key: &[u8]) -> u32 {
        let changes = &mut self.changes;
        let handle = changes.keys.len() as u32;
        match self.keys.get_mut(key) {
            Some(KeySeries {
                handle: Some(handle),
                ..
            }) => return *handle,
            Some(series) => {
                series.handle = Some(handle);
                changes.state.push(0);
                if !series.rows.is_empty() {
                    changes.mark(Some(handle), None);
                }
            }
            None => {
                changes.state.push(0);
                let empty = KeySeries::empty(self.paths.len(), Some(handle));
                self.keys.insert(key.to_vec(), empty);
            }
        }
        self.changes.keys.push(key.to_vec());
        handle
    }

    /// Replaces `out` with a row for each tracked key whose series changed since the last read, in the order they
    /// changed, and forgets those changes: its handle, its row count, the rows appended at its newest end since the
    /// last read (those that left the oldest end are the difference of the counts) or −1 when it changed otherwise
    /// (read it whole), its newest time and its newest value of each followed field (NaN without rows).
    pub fn read_changes(&mut self, out: &mut Vec<f64>) {
        out.clear();
        let changes = &mut self.changes;
        for handle in changes.changed.drain(..) {
            let state = std::mem::take(&mut changes.state[handle as usize]);
            let series = self.keys.get(&changes.keys[handle as usize]);
            debug_assert!(series.is_some(), "a tracked key keeps its entry");
            let appended = match state {
                OTHERWISE => -1.0,
                n => f64::from(n - 1),
            };
            let rows = series.map_or(0, |s| s.rows.len());
            out.extend([f64::from(handle), rows as f64, appended]);
            out.push(
                series
                    .and_then(|s| s.times.back().copied())
                    .unwrap_or(f64::NAN),
            );
            for field in 0..self.paths.len() {
                let newest = series.and_then(|s| s.columns[field].back().copied());
                out.push(newest.unwrap_or(f64::NAN));
            }
        }
    }

    pub fn added(&mut self, key: &[u8], item: Item<'_>) {
        let Some(time) = item.time_ms else {
            return;
        };
        let values = &mut self.values;
        values.fill(f64::NAN);
        // An item that is not JSON has none of the fields: NaN throughout, as a series shows a gap.
        let _ = self.reader.read(item.payload, |i, read| {
            if let Read::Number(v, _) = read {
                values[i] = v;
            }
        });
        self.insert(key, item.id, time);
    }

    /// `item` entered `key`'s window, already read at this cache's paths, in their order and maybe followed by
    /// others (`Err` when its payload was not JSON): for followers that read each item once between them.
    pub fn added_reads(&mut self, key: &[u8], item: Item<'_>, reads: Result<&[Read<'_>], ()>) {
        let Some(time) = item.time_ms else {
            return;
        };
        self.values.fill(f64::NAN);
        for (value, read) in self.values.iter_mut().zip(reads.unwrap_or_default()) {
            if let Read::Number(v, _) = read {
                *value = *v;
            }
        }
        self.insert(key, item.id, time);
    }

    /// Files the values just read as `id`'s row at `time`.
    fn insert(&mut self, key: &[u8], id: ItemId, time: f64) {
        if !self.keys.contains_key(key) {
            let empty = KeySeries::empty(self.paths.len(), None);
            self.keys.insert(key.to_vec(), empty);
        }
        let Some(series) = self.keys.get_mut(key) else {
            return;
        };
        let row = (ordered(time), id);
        let Err(at) = series.position(row) else {
            return;
        };
        // A series that starts (new, back after it was cleared, or after the windows started over) is read whole.
        let appended = at == series.rows.len() && at > 0;
        self.changes.mark(series.handle, appended.then_some(true));
        series.rows.insert(at, row);
        series.times.insert(at, time);
        for (column, value) in series.columns.iter_mut().zip(self.values.iter()) {
            column.insert(at, *value);
        }
        series.by_id.insert(id, row.0);
    }

    pub fn removed(&mut self, key: &[u8], id: ItemId) {
        let Some(series) = self.keys.get_mut(key) else {
            return;
        };
        let Some(time) = series.by_id.remove(&id) else {
            return;
        };
        let at = match series.rows.front() {
            Some(first) if *first == (time, id) => 0,
            _ => match series.rows.binary_search(&(time, id)) {
                Ok(at) => at,
                Err(_) => return,
            },
        };
        self.changes.mark(series.handle, (at == 0).then_some(false));
        series.rows.remove(at);
        series.times.remove(at);
        for column in &mut series.columns {
            column.remove(at);
        }
    }

    pub fn key_cleared(&mut self, key: &[u8]) {
        let fields = self.paths.len();
        let Some(series) = self.keys.get_mut(key) else {
            return;
        };
        match series.handle {
            // A tracked key keeps its (empty) entry, and its handle.
            Some(handle) => {
                *series = KeySeries::empty(fields, Some(handle));
                self.changes.mark(Some(handle), None);
            }
            None => {
                self.keys.remove(key);
            }
        }
    }

    /// `key`'s values of `path`, oldest first, if `path` is followed and the key's items are timed.
    pub fn series(&self, key: &[u8], path: &str) -> Option<Vec<f64>> {
        let field = self.paths.iter().position(|p| p == path)?;
        let column = &self.rows_of(key)?.columns[field];
        let (a, b) = column.as_slices();
        Some([a, b].concat())
    }

    /// How many fields each key follows: the length of [`SeriesCache::newest`]'s values.
    pub fn fields(&self) -> usize {
        self.paths.len()
    }

    /// `key`'s newest item: its time and its value of each followed field (NaN where it has none), the last of
    /// [`SeriesCache::times`] and of each [`SeriesCache::series`]; copied, not computed, so a page can read every
    /// key's newest sample each frame.
    pub fn newest(&self, key: &[u8]) -> Option<(f64, impl Iterator<Item = f64> + '_)> {
        let series = self.rows_of(key)?;
        let time = *series.times.back()?;
        Some((
            time,
            series
                .columns
                .iter()
                .map(|c| c.back().copied().unwrap_or(f64::NAN)),
        ))
    }

    /// `key`'s item times, oldest first, if its items are timed and followed here.
    pub fn times(&self, key: &[u8]) -> Option<Vec<f64>> {
        let (a, b) = self.rows_of(key)?.times.as_slices();
        Some([a, b].concat())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::Payload;

    fn item(id: ItemId, time: f64, json: &'static [u8]) -> Item<'static> {
        Item {
            id,
            time_ms: Some(time),
            payload: Payload::Value(json),
        }
    }

    #[test]
    fn series_follow_items_in_time_order_through_removals() {
        let mut cache = SeriesCache::new(vec!["cpu".into(), "mem.used".into()]).unwrap();
        cache.added(b"k", item(1, 20.0, br#"{"cpu":2,"mem":{"used":7}}"#));
        cache.added(b"k", item(2, 10.0, br#"{"cpu":1}"#));
        cache.added(b"k", item(3, -5.0, b"not json"));
        cache.added(b"other", item(4, 1.0, br#"{"cpu":9}"#));
        let cpu = cache.series(b"k", "cpu").unwrap();
        assert!(cpu[0].is_nan());
        assert_eq!(&cpu[1..], &[1.0, 2.0]);
        let mem = cache.series(b"k", "mem.used").unwrap();
        assert!(mem[1].is_nan() && mem[2] == 7.0);
        assert_eq!(cache.times(b"k").unwrap(), vec![-5.0, 10.0, 20.0]);
        cache.removed(b"k", 1);
        cache.removed(b"k", 99);
        cache.added(b"k", item(5, 15.0, br#"{"cpu":1.5}"#));
        assert_eq!(cache.times(b"k").unwrap(), vec![-5.0, 10.0, 15.0]);
        cache.removed(b"k", 3);
        assert_eq!(cache.series(b"k", "cpu").unwrap(), vec![1.0, 1.5]);
        assert_eq!(cache.series(b"k", "cpu").unwrap().len(), 2);
        cache.key_cleared(b"k");
        assert_eq!(cache.series(b"k", "cpu"), None);
        assert_eq!(cache.series(b"other", "load"), None, "not a followed path");
    }

    #[test]
    fn newest_is_the_last_of_times_and_of_each_series() {
        let mut cache = SeriesCache::new(vec!["cpu".into(), "mem.used".into()]).unwrap();
        assert_eq!(cache.fields(), 2);
        assert!(cache.newest(b"k").is_none(), "no key");
        cache.added(b"k", item(1, 20.0, br#"{"cpu":2,"mem":{"used":7}}"#));
        cache.added(b"k", item(2, 10.0, br#"{"cpu":1}"#));
        let newest = |cache: &SeriesCache| {
            cache.newest(b"k").map(|(t, values)| {
                (
                    t,
                    values
                        .map(|v| if v.is_nan() { -1.0 } else { v })
                        .collect::<Vec<_>>(),
                )
            })
        };
        assert_eq!(
            newest(&cache),
            Some((20.0, vec![2.0, 7.0])),
            "by time, not arrival"
        );
        cache.added(b"k", item(3, 30.0, br#"{"cpu":3}"#));
        assert_eq!(
            newest(&cache),
            Some((30.0, vec![3.0, -1.0])),
            "a missing field is NaN"
        );
        cache.removed(b"k", 3);
        assert_eq!(newest(&cache), Some((20.0, vec![2.0, 7.0])));
        for (time, values) in [cache.times(b"k").unwrap()]
            .iter()
            .zip([cache.series(b"k", "cpu").unwrap()])
        {
            assert_eq!(newest(&cache).unwrap().0, *time.last().unwrap());
            assert_eq!(newest(&cache).unwrap().1[0], *values.last().unwrap());
        }
        cache.key_cleared(b"k");
        assert!(cache.newest(b"k").is_none(), "cleared");
    }

    /// `read_changes` as (handle, rows, appended, newest time, newest values with NaN as -1).
    fn changes(cache: &mut SeriesCache) -> Vec<(f64, f64, f64, f64, Vec<f64>)> {
        let mut out = vec![7.0; 3];
        cache.read_changes(&mut out);
        let stride = 4 + cache.fields();
        assert_eq!(out.len() % stride, 0);
        let nan = |v: f64| if v.is_nan() { -1.0 } else { v };
        out.chunks(stride)
            .map(|r| {
                (
                    r[0],
                    r[1],
                    r[2],
                    nan(r[3]),
                    r[4..].iter().map(|&v| nan(v)).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn tracked_keys_report_what_changed_since_the_last_read_and_only_that() {
        let mut cache = SeriesCache::new(vec!["cpu".into()]).unwrap();
        cache.added(b"a", item(1, 10.0, br#"{"cpu":1}"#));
        assert_eq!(cache.track(b"a"), 0);
        assert_eq!(cache.track(b"b"), 1);
        assert_eq!(cache.track(b"a"), 0, "the same handle again");
        assert_eq!(
            changes(&mut cache),
            vec![(0.0, 1.0, -1.0, 10.0, vec![1.0])],
            "a key with a series is read whole once tracked; one without waits for its first row"
        );
        assert!(changes(&mut cache).is_empty(), "nothing since");

        // Appended at the newest end, once and twice, the oldest trimmed: each key once, in the order changed.
        cache.added(b"b", item(2, 5.0, br#"{"cpu":5}"#));
        cache.added(b"a", item(3, 20.0, br#"{"cpu":2}"#));
        cache.added(b"other", item(4, 1.0, br#"{"cpu":9}"#));
        assert_eq!(
            changes(&mut cache),
            vec![
                (1.0, 1.0, -1.0, 5.0, vec![5.0]),
                (0.0, 2.0, 1.0, 20.0, vec![2.0])
            ]
        );
        cache.added(b"a", item(5, 30.0, br#"{"cpu":3}"#));
        cache.removed(b"a", 1);
        cache.added(b"a", item(6, 40.0, br#"{}"#));
        assert_eq!(changes(&mut cache), vec![(0.0, 3.0, 2.0, 40.0, vec![-1.0])]);
        cache.removed(b"a", 3);
        assert_eq!(
            changes(&mut cache),
            vec![(0.0, 2.0, 0.0, 40.0, vec![-1.0])],
            "only trimmed"
        );

        // Inserted before the newest, removed from the middle or the newest end, cleared: read it whole.
        cache.added(b"a", item(7, 35.0, br#"{"cpu":3.5}"#));
        assert_eq!(changes(&mut cache)[0].2, -1.0, "inserted before the newest");
        cache.removed(b"a", 7);
        cache.added(b"a", item(8, 50.0, br#"{"cpu":5}"#));
        assert_eq!(
            changes(&mut cache)[0].2,
            -1.0,
            "removed from the middle, then appended"
        );
        cache.removed(b"a", 8);
        assert_eq!(changes(&mut cache)[0].2, -1.0, "the newest removed");
        cache.key_cleared(b"a");
        assert_eq!(
            changes(&mut cache),
            vec![(0.0, 0.0, -1.0, -1.0, vec![-1.0])]
        );
        cache.added(b"a", item(9, 60.0, br#"{"cpu":6}"#));
        cache.added(b"a", item(10, 70.0, br#"{"cpu":7}"#));
        assert_eq!(
            changes(&mut cache),
            vec![(0.0, 2.0, -1.0, 70.0, vec![7.0])],
            "back after it was cleared"
        );

        // A cache that replaces this one (the windows started over) keeps the handles; every key is new there.
        let changes_before = cache.take_changes();
        let mut cache = SeriesCache::new(vec!["cpu".into()])
            .unwrap()
            .with_changes(changes_before);
        assert!(changes(&mut cache).is_empty());
        cache.added(b"b", item(11, 80.0, br#"{"cpu":8}"#));
        cache.added(b"b", item(12, 90.0, br#"{"cpu":9}"#));
        assert_eq!(changes(&mut cache), vec![(1.0, 2.0, -1.0, 90.0, vec![9.0])]);
        assert_eq!(cache.track(b"b"), 1);
        assert_eq!(cache.track(b"c"), 2);
    }

    #[test]
    fn times_order_like_total_cmp() {
        let times = [f64::NEG_INFINITY, -2.5, -0.0, 0.0, 1e-9, 3.0, f64::INFINITY];
        for pair in times.windows(2) {
            assert!(ordered(pair[0]) < ordered(pair[1]), "{pair:?}");
        }
    }
}
