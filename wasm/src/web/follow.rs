//! What the browser API follows of the windows: which keys changed since the page last looked, and the
//! aggregates it asked for, all fed by the assembler's [`WindowObserver`] calls as commands are applied.
//!
//! Two aggregators at most: one per key (`stats(key, path)`: a host's own CPU over its window and the last
//! 1 s / 10 s / 1 min), and one across keys over each key's newest item (`fleet(path)`: the mean and p95 CPU of
//! the hosts' current samples, and how many are above a threshold).

use wasm_bindgen::prelude::*;

use replicast_assembler::aggregate::sample::{Read, SampleReader, MAX_PATHS};
use replicast_assembler::aggregate::{
    Across, AggregateSpec, Aggregator, FieldSpec, FieldSummary, Grouping, Scope, Stats,
};
use replicast_assembler::diagnostics::Diagnostics;
use replicast_assembler::observe::{Item, ItemId, WindowObserver};
use replicast_assembler::series::{Changes, SeriesCache};
use replicast_assembler::windows::fast_hash::FastSet;
use replicast_protocol::quote::quoted;

use super::error::words;
use super::objects::{object, OptionsObject};
use replicast_protocol::text;

/// The page's aggregation options.
#[derive(Debug, Clone)]
pub struct AggregateOptions {
    /// Numeric JSON fields (dotted paths) aggregated as gauges.
    fields: Vec<String>,
    /// Fields that are counters (bytes sent so far): aggregated with a rate per second.
    counters: Vec<String>,
    /// A JSON field holding each item's time in Unix ms, for items without one of their own.
    time: Option<String>,
    /// Rolling buckets in milliseconds (default 1 s, 10 s, 1 min).
    buckets_ms: Option<Vec<f64>>,
    /// More numeric fields kept as series, after the aggregated ones, without statistics.
    series: Vec<String>,
}

impl AggregateOptions {
    /// Reads the `aggregate` option.
    pub fn read(value: &JsValue) -> Result<AggregateOptions, String> {
        let object = OptionsObject::new(
            value,
            &["fields", "counters", "time", "bucketsMs", "series"],
        )
        .map_err(|e| format!("`aggregate`: {e}"))?;
        Ok(AggregateOptions {
            fields: object.strings("fields")?,
            counters: object.strings("counters")?,
            time: object.string("time")?,
            buckets_ms: object.numbers("bucketsMs")?,
            series: object.strings("series")?,
        })
    }
}

/// Follows the windows for the browser API.
#[derive(Debug, Default)]
pub struct Follow {
    /// Keys whose windows changed since [`Follow::take_changed`]: hashed, since every item that enters or leaves
    /// a window looks its key up here; sorted once when taken.
    pub changed: FastSet<Vec<u8>>,
    /// Reads each item once for the two aggregators and the series, which read the same paths.
    reader: Option<SampleReader>,
    by_key: Option<Aggregator>,
    fleet: Option<Aggregator>,
    series: Option<SeriesCache>,
    /// Where each of the series' paths is among the reader's: the aggregated fields, then `aggregate.series`
    /// (after the time field, when there is one).
    series_reads: Vec<usize>,
    /// The numbers behind the last `seriesView` or `changes`, which alias them.
    pub view_buffer: Vec<f64>,
}

impl Follow {
    pub fn new(options: Option<AggregateOptions>) -> Result<Follow, JsError> {
        let Some(options) = options else {
            return Ok(Follow::default());
        };
        let fields: Vec<FieldSpec> = options
            .fields
            .iter()
            .map(FieldSpec::gauge)
            .chain(options.counters.iter().map(FieldSpec::counter))
            .collect();
        let spec = |grouping| {
            let mut spec = AggregateSpec::new(fields.clone(), grouping);
            if let Some(time) = &options.time {
                spec = spec.with_time_field(time.clone());
            }
            if let Some(buckets) = &options.buckets_ms {
                spec = spec.with_buckets_ms(buckets.clone());
            }
            Aggregator::new(spec)
                .map_err(|e| JsError::new(&format!("invalid aggregate options: {e}")))
        };
        let mut paths: Vec<String> = options
            .fields
            .iter()
            .chain(&options.counters)
            .cloned()
            .collect();
        let by_key = spec(Grouping::ByKey)?;
        let fleet = spec(Grouping::AcrossKeys(Across::LatestPerKey))?;
        debug_assert_eq!(by_key.paths(), fleet.paths());
        let mut reads = by_key.paths();
        let mut series_reads: Vec<usize> = (0..paths.len()).collect();
        for path in &options.series {
            if !paths.contains(path) {
                series_reads.push(reads.len());
                reads.push(path);
                paths.push(path.clone());
            }
        }
        if reads.len() > MAX_PATHS {
            return Err(JsError::new(&format!(
                "invalid aggregate options: {} fields and series, at most {MAX_PATHS}",
                reads.len()
            )));
        }
        let invalid =
            |e: replicast_assembler::aggregate::json::PathError| JsError::new(&e.to_string());
        let reader = SampleReader::new(&reads).map_err(invalid)?;
        Ok(Follow {
            changed: FastSet::default(),
            reader: Some(reader),
            by_key: Some(by_key),
            fleet: Some(fleet),
            series: Some(SeriesCache::new(paths).map_err(invalid)?),
            series_reads,
            view_buffer: Vec::new(),
        })
    }

    /// Keys whose windows changed since the last call, in key order.
    pub fn take_changed(&mut self) -> Vec<String> {
        let mut keys: Vec<Vec<u8>> = std::mem::take(&mut self.changed).into_iter().collect();
        replicast_assembler::sort::sort(&mut keys);
        keys.into_iter()
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .collect()
    }

    /// The keys `changes` reports on, for a follower that replaces this one (the windows started over).
    pub fn take_changes(&mut self) -> Changes {
        self.series
            .as_mut()
            .map(SeriesCache::take_changes)
            .unwrap_or_default()
    }

    /// The same, reporting on the keys `changes` tracked.
    pub fn with_changes(mut self, changes: Changes) -> Follow {
        self.series = self.series.map(|s| s.with_changes(changes));
        self
    }

    /// `key`'s handle for [`Follow::changes`] (see [`SeriesCache::track`]); none without aggregation.
    pub fn track(&mut self, key: &str) -> Option<u32> {
        Some(self.series.as_mut()?.track(key.as_bytes()))
    }

    /// What changed in the tracked keys' series since the last call, in `view_buffer` (see
    /// [`SeriesCache::read_changes`]).
    pub fn changes(&mut self) -> &mut Vec<f64> {
        match &mut self.series {
            Some(series) => series.read_changes(&mut self.view_buffer),
            None => self.view_buffer.clear(),
        }
        &mut self.view_buffer
    }

    /// The clock of items without a time of their own.
    pub fn set_now(&mut self, now_ms: f64) {
        for aggregator in [&mut self.by_key, &mut self.fleet].into_iter().flatten() {
            aggregator.set_now(now_ms);
        }
    }

    /// `key`'s values of an aggregated field, oldest first, when its items are timed (sorted sets, streams).
    pub fn cached_series(&self, key: &[u8], path: &str) -> Option<Vec<f64>> {
        self.series.as_ref()?.series(key, path)
    }

    /// `key`'s item times, oldest first, when its items are timed and aggregation is on.
    pub fn cached_times(&self, key: &[u8]) -> Option<Vec<f64>> {
        self.series.as_ref()?.times(key)
    }

    /// The aggregated fields a row of `newestOf` holds after the key's item count and newest time.
    pub fn newest_fields(&self) -> usize {
        self.series.as_ref().map_or(0, SeriesCache::fields)
    }

    /// Appends `key`'s newest time and its aggregated fields' newest values, when its items are timed and
    /// aggregation is on; returns whether it did.
    pub fn push_newest(&self, key: &[u8], row: &mut Vec<f64>) -> bool {
        let Some((time, values)) = self.series.as_ref().and_then(|s| s.newest(key)) else {
            return false;
        };
        row.push(time);
        row.extend(values);
        true
    }

    /// `key`'s statistics of `path` over its window and the rolling buckets.
    pub fn stats(&mut self, key: &str, path: &str) -> Result<JsValue, JsError> {
        let aggregator = self.by_key.as_mut().ok_or_else(no_aggregation)?;
        let field = field_index(aggregator, path)?;
        let summary = aggregator.field_summary(key.as_bytes(), field);
        Ok(summary.map_or(JsValue::NULL, |s| stats_object(&s, aggregator.spec())))
    }

    /// Across keys, each key's newest item: the statistics of `path`.
    pub fn fleet(&mut self, path: &str) -> Result<JsValue, JsError> {
        let aggregator = self.fleet.as_mut().ok_or_else(no_aggregation)?;
        let field = field_index(aggregator, path)?;
        let summary = aggregator.field_summary(b"", field);
        Ok(summary.map_or(JsValue::NULL, |s| stats_object(&s, aggregator.spec())))
    }

    /// Across keys, how many keys' newest `path` is above `threshold`.
    pub fn fleet_above(&mut self, path: &str, threshold: f64) -> Result<usize, JsError> {
        let aggregator = self.fleet.as_mut().ok_or_else(no_aggregation)?;
        let field = field_index(aggregator, path)?;
        Ok(aggregator
            .count_above(b"", field, Scope::Window, threshold)
            .unwrap_or(0))
    }

    /// The assembler's counters of bad input, with the aggregation's: a `ReplicastDiagnostics` (types.d.ts).
    pub fn diagnostics(&self, assembler: &Diagnostics, notices: u64) -> JsValue {
        let counters = self.by_key.as_ref().map(|a| a.counters());
        let count = |n: u64| JsValue::from_f64(n as f64);
        object(&[
            ("badMessages", count(assembler.bad_messages)),
            ("badSegments", count(assembler.bad_segments)),
            ("overlaps", count(assembler.overlaps)),
            ("badSnapshots", count(assembler.bad_snapshots)),
            ("unknownCommands", count(assembler.unknown_commands)),
            ("badArguments", count(assembler.bad_arguments)),
            ("wrongType", count(assembler.wrong_type)),
            ("longTransactions", count(assembler.long_transactions)),
            ("topupsRequested", count(assembler.topups_requested)),
            ("notices", count(notices)),
            ("notJson", count(counters.map_or(0, |c| c.not_json))),
            ("notNumeric", count(counters.map_or(0, |c| c.not_numeric))),
            ("missingFields", count(counters.map_or(0, |c| c.missing))),
            (
                "lastError",
                assembler.last_error.as_ref().map_or(JsValue::NULL, |e| {
                    words(&format!("at offset {}: {}", e.offset, e.message))
                }),
            ),
        ])
    }
}

impl WindowObserver for Follow {
    fn added(&mut self, key: &[u8], item: Item<'_>) {
        if !self.changed.contains(key) {
            self.changed.insert(key.to_vec());
        }
        let Some(reader) = &mut self.reader else {
            return;
        };
        // The series' paths are the aggregators' first ones (the fields; then the time field, if any).
        let mut reads = [Read::Missing; MAX_PATHS];
        let paths = reader.len();
        let read = reader.read_into(item.payload, &mut reads);
        let read = read.map(|()| &reads[..paths]).map_err(|_| ());
        for aggregator in [&mut self.by_key, &mut self.fleet].into_iter().flatten() {
            aggregator.added_reads(key, item, read);
        }
        if let Some(series) = &mut self.series {
            // The series' paths in their order: the time field, when there is one, sits before `aggregate.series`.
            let mut picked = [Read::Missing; MAX_PATHS];
            for (to, &from) in picked.iter_mut().zip(&self.series_reads) {
                *to = reads[from];
            }
            let read = read.map(|_| &picked[..self.series_reads.len()]);
            series.added_reads(key, item, read);
        }
    }

    fn removed(&mut self, key: &[u8], id: ItemId) {
        if !self.changed.contains(key) {
            self.changed.insert(key.to_vec());
        }
        for aggregator in [&mut self.by_key, &mut self.fleet].into_iter().flatten() {
            aggregator.removed(key, id);
        }
        if let Some(series) = &mut self.series {
            series.removed(key, id);
        }
    }

    fn key_cleared(&mut self, key: &[u8]) {
        if !self.changed.contains(key) {
            self.changed.insert(key.to_vec());
        }
        for aggregator in [&mut self.by_key, &mut self.fleet].into_iter().flatten() {
            aggregator.key_cleared(key);
        }
        if let Some(series) = &mut self.series {
            series.key_cleared(key);
        }
    }
}

fn no_aggregation() -> JsError {
    JsError::new(text!(
        "no aggregation was asked for: give the `aggregate` option"
    ))
}

fn field_index(aggregator: &Aggregator, path: &str) -> Result<usize, JsError> {
    aggregator
        .field_index(path)
        .ok_or_else(|| JsError::new(&format!("{} is not an aggregated field", quoted(path))))
}

/// A field's statistics as a JS object. Written as JSON and parsed once: a dozen numbers and three nested
/// objects cost one boundary crossing this way, where building them property by property costs dozens.
fn stats_object(summary: &FieldSummary, spec: &AggregateSpec) -> JsValue {
    use std::fmt::Write;
    fn number(out: &mut String, value: Option<f64>) {
        match value {
            Some(v) if v.is_finite() => out.push_str(ryu::Buffer::new().format_finite(v)),
            _ => out.push_str("null"),
        }
    }
    fn stats(out: &mut String, s: &Stats) {
        let _ = write!(out, "\"count\":{}", s.count);
        for (name, value) in [
            ("min", s.min),
            ("max", s.max),
            ("mean", s.mean),
            ("p50", s.p50),
            ("p95", s.p95),
            ("p99", s.p99),
            ("rate", s.rate),
        ] {
            let _ = write!(out, ",\"{name}\":");
            number(out, value);
        }
    }
    let mut out = String::with_capacity(512);
    out.push('{');
    stats(&mut out, &summary.window);
    out.push_str(",\"last\":");
    match &summary.latest {
        Some(last) => {
            out.push_str("{\"value\":");
            number(&mut out, Some(last.value));
            out.push_str(",\"t\":");
            number(&mut out, Some(last.time_ms));
            out.push('}');
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"buckets\":[");
    for (i, (bucket, ms)) in summary.buckets.iter().zip(&spec.buckets_ms).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"ms\":");
        number(&mut out, Some(*ms));
        out.push(',');
        stats(&mut out, bucket);
        out.push('}');
    }
    out.push_str("]}");
    js_sys::JSON::parse(&out).unwrap_or(JsValue::NULL)
}
