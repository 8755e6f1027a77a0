//! What an [`Aggregator`](super::Aggregator) computes: which fields, how items are grouped, which rolling
//! buckets, and where an item's time comes from.

use thiserror::Error;

use super::json::{PathError, MAX_DEPTH};

/// At most this many fields per spec.
pub const MAX_FIELDS: usize = 32;
/// At most this many rolling buckets per spec.
pub const MAX_BUCKETS: usize = 8;
/// The rolling buckets of [`AggregateSpec::new`]: the last 1 s, 10 s and 1 min.
pub const DEFAULT_BUCKETS_MS: [f64; 3] = [1_000.0, 10_000.0, 60_000.0];

/// One numeric field to aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSpec {
    /// Where the number is: `cpu.total`, `net.eth0.rx`, `load.0` (see [`json`](super::json) for the syntax; for
    /// stream entries and hashes, see [`Aggregator`](super::Aggregator)).
    pub path: String,
    /// A monotonically increasing counter (bytes sent): also report its [rate](super::rate) per second.
    pub counter: bool,
}

impl FieldSpec {
    /// A gauge: count, min, max, mean and quantiles.
    pub fn gauge(path: impl Into<String>) -> Self {
        FieldSpec {
            path: path.into(),
            counter: false,
        }
    }

    /// A counter: the gauge statistics of its raw values, and its rate.
    pub fn counter(path: impl Into<String>) -> Self {
        FieldSpec {
            path: path.into(),
            counter: true,
        }
    }
}

/// Which items are aggregated together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    /// One group per Redis key (per host, for `perf:<host>` keys); the group is named by the key.
    ByKey,
    /// One group per value of the field at this path (`"host"`): a string's raw bytes or a number's text. Items
    /// without it are counted in [`Counters::no_group`](super::Counters::no_group) and left out.
    ByField(String),
    /// One group of every watched key, named `""`.
    AcrossKeys(Across),
}

/// Which items of each key an [`Grouping::AcrossKeys`] group holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Across {
    /// Every item of every key.
    AllItems,
    /// Each key's newest item by time (ties: the last added): the fleet's current state, e.g. the p95 of the
    /// hosts' current CPU, or how many hosts are above a threshold. Counter rates are not computed (one sample
    /// per key has no rate); use `ByKey` for those.
    LatestPerKey,
}

/// The configuration of an [`Aggregator`](super::Aggregator).
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateSpec {
    /// The fields, in the order queries report them.
    pub fields: Vec<FieldSpec>,
    pub grouping: Grouping,
    /// The rolling buckets' lengths in milliseconds: bucket `T` holds the items whose time is in
    /// `(clock − T, clock]`.
    pub buckets_ms: Vec<f64>,
    /// A numeric field holding the item's time in Unix ms (`"t"`), used when the window gives the item no time
    /// (lists, hashes, strings).
    pub time_field: Option<String>,
}

impl AggregateSpec {
    /// `fields` grouped by `grouping`, with the default 1 s / 10 s / 1 min buckets and no time field.
    pub fn new(fields: Vec<FieldSpec>, grouping: Grouping) -> Self {
        AggregateSpec {
            fields,
            grouping,
            buckets_ms: DEFAULT_BUCKETS_MS.to_vec(),
            time_field: None,
        }
    }

    /// Replaces the rolling buckets.
    pub fn with_buckets_ms(mut self, buckets_ms: Vec<f64>) -> Self {
        self.buckets_ms = buckets_ms;
        self
    }

    /// Sets the time field.
    pub fn with_time_field(mut self, path: impl Into<String>) -> Self {
        self.time_field = Some(path.into());
        self
    }

    pub(super) fn check(&self) -> Result<(), SpecError> {
        if self.fields.len() > MAX_FIELDS {
            return Err(SpecError::TooManyFields(self.fields.len()));
        }
        if self.buckets_ms.len() > MAX_BUCKETS {
            return Err(SpecError::TooManyBuckets(self.buckets_ms.len()));
        }
        if let Some(&bad) = self
            .buckets_ms
            .iter()
            .find(|t| !(t.is_finite() && **t > 0.0))
        {
            return Err(SpecError::BadBucket(bad));
        }
        Ok(())
    }
}

/// Why a spec cannot be used.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SpecError {
    #[error("{0} fields, at most {MAX_FIELDS}")]
    TooManyFields(usize),
    #[error("{0} rolling buckets, at most {MAX_BUCKETS}")]
    TooManyBuckets(usize),
    // The length written by `ryu`: core's `{}` of a double would bring its float formatting into the browser's
    // `.wasm` for this one message.
    #[error("a rolling bucket of {} ms: expected a finite length > 0", ryu::Buffer::new().format(*.0))]
    BadBucket(f64),
    #[error("a path deeper than {MAX_DEPTH} levels: {0}")]
    Path(#[from] PathError),
}
