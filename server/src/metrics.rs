//! Counters the relay exposes at `/metrics`, in Prometheus's text format: the relay's own ([`Metrics`]: sessions,
//! snapshots, events, refusals by reason) and each replica link's ([`LinkMetrics`]), with the backlog it fills;
//! then, from the `prometheus` crate, the build's version, the process's (open file descriptors, resident memory,
//! CPU) and the histograms of `timings`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::backlog::Backlog;
use crate::upstream::Upstream;

/// The relay's counters: sessions, what they were sent, and what browsers asked of it.
#[derive(Default)]
pub struct Metrics {
    pub sessions: AtomicU64,
    pub sessions_total: AtomicU64,
    pub messages_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub resyncs: AtomicU64,
    pub resumes: AtomicU64,
    /// Snapshots and top-ups read from Redis.
    pub snapshots: AtomicU64,
    /// Snapshots and top-ups the relay's state answered, with no Redis command.
    pub state_snapshots: AtomicU64,
    /// Sessions closed for what they sent (a protocol error, a bad subscription, a message too large):
    /// `reason="message"`. The refusals before a session starts are counted by [`Metrics::refuse`].
    pub refusals: AtomicU64,
    refused: [AtomicU64; Refusal::ALL.len()],
    pub events_appended: AtomicU64,
    pub events_refused: AtomicU64,
    /// Keys top-ups asked for past what a session holds waiting (`MAX_SNAPSHOT_KEYS`), told to it in a notice.
    pub topup_keys_refused: AtomicU64,
}

/// Why the relay turned a client away before a session started: the `reason` label of `replicast_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A `Host` the relay does not answer to (DNS rebinding).
    Host,
    /// A missing or wrong `--token`, or no signed token where the relay verifies them.
    Token,
    /// A signed token (`--jwt-secret`, `--jwt-keys`) too long or not a JWT.
    TokenMalformed,
    /// A token with `alg: none`, or an `alg` its key does not verify.
    TokenAlgorithm,
    /// A token whose `kid` names no key the relay holds (or names none among several).
    TokenKid,
    /// A token whose signature does not verify.
    TokenSignature,
    /// A token past its `exp`.
    TokenExpired,
    /// A token before its `nbf`.
    TokenNotYetValid,
    /// A token for another audience (`--jwt-audience`).
    TokenAudience,
    /// A token whose claims are missing, malformed or past a limit.
    TokenClaims,
    /// `--max-sessions-per-subject` held by the token's subject.
    SessionsPerSubject,
    /// A page's `Origin` that is not the relay's own nor listed with `--origin`.
    Origin,
    /// `--max-sessions` open already.
    MaxSessions,
    /// `--max-sessions-per-address` held by the client's address.
    SessionsPerAddress,
    /// `--max-connections-per-address` held by the peer's address.
    ConnectionsPerAddress,
}

impl Refusal {
    const ALL: [Refusal; 15] = [
        Refusal::Host,
        Refusal::Token,
        Refusal::TokenMalformed,
        Refusal::TokenAlgorithm,
        Refusal::TokenKid,
        Refusal::TokenSignature,
        Refusal::TokenExpired,
        Refusal::TokenNotYetValid,
        Refusal::TokenAudience,
        Refusal::TokenClaims,
        Refusal::SessionsPerSubject,
        Refusal::Origin,
        Refusal::MaxSessions,
        Refusal::SessionsPerAddress,
        Refusal::ConnectionsPerAddress,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Refusal::Host => "host",
            Refusal::Token => "token",
            Refusal::TokenMalformed => "token_malformed",
            Refusal::TokenAlgorithm => "token_algorithm",
            Refusal::TokenKid => "token_kid",
            Refusal::TokenSignature => "token_signature",
            Refusal::TokenExpired => "token_expired",
            Refusal::TokenNotYetValid => "token_not_yet_valid",
            Refusal::TokenAudience => "token_audience",
            Refusal::TokenClaims => "token_claims",
            Refusal::SessionsPerSubject => "sessions_per_subject",
            Refusal::Origin => "origin",
            Refusal::MaxSessions => "max_sessions",
            Refusal::SessionsPerAddress => "sessions_per_address",
            Refusal::ConnectionsPerAddress => "connections_per_address",
        }
    }
}

/// One replica link's counters, and the offset of the node it follows.
#[derive(Default)]
pub struct LinkMetrics {
    pub link_full_syncs: AtomicU64,
    pub link_partial_syncs: AtomicU64,
    pub link_errors: AtomicU64,
    /// Failures to frame the stream (corrupt, or past what Redis accepts), each followed by one full resync.
    pub link_stream_errors: AtomicU64,
    /// Failures since the link last streamed for `replica_link::HEALTHY_AFTER`.
    pub link_failures_in_a_row: AtomicU64,
    /// The delay before the last reconnection attempt.
    pub link_retry_delay_ms: AtomicU64,
    /// Commands too large to hold, passed through and withheld.
    pub link_withheld_commands: AtomicU64,
    /// Bytes of the last full sync's RDB payload.
    pub link_rdb_bytes: AtomicU64,
    /// `master_repl_offset` of the node the link follows, polled each second.
    pub upstream_offset: AtomicU64,
    /// Joins' snapshots and top-ups of this stream answered by its state, and read from Redis (a cluster's
    /// `/metrics` rows per shard; one Redis's are the relay-wide `snapshots_total` and `state_snapshots_total`).
    pub state_snapshots: AtomicU64,
    pub snapshots: AtomicU64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Ordering::Relaxed);
    }

    /// Counts a client turned away before its session started.
    pub fn refuse(&self, why: Refusal) {
        // `ALL` lists the reasons in declaration order: a reason's discriminant is its place.
        Metrics::add(&self.refused[why as usize], 1);
    }

    /// The Prometheus text of the relay's own rows.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        render_rows([
            (
                "sessions",
                "gauge",
                "Open browser sessions.",
                get(&self.sessions),
            ),
            (
                "sessions_total",
                "counter",
                "Browser sessions opened.",
                get(&self.sessions_total),
            ),
            (
                "session_resumes_total",
                "counter",
                "Sessions that resumed inside the backlog.",
                get(&self.resumes),
            ),
            (
                "session_resyncs_total",
                "counter",
                "Sessions told to resync after falling behind.",
                get(&self.resyncs),
            ),
            (
                "snapshots_total",
                "counter",
                "Snapshots and top-ups read from Redis (MULTI, the reads, INFO replication).",
                get(&self.snapshots),
            ),
            (
                "state_snapshots_total",
                "counter",
                "Snapshots and top-ups the relay's state answered, with no Redis command.",
                get(&self.state_snapshots),
            ),
            (
                "topup_keys_refused_total",
                "counter",
                "Keys top-ups asked for past the 10,000 a session holds waiting: not read; the session is told in a notice.",
                get(&self.topup_keys_refused),
            ),
            (
                "events_appended_total",
                "counter",
                "Browser events appended to Redis.",
                get(&self.events_appended),
            ),
            (
                "events_refused_total",
                "counter",
                "Browser events refused (limits, keys not writable, Redis errors).",
                get(&self.events_refused),
            ),
            (
                "messages_sent_total",
                "counter",
                "Relay messages sent to browsers.",
                get(&self.messages_sent),
            ),
            (
                "bytes_sent_total",
                "counter",
                "Bytes of relay messages sent to browsers.",
                get(&self.bytes_sent),
            ),
        ]) + &self.render_refusals()
            + &render_registry()
    }

    fn render_refusals(&self) -> String {
        let mut out = String::from(
            "# HELP replicast_refusals_total Clients turned away, by reason (a limit, an access check, or what a session sent).\n\
             # TYPE replicast_refusals_total counter\n",
        );
        for (why, count) in Refusal::ALL.iter().zip(&self.refused) {
            let _ = writeln!(
                out,
                "replicast_refusals_total{{reason=\"{}\"}} {}",
                why.label(),
                count.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "replicast_refusals_total{{reason=\"message\"}} {}",
            self.refusals.load(Ordering::Relaxed)
        );
        out
    }
}

/// The rows the `prometheus` crate keeps: build info, the process's, and the histograms of `timings`.
static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let registry = Registry::new();
    let build = IntGaugeVec::new(
        Opts::new(
            "replicast_build_info",
            "The relay's version, as a label; the value is always 1.",
        ),
        &["version"],
    )
    .expect("valid gauge options");
    build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    // Each name is registered once, here: registering cannot fail but on a duplicate, which this list has none of.
    let collectors: [Box<dyn prometheus::core::Collector>; 5] = [
        Box::new(build),
        Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        Box::new(crate::timings::STREAM_DELAY.clone()),
        Box::new(crate::timings::SNAPSHOT_DURATION.clone()),
        Box::new(crate::timings::JOIN_DURATION.clone()),
    ];
    for collector in collectors {
        let _ = registry.register(collector);
    }
    registry
});

fn render_registry() -> String {
    let mut out = Vec::new();
    if let Err(err) = TextEncoder::new().encode(&REGISTRY.gather(), &mut out) {
        tracing::warn!("cannot render the process metrics: {err}");
    }
    String::from_utf8(out).unwrap_or_default()
}

impl LinkMetrics {
    /// Polls the followed node's `master_repl_offset` every second, for the lag gauge, until the relay stops.
    pub async fn poll_upstream(&self, upstream: Arc<Upstream>) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        let mut switched = upstream.subscribe();
        let mut conn = None;
        loop {
            tick.tick().await;
            if switched.has_changed().unwrap_or(false) {
                // A failover: the offset to compare with is the new primary's.
                switched.borrow_and_update();
                conn = None;
            }
            if conn.is_none() {
                if let Ok(client) = upstream.client() {
                    conn = client.get_multiplexed_async_connection().await.ok();
                }
            }
            let Some(c) = conn.as_mut() else { continue };
            match redis::cmd("INFO")
                .arg("replication")
                .query_async::<String>(c)
                .await
            {
                Ok(info) => {
                    let offset = info
                        .lines()
                        .find_map(|l| l.strip_prefix("master_repl_offset:"))
                        .and_then(|v| v.trim().parse().ok());
                    if let Some(offset) = offset {
                        self.upstream_offset.store(offset, Ordering::Relaxed);
                    }
                }
                Err(_) => conn = None,
            }
        }
    }

    /// The Prometheus text of the link's rows, and its backlog's, for a relay following one Redis.
    pub fn render(&self, backlog: &Backlog) -> String {
        let (start, end, bytes) = backlog.extent();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        render_rows([
            (
                "link_up",
                "gauge",
                "1 while the replica link is streaming.",
                u64::from(backlog.is_live()),
            ),
            (
                "link_offset",
                "gauge",
                "Replication offset the link has received up to.",
                end,
            ),
            (
                "upstream_offset",
                "gauge",
                "master_repl_offset of the followed node (polled each second).",
                get(&self.upstream_offset),
            ),
            (
                "link_lag_bytes",
                "gauge",
                "Bytes the link is behind the followed node, as of the last poll.",
                get(&self.upstream_offset).saturating_sub(end),
            ),
            (
                "link_full_syncs_total",
                "counter",
                "Full resynchronisations of the link.",
                get(&self.link_full_syncs),
            ),
            (
                "link_partial_syncs_total",
                "counter",
                "Partial resynchronisations (+CONTINUE).",
                get(&self.link_partial_syncs),
            ),
            (
                "link_errors_total",
                "counter",
                "Link failures, each followed by a reconnect.",
                get(&self.link_errors),
            ),
            (
                "link_stream_errors_total",
                "counter",
                "Streams the link could not frame (corrupt, or past what Redis accepts); each is skipped by one full resync.",
                get(&self.link_stream_errors),
            ),
            (
                "link_failures_in_a_row",
                "gauge",
                "Link failures since it last streamed for 10 s; the delay between attempts doubles with each.",
                get(&self.link_failures_in_a_row),
            ),
            (
                "link_withheld_commands_total",
                "counter",
                "Commands too large to forward, passed through without being held; the keys they may write made stale.",
                get(&self.link_withheld_commands),
            ),
            (
                "link_rdb_bytes",
                "gauge",
                "Bytes of the last full sync's RDB payload (without keys when the relay keeps no state and Redis honours REPLCONF rdb-filter-only).",
                get(&self.link_rdb_bytes),
            ),
            (
                "backlog_bytes",
                "gauge",
                "Bytes of raw stream held in the backlog.",
                bytes as u64,
            ),
            (
                "backlog_start_offset",
                "gauge",
                "Oldest offset a session can resume from.",
                start,
            ),
        ]) + &format!(
            "# HELP replicast_link_retry_delay_seconds Delay before the link's last reconnection attempt (backoff with jitter).\n\
             # TYPE replicast_link_retry_delay_seconds gauge\n\
             replicast_link_retry_delay_seconds {}\n",
            get(&self.link_retry_delay_ms) as f64 / 1000.0
        )
    }
}

/// `# HELP`, `# TYPE` and the value of each `(name, type, help, value)`.
pub(crate) fn render_rows<const N: usize>(rows: [(&str, &str, &str, u64); N]) -> String {
    let mut out = String::new();
    for (name, kind, help, value) in rows {
        let _ = writeln!(out, "# HELP replicast_{name} {help}");
        let _ = writeln!(out, "# TYPE replicast_{name} {kind}");
        let _ = writeln!(out, "replicast_{name} {value}");
    }
    out
}

/// One shard's link, as `/metrics` labels it.
pub struct ShardLink<'a> {
    /// The relay's number for the shard.
    pub number: u32,
    /// The node its link follows.
    pub node: String,
    pub backlog: &'a Backlog,
    pub metrics: &'a LinkMetrics,
}

/// Per-shard lines of a relay following a cluster: each link's offset, its node's, and the lag between them,
/// labelled with the relay's shard number and the node followed.
pub fn render_shards(shards: &[ShardLink<'_>]) -> String {
    let mut out = String::new();
    let rows: [(&str, &str, &str); 6] = [
        (
            "shard_link_up",
            "gauge",
            "1 while the shard's replica link is streaming.",
        ),
        (
            "shard_link_offset",
            "gauge",
            "Replication offset the shard's link has received up to.",
        ),
        (
            "shard_upstream_offset",
            "gauge",
            "master_repl_offset of the shard's followed node (polled each second).",
        ),
        (
            "shard_link_lag_bytes",
            "gauge",
            "Bytes the shard's link is behind its node, as of the last poll.",
        ),
        (
            "shard_state_snapshots_total",
            "counter",
            "Snapshots and top-ups of the shard the shard's state answered, with no Redis command.",
        ),
        (
            "shard_snapshots_total",
            "counter",
            "Snapshots and top-ups of the shard read from its node.",
        ),
    ];
    for (name, kind, help) in rows {
        let _ = writeln!(out, "# HELP replicast_{name} {help}");
        let _ = writeln!(out, "# TYPE replicast_{name} {kind}");
        for shard in shards {
            let (_, end, _) = shard.backlog.extent();
            let upstream = shard.metrics.upstream_offset.load(Ordering::Relaxed);
            let value = match name {
                "shard_link_up" => u64::from(shard.backlog.is_live()),
                "shard_link_offset" => end,
                "shard_upstream_offset" => upstream,
                "shard_state_snapshots_total" => {
                    shard.metrics.state_snapshots.load(Ordering::Relaxed)
                }
                "shard_snapshots_total" => shard.metrics.snapshots.load(Ordering::Relaxed),
                _ => upstream.saturating_sub(end),
            };
            let _ = writeln!(
                out,
                "replicast_{name}{{shard=\"{}\",node=\"{}\"}} {value}",
                shard.number, shard.node
            );
        }
    }
    out
}

/// Rows of `/metrics` that each shard renders unlabelled (its state's), labelled with the shard and node (a row
/// with labels of its own gets them first) and grouped by name, each name's `HELP` and `TYPE` once.
pub fn label_shard_rows(parts: &[(u32, String, String)]) -> String {
    // Names in the order first seen, each with its HELP/TYPE lines and its rows.
    let mut names: Vec<(String, Vec<&str>, Vec<String>)> = Vec::new();
    for (number, node, text) in parts {
        let labels = format!("shard=\"{number}\",node=\"{node}\"");
        for line in text.lines() {
            let (name, head) = match line.strip_prefix("# ") {
                Some(rest) => (rest.split_whitespace().nth(1).unwrap_or_default(), true),
                None => (line.split(['{', ' ']).next().unwrap_or_default(), false),
            };
            let at = match names.iter().position(|(n, _, _)| n == name) {
                Some(at) => at,
                None => {
                    names.push((name.to_string(), Vec::new(), Vec::new()));
                    names.len() - 1
                }
            };
            let entry = &mut names[at];
            if head {
                if !entry.1.contains(&line) {
                    entry.1.push(line);
                }
            } else if let Some(rest) = line.strip_prefix(name) {
                let row = match rest.strip_prefix('{') {
                    Some(own) => format!("{name}{{{labels},{own}"),
                    None => format!("{name}{{{labels}}}{rest}"),
                };
                entry.2.push(row);
            }
        }
    }
    let mut out = String::new();
    for (_, heads, rows) in names {
        for line in heads.into_iter().map(str::to_string).chain(rows) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_is_counted_under_its_own_reason() {
        let metrics = Metrics::default();
        for (n, why) in Refusal::ALL.into_iter().enumerate() {
            for _ in 0..=n {
                metrics.refuse(why);
            }
        }
        Metrics::add(&metrics.refusals, 9);
        let text = metrics.render_refusals();
        for (n, why) in Refusal::ALL.into_iter().enumerate() {
            let row = format!(
                "replicast_refusals_total{{reason=\"{}\"}} {}\n",
                why.label(),
                n + 1
            );
            assert!(text.contains(&row), "no {row:?} in:\n{text}");
        }
        assert!(text.contains("replicast_refusals_total{reason=\"message\"} 9\n"));
    }

    #[test]
    fn shard_rows_are_labelled_and_grouped_by_name() {
        let rows = |a: u64, b: u64| {
            render_rows([
                ("state_ready", "gauge", "Ready.", a),
                ("state_keys", "gauge", "Keys.", b),
            ])
        };
        let text = label_shard_rows(&[
            (0, "h:1".into(), rows(1, 7)),
            (2, "h:2".into(), rows(0, 3) + "replicast_x{kind=\"y\"} 4\n"),
        ]);
        assert_eq!(
            text,
            "# HELP replicast_state_ready Ready.\n# TYPE replicast_state_ready gauge\n\
             replicast_state_ready{shard=\"0\",node=\"h:1\"} 1\nreplicast_state_ready{shard=\"2\",node=\"h:2\"} 0\n\
             # HELP replicast_state_keys Keys.\n# TYPE replicast_state_keys gauge\n\
             replicast_state_keys{shard=\"0\",node=\"h:1\"} 7\nreplicast_state_keys{shard=\"2\",node=\"h:2\"} 3\n\
             replicast_x{shard=\"2\",node=\"h:2\",kind=\"y\"} 4\n"
        );
    }
}
