//! What the browser API follows of the windows: which keys changed since the page last looked, and the
//! aggregates it asked for, all fed by the assembler's [`WindowObserver`] calls as commands are applied.
//!
//! Two aggregators at most: one per key (`stats(key, path)`: a host's own CPU over its window and the last
//! 1 s / 10 s / 1 min), and one across keys over each key's newest item (`fleet(path)`: the mean and p95 CPU of
//! the hosts' current samples, and how many are above a threshold).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use replicast_assembler::aggregate::{
    Across, AggregateSpec, Aggregator, FieldSpec, FieldSummary, Grouping, Scope, Stats,
};
use replicast_assembler::diagnostics::Diagnostics;
use replicast_assembler::observe::{Item, ItemId, WindowObserver};
use replicast_assembler::series::SeriesCache;

/// The page's aggregation options.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AggregateOptions {
    /// Numeric JSON fields (dotted paths) aggregated as gauges.
    #[serde(default)]
    fields: Vec<String>,
    /// Fields that are counters (bytes sent so far): aggregated with a rate per second.
    #[serde(default)]
    counters: Vec<String>,
    /// A JSON field holding each item's time in Unix ms, for items without one of their own.
    #[serde(default)]
    time: Option<String>,
    /// Rolling buckets in milliseconds (default 1 s, 10 s, 1 min).
    #[serde(default)]
    buckets_ms: Option<Vec<f64>>,
}

/// Follows the windows for the browser API.
#[derive(Debug, Default)]
pub struct Follow {
    pub changed: BTreeSet<Vec<u8>>,
    by_key: Option<Aggregator>,
    fleet: Option<Aggregator>,
    series: Option<SeriesCache>,
    /// The numbers behind the last `seriesView`, which aliases them.
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
        let paths = options
            .fields
            .iter()
            .chain(&options.counters)
            .cloned()
            .collect();
        Ok(Follow {
            changed: BTreeSet::new(),
            by_key: Some(spec(Grouping::ByKey)?),
            fleet: Some(spec(Grouping::AcrossKeys(Across::LatestPerKey))?),
            series: Some(SeriesCache::new(paths).map_err(|e| JsError::new(&e.to_string()))?),
            view_buffer: Vec::new(),
        })
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

    /// The assembler's counters of bad input, with the aggregation's.
    pub fn diagnostics(&self, assembler: &Diagnostics, notices: u64) -> Result<JsValue, JsError> {
        let counters = self.by_key.as_ref().map(|a| a.counters());
        let object = DiagnosticsObject {
            bad_messages: assembler.bad_messages,
            bad_segments: assembler.bad_segments,
            overlaps: assembler.overlaps,
            bad_snapshots: assembler.bad_snapshots,
            unknown_commands: assembler.unknown_commands,
            bad_arguments: assembler.bad_arguments,
            wrong_type: assembler.wrong_type,
            long_transactions: assembler.long_transactions,
            topups_requested: assembler.topups_requested,
            notices,
            not_json: counters.map_or(0, |c| c.not_json),
            not_numeric: counters.map_or(0, |c| c.not_numeric),
            missing_fields: counters.map_or(0, |c| c.missing),
            last_error: assembler
                .last_error
                .as_ref()
                .map(|e| format!("at offset {}: {}", e.offset, e.message)),
        };
        to_js(&object)
    }
}

impl WindowObserver for Follow {
    fn added(&mut self, key: &[u8], item: Item<'_>) {
        if !self.changed.contains(key) {
            self.changed.insert(key.to_vec());
        }
        for aggregator in [&mut self.by_key, &mut self.fleet].into_iter().flatten() {
            aggregator.added(key, item);
        }
        if let Some(series) = &mut self.series {
            series.added(key, item);
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
    JsError::new("no aggregation was asked for: give the `aggregate` option")
}

fn field_index(aggregator: &Aggregator, path: &str) -> Result<usize, JsError> {
    aggregator
        .field_index(path)
        .ok_or_else(|| JsError::new(&format!("{path:?} is not an aggregated field")))
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsError::new(&e.to_string()))
}

/// A field's statistics as a JS object. Written as JSON and parsed once: a dozen numbers and three nested
/// objects cost one boundary crossing this way, where building them property by property costs dozens.
fn stats_object(summary: &FieldSummary, spec: &AggregateSpec) -> JsValue {
    use std::fmt::Write;
    fn number(out: &mut String, value: Option<f64>) {
        match value {
            Some(v) if v.is_finite() => {
                let _ = write!(out, "{v}");
            }
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DiagnosticsObject {
    bad_messages: u64,
    bad_segments: u64,
    overlaps: u64,
    bad_snapshots: u64,
    unknown_commands: u64,
    bad_arguments: u64,
    wrong_type: u64,
    long_transactions: u64,
    topups_requested: u64,
    notices: u64,
    not_json: u64,
    not_numeric: u64,
    missing_fields: u64,
    last_error: Option<String>,
}
