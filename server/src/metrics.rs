//! Counters the relay exposes at `/metrics`, in Prometheus's text format, and the state behind `/healthz`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::backlog::Backlog;

#[derive(Default)]
pub struct Metrics {
    pub sessions: AtomicU64,
    pub sessions_total: AtomicU64,
    pub messages_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub resyncs: AtomicU64,
    pub resumes: AtomicU64,
    pub link_full_syncs: AtomicU64,
    pub link_partial_syncs: AtomicU64,
    pub link_errors: AtomicU64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self, backlog: &Backlog) -> String {
        let (start, end, bytes) = backlog.extent();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP replicast_{name} {help}\n# TYPE replicast_{name} {kind}\nreplicast_{name} {value}");
        };
        metric(
            "link_up",
            "gauge",
            "1 while the replica link is streaming.",
            u64::from(backlog.is_live()),
        );
        metric(
            "link_offset",
            "gauge",
            "Replication offset the link has received up to.",
            end,
        );
        metric(
            "link_full_syncs_total",
            "counter",
            "Full resynchronisations of the link.",
            get(&self.link_full_syncs),
        );
        metric(
            "link_partial_syncs_total",
            "counter",
            "Partial resynchronisations (+CONTINUE) of the link.",
            get(&self.link_partial_syncs),
        );
        metric(
            "link_errors_total",
            "counter",
            "Replica link failures (each followed by a reconnect).",
            get(&self.link_errors),
        );
        metric(
            "backlog_bytes",
            "gauge",
            "Bytes of raw stream held in the backlog.",
            bytes as u64,
        );
        metric(
            "backlog_start_offset",
            "gauge",
            "Oldest offset a session can resume from.",
            start,
        );
        metric(
            "sessions",
            "gauge",
            "Open browser sessions.",
            get(&self.sessions),
        );
        metric(
            "sessions_total",
            "counter",
            "Browser sessions opened.",
            get(&self.sessions_total),
        );
        metric(
            "session_resumes_total",
            "counter",
            "Sessions that resumed inside the backlog.",
            get(&self.resumes),
        );
        metric(
            "session_resyncs_total",
            "counter",
            "Sessions told to resync after falling behind the backlog.",
            get(&self.resyncs),
        );
        metric(
            "messages_sent_total",
            "counter",
            "Relay messages sent to browsers.",
            get(&self.messages_sent),
        );
        metric(
            "bytes_sent_total",
            "counter",
            "Bytes of relay messages sent to browsers.",
            get(&self.bytes_sent),
        );
        out
    }
}
