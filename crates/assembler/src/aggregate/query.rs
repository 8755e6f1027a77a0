//! What an [`Aggregator`] answers: plain structs of statistics per group and field, and its counters.

use super::group::{Group, Scope};
use super::order_stats::OrderStats;
use super::Aggregator;

/// Statistics of one field over one set of items. Quantiles are nearest-rank (see
/// [`order_stats`](super::order_stats)); `None` where the set has no value.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    /// Values in the set.
    pub count: usize,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    /// For counters: the increase per second (see [`rate`](super::rate)); `None` without two samples of one key
    /// at different times.
    pub rate: Option<f64>,
}

/// A field's newest value in a group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latest {
    pub value: f64,
    pub time_ms: f64,
}

/// One field's statistics in one group.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSummary {
    /// Over the window (every item of the group).
    pub window: Stats,
    /// Per rolling bucket, in the order of [`AggregateSpec::buckets_ms`](super::AggregateSpec).
    pub buckets: Vec<Stats>,
    /// The value of the group's newest item that has this field.
    pub latest: Option<Latest>,
}

/// One group's statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSummary {
    /// The key, the field value, or `""` across keys.
    pub group: Vec<u8>,
    /// Items in the group.
    pub items: usize,
    /// Per field, in the spec's order.
    pub fields: Vec<FieldSummary>,
}

/// Which of a group's values a query reads, to be filled first.
#[derive(Debug, Clone, Copy)]
enum Filled {
    All,
    /// One field, over the window and every bucket.
    Field(usize),
    Series(usize, Scope),
}

/// What could not be aggregated, and how much was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Items aggregated.
    pub added: u64,
    /// Aggregated items that left.
    pub removed: u64,
    /// Items left out because their value was not valid JSON (or not UTF-8, or nested too deeply).
    pub not_json: u64,
    /// Items left out under `ByField` because they had no group field (or not a string or number there).
    pub no_group: u64,
    /// Fields absent from aggregated items (one per item and field).
    pub missing: u64,
    /// Fields present but not a finite number (a string, `true`, an object, `1e999`).
    pub not_numeric: u64,
    /// Removals of items the aggregator does not know (left out when added).
    pub unknown_removals: u64,
}

impl Aggregator {
    /// The groups' names, in no particular order.
    pub fn groups(&self) -> impl Iterator<Item = &[u8]> {
        self.groups.iter().map(|(_, name, _)| name)
    }

    /// Every group's statistics, sorted by group name.
    pub fn summaries(&mut self) -> Vec<GroupSummary> {
        let mut names: Vec<Vec<u8>> = self.groups().map(<[u8]>::to_vec).collect();
        crate::sort::sort(&mut names);
        names.iter().filter_map(|name| self.summary(name)).collect()
    }

    /// One group's statistics (for `AcrossKeys`, the group is `b""`).
    pub fn summary(&mut self, group: &[u8]) -> Option<GroupSummary> {
        self.current(group, Filled::All)?;
        let g = self.groups.get(self.groups.id(group)?);
        let fields = (0..self.spec.fields.len())
            .map(|f| FieldSummary {
                window: self.stats_of(g, f, Scope::Window),
                buckets: (0..self.spec.buckets_ms.len())
                    .map(|b| self.stats_of(g, f, Scope::Bucket(b)))
                    .collect(),
                latest: g
                    .latest(f, &self.records)
                    .map(|(value, time_ms)| Latest { value, time_ms }),
            })
            .collect();
        Some(GroupSummary {
            group: group.to_vec(),
            items: g.len(),
            fields,
        })
    }

    /// One field's statistics in one group: over the window, each bucket, and its newest value.
    pub fn field_summary(&mut self, group: &[u8], field: usize) -> Option<FieldSummary> {
        if field >= self.spec.fields.len() {
            return None;
        }
        self.current(group, Filled::Field(field))?;
        let g = self.groups.get(self.groups.id(group)?);
        Some(FieldSummary {
            window: self.stats_of(g, field, Scope::Window),
            buckets: (0..self.spec.buckets_ms.len())
                .map(|b| self.stats_of(g, field, Scope::Bucket(b)))
                .collect(),
            latest: g
                .latest(field, &self.records)
                .map(|(value, time_ms)| Latest { value, time_ms }),
        })
    }

    /// The statistics of field `field` in `group` over `scope`.
    pub fn stats(&mut self, group: &[u8], field: usize, scope: Scope) -> Option<Stats> {
        self.current(group, Filled::Series(field, scope))?
            .series(field, scope)?;
        let g = self.groups.get(self.groups.id(group)?);
        Some(self.stats_of(g, field, scope))
    }

    /// The nearest-rank quantile at `per_mille` thousandths of `field` in `group` over `scope`, O(log n).
    pub fn quantile(
        &mut self,
        group: &[u8],
        field: usize,
        scope: Scope,
        per_mille: u32,
    ) -> Option<f64> {
        self.values(group, field, scope)?.quantile(per_mille)
    }

    /// How many values of `field` in `group` over `scope` are above `threshold`, O(log n). Across keys with
    /// `LatestPerKey`: how many keys (hosts) are above it now.
    pub fn count_above(
        &mut self,
        group: &[u8],
        field: usize,
        scope: Scope,
        threshold: f64,
    ) -> Option<usize> {
        Some(self.values(group, field, scope)?.count_above(threshold))
    }

    /// The group, its buckets brought up to the clock and the values a query reads filled.
    fn current(&mut self, group: &[u8], filled: Filled) -> Option<&Group> {
        let id = self.groups.id(group)?;
        let g = self.groups.get_mut(id);
        g.advance(self.clock, &self.spec.buckets_ms, &self.records);
        match filled {
            Filled::All => g.refresh_all(&self.records),
            Filled::Field(field) => {
                g.refresh(field, Scope::Window, &self.records);
                for b in 0..self.spec.buckets_ms.len() {
                    g.refresh(field, Scope::Bucket(b), &self.records);
                }
            }
            Filled::Series(field, scope) => g.refresh(field, scope, &self.records),
        }
        Some(self.groups.get(id))
    }

    fn values(&mut self, group: &[u8], field: usize, scope: Scope) -> Option<&OrderStats> {
        Some(
            &self
                .current(group, Filled::Series(field, scope))?
                .series(field, scope)?
                .values,
        )
    }

    fn stats_of(&self, g: &Group, field: usize, scope: Scope) -> Stats {
        let Some(series) = g.series(field, scope) else {
            return Stats::default();
        };
        let v = &series.values;
        let rate = if self.counters_of_fields[field] {
            g.time_span(scope, &self.records)
                .and_then(|(first, last)| series.increase.per_second(last - first))
        } else {
            None
        };
        Stats {
            count: v.len(),
            min: v.min(),
            max: v.max(),
            mean: v.mean(),
            p50: v.quantile(500),
            p95: v.quantile(950),
            p99: v.quantile(990),
            rate,
        }
    }
}
