//! The sink's counters, served as Prometheus text at `/metrics` on `--listen`: rows written, batches, refusals,
//! and the lag — how far what is committed trails what the relay sent, in stream bytes, and how old the newest
//! history row committed is.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::rows::{Batch, Refusal};

#[derive(Debug, Default)]
pub struct SinkMetrics {
    pub zset_rows: AtomicU64,
    pub stream_rows: AtomicU64,
    pub mirror_keys: AtomicU64,
    pub set_ops: AtomicU64,
    pub batches: AtomicU64,
    /// Batches holding rows already stored (re-snapshots, a batch retried after a lost commit answer).
    pub deduplicated_batches: AtomicU64,
    pub write_failures: AtomicU64,
    pub sessions: AtomicU64,
    pub snapshots: AtomicU64,
    pub topups: AtomicU64,
    /// Spans of a history key whose rows may miss a score, committed (`replicast.inexact_span`).
    pub inexact_spans: AtomicU64,
    /// Stream bytes received from the relay and committed, summed over the streams (shards) followed.
    pub received_offset: AtomicU64,
    pub committed_offset: AtomicU64,
    /// The newest history row committed, Unix ms (0: none yet).
    pub newest_row_ms: AtomicU64,
    /// Microseconds the writer waited for a batch, and the relay session for the writer to take one: which of
    /// the two sides of the pipeline held the other up.
    pub writer_idle_us: AtomicU64,
    pub session_blocked_us: AtomicU64,
    pub refused: Mutex<BTreeMap<Refusal, u64>>,
}

fn offsets(positions: &[(String, u64)]) -> u64 {
    positions.iter().map(|(_, o)| *o).sum()
}

impl SinkMetrics {
    /// A batch was committed; `deduplicated`: rows already stored were skipped.
    pub fn committed(&self, batch: &Batch, deduplicated: bool) {
        let add = |c: &AtomicU64, n: usize| c.fetch_add(n as u64, Ordering::Relaxed);
        add(&self.zset_rows, batch.zsets.len());
        add(&self.stream_rows, batch.streams.len());
        add(&self.mirror_keys, batch.mirror.len());
        add(&self.set_ops, batch.sets.len());
        add(&self.inexact_spans, batch.inexact_spans.len());
        add(&self.batches, 1);
        add(&self.deduplicated_batches, usize::from(deduplicated));
        self.committed_offset
            .store(offsets(&batch.positions), Ordering::Relaxed);
        if let Some(newest) = batch.newest_ms {
            self.newest_row_ms
                .fetch_max(newest as u64, Ordering::Relaxed);
        }
    }

    /// Where the stream stands as received.
    pub fn received(&self, positions: &[(String, u64)]) {
        self.received_offset
            .store(offsets(positions), Ordering::Relaxed);
    }

    /// Adds a wait to `counter` (one of the `…_us` ones).
    pub fn waited(counter: &AtomicU64, wait: Duration) {
        counter.fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn refuse(&self, why: Refusal) {
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        *refused.entry(why).or_default() += 1;
    }

    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            out.push_str(&format!(
                "# HELP replicast_sink_{name} {help}\n# TYPE replicast_sink_{name} {kind}\nreplicast_sink_{name} {value}\n"
            ));
        };
        metric("rows_total", "counter", "History rows written (sorted-set members and stream entries; rows already stored are skipped by PostgreSQL).", (get(&self.zset_rows) + get(&self.stream_rows)).to_string());
        metric(
            "mirror_keys_written_total",
            "counter",
            "Mirrored keys whose rows were written again.",
            get(&self.mirror_keys).to_string(),
        );
        metric(
            "set_operations_total",
            "counter",
            "Set operations applied to the set mirror.",
            get(&self.set_ops).to_string(),
        );
        metric(
            "batches_total",
            "counter",
            "Transactions committed.",
            get(&self.batches).to_string(),
        );
        metric(
            "deduplicated_batches_total",
            "counter",
            "Transactions that held rows already stored (re-snapshots, retries), written through ON CONFLICT DO NOTHING.",
            get(&self.deduplicated_batches).to_string(),
        );
        metric(
            "write_failures_total",
            "counter",
            "Attempts to write a batch that failed (each batch is retried until written).",
            get(&self.write_failures).to_string(),
        );
        metric(
            "sessions_total",
            "counter",
            "Sessions opened with the relay.",
            get(&self.sessions).to_string(),
        );
        metric(
            "topups_total",
            "counter",
            "Keys the sink asked the relay to read again.",
            get(&self.topups).to_string(),
        );
        metric(
            "inexact_spans_total",
            "counter",
            "Spans of a history key whose rows may miss a score: a command whose rows a top-up reads, the key written again before its answer (replicast.inexact_span).",
            get(&self.inexact_spans).to_string(),
        );
        let seconds = |c: &AtomicU64| format!("{:.3}", get(c) as f64 / 1e6);
        metric(
            "writer_idle_seconds_total",
            "counter",
            "Time the writer waited for a batch: PostgreSQL had nothing of the sink's to write.",
            seconds(&self.writer_idle_us),
        );
        metric(
            "session_blocked_seconds_total",
            "counter",
            "Time the relay session waited for the writer to take a batch: reading stopped while PostgreSQL wrote the ones before.",
            seconds(&self.session_blocked_us),
        );
        let received = get(&self.received_offset);
        let committed = get(&self.committed_offset);
        metric(
            "received_offset",
            "gauge",
            "Replication offset received from the relay (summed over shards).",
            received.to_string(),
        );
        metric(
            "committed_offset",
            "gauge",
            "Replication offset committed to PostgreSQL (summed over shards).",
            committed.to_string(),
        );
        metric(
            "lag_bytes",
            "gauge",
            "Stream bytes received and not committed yet.",
            received.saturating_sub(committed).to_string(),
        );
        let newest = get(&self.newest_row_ms);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let lag = if newest == 0 {
            "NaN".to_string()
        } else {
            format!("{:.3}", now_ms.saturating_sub(newest) as f64 / 1000.0)
        };
        metric(
            "lag_seconds",
            "gauge",
            "Age of the newest history row committed (its time, a sample's, against this clock).",
            lag,
        );
        out.push_str("# HELP replicast_sink_refused_total Rows that could not be stored, by reason.\n# TYPE replicast_sink_refused_total counter\n");
        let refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        for (why, n) in refused.iter() {
            out.push_str(&format!(
                "replicast_sink_refused_total{{reason=\"{}\"}} {n}\n",
                why.label()
            ));
        }
        out
    }
}
