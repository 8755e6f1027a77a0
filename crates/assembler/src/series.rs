//! Numeric series kept up to date as items come and go, so that a page reading `series(key, path)` every frame
//! for dozens of keys pays for copying numbers, not for scanning each item's JSON again.
//!
//! For every timed item (sorted-set members, whose time is their score, and stream entries) the aggregated
//! fields are read once, when the item enters its window, and kept in time order next to its id. Items that
//! share a time keep the order they arrived in, where Redis orders equal scores by member bytes; a page that
//! needs that order exactly reads the window itself.

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
    /// (time, id) of each row, ascending.
    rows: VecDeque<(i64, ItemId)>,
    times: VecDeque<f64>,
    columns: Vec<VecDeque<f64>>,
    /// Where each item's row is, by its time.
    by_id: FastMap<ItemId, i64>,
}

impl KeySeries {
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
}

impl SeriesCache {
    pub fn new(paths: Vec<String>) -> Result<Self, PathError> {
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        Ok(SeriesCache {
            reader: SampleReader::new(&refs)?,
            values: vec![f64::NAN; paths.len()],
            paths,
            keys: FastMap::default(),
        })
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
        let fields = self.paths.len();
        let series = match self.keys.get_mut(key) {
            Some(series) => series,
            None => self.keys.entry(key.to_vec()).or_insert_with(|| KeySeries {
                columns: vec![VecDeque::new(); fields],
                ..KeySeries::default()
            }),
        };
        let row = (ordered(time), id);
        let Err(at) = series.position(row) else {
            return;
        };
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
        series.rows.remove(at);
        series.times.remove(at);
        for column in &mut series.columns {
            column.remove(at);
        }
    }

    pub fn key_cleared(&mut self, key: &[u8]) {
        self.keys.remove(key);
    }

    /// `key`'s values of `path`, oldest first, if `path` is followed and the key's items are timed.
    pub fn series(&self, key: &[u8], path: &str) -> Option<Vec<f64>> {
        let field = self.paths.iter().position(|p| p == path)?;
        let column = &self.keys.get(key)?.columns[field];
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
        let series = self.keys.get(key)?;
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
        let (a, b) = self.keys.get(key)?.times.as_slices();
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

    #[test]
    fn times_order_like_total_cmp() {
        let times = [f64::NEG_INFINITY, -2.5, -0.0, 0.0, 1e-9, 3.0, f64::INFINITY];
        for pair in times.windows(2) {
            assert!(ordered(pair[0]) < ordered(pair[1]), "{pair:?}");
        }
    }
}
