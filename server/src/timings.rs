//! How long the relay's work takes, as `/metrics` histograms: the delay from the link receiving a batch of the
//! stream to a session taking it to send (what a browser waits for a write beyond the network), and the time a
//! snapshot read takes, and a session's whole join (its snapshot read, placed in the stream and written to the
//! socket). Process-wide, as the work is: every shard's backlog, snapshotter and session records into the same
//! three histograms.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{Histogram, HistogramOpts};

/// From the link receiving a batch to a session reading it from the backlog to send it: from a tenth of a
/// millisecond (a session waiting at the ring's end) to seconds (one catching up after a resume).
pub static STREAM_DELAY: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "replicast_stream_delay_seconds",
        "From the link receiving a batch of the stream to a session taking it to send.",
        vec![0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0],
    )
});

/// A snapshot read (every key of a join, or a top-up's), waiting for its turn included.
pub static SNAPSHOT_DURATION: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "replicast_snapshot_duration_seconds",
        "Time to read a snapshot for a joining session or a top-up, waiting for a turn included (from the relay's state, or from Redis).",
        vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0],
    )
});

/// A session's join of one shard's stream: from its subscription to its hello and snapshot taken by the socket (a
/// resume: its hello), waiting for a snapshot's turn and for the link to reach the snapshot's offset included.
/// Tells what the relay adds to a page's time to its first frame, apart from the page's own work.
pub static JOIN_DURATION: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "replicast_join_duration_seconds",
        "Time from a session's subscription to its hello and snapshot taken by the socket (a resume: its hello), per shard.",
        vec![0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
    )
});

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    // The options are constants of this file: a bad name or bucket list is a bug that the first scrape shows.
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("valid histogram options")
}

/// Records one duration.
pub fn observe(histogram: &Histogram, took: Duration) {
    histogram.observe(took.as_secs_f64());
}
