//! `replicast sink`: keeps in PostgreSQL what Redis forgets — the sediment. It follows the relay like a page does
//! (a snapshot, then every change, resuming by `(epoch, offset)` per shard), and writes, exactly once, the history
//! of `--history` keys (every sorted-set member and stream entry ever written, kept after Redis trims them) and
//! the current value of `--mirror` keys (strings, hashes, lists, sets). With `--listen` it also answers the
//! dashboard's history requests. docs/SINK.md describes the tables, the guarantees and their limits.
//!
//! ```text
//! replicast sink --relay ws://127.0.0.1:8080/ws --database postgres://user@host/db --history 'perf:*' \
//!   [--mirror 'config:*'] [--create-schema] [--listen 127.0.0.1:8090 --origin http://127.0.0.1:8080]
//! ```
//!
//! - `follow.rs`: the relay session (subscribe, resume, top-ups, reconnects) and the batches it fills.
//! - `changes.rs`: what each relay message changes, without I/O; `asked.rs`: the top-ups asked and not answered,
//!   asked again in time.
//! - `connection.rs`: where the sessions with the relay go and how they are opened (the main one and a listing's).
//! - `listing.rs`: the names of a shard's mirrored keys, from a short session of their own, after a `SWAPDB` or a
//!   stale message for every window.
//! - `rows.rs`: the batch: history rows, mirror states, set operations, the position.
//! - `writer.rs`: one transaction per batch (binary `COPY`, deduplication, the position), retried until written,
//!   on several connections committing in stream order;
//!   `copy.rs`: the rows as binary `COPY` data.
//! - `schema.rs`: the tables, their migrations and daily partitions; `windows.rs`: the history windows stored with
//!   the position, which a restarted sink starts from.
//! - `history.rs`: `GET /history` for the dashboard, downsampled in PostgreSQL; `metrics.rs`: `/metrics`.

mod asked;
pub mod changes;
pub mod connection;
pub mod copy;
pub mod follow;
pub mod history;
pub mod listing;
pub mod metrics;
pub mod rows;
pub mod schema;
pub mod windows;
pub mod writer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use changes::{Changes, Modes, Patterns};
use connection::{BatchLimits, Session};
use metrics::SinkMetrics;

#[derive(clap::Args, Debug, Clone)]
pub struct SinkArgs {
    /// The relay's WebSocket, e.g. ws://127.0.0.1:8080/ws. Its --allow must let the sink's keys out.
    #[arg(
        long,
        env = "REPLICAST_RELAY",
        default_value = "ws://127.0.0.1:8080/ws"
    )]
    pub relay: String,
    /// Token for a relay started with --token.
    #[arg(long, env = "REPLICAST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PostgreSQL to write to, e.g. postgres://replicast:secret@127.0.0.1:5432/metrics (libpq's URL or key=value
    /// form).
    #[arg(long, env = "REPLICAST_DATABASE", hide_env_values = true)]
    pub database: String,
    /// Create the schema `replicast` and its tables, or migrate them to this version, before starting.
    #[arg(long)]
    pub create_schema: bool,
    /// Keys (Redis globs) whose history is kept: every sorted-set member (scored by its time in Unix ms) and
    /// stream entry ever written.
    #[arg(long, env = "REPLICAST_SINK_HISTORY", value_delimiter = ',')]
    pub history: Vec<String>,
    /// Keys (Redis globs) whose current value is mirrored: strings, hashes, lists and sets.
    #[arg(long, env = "REPLICAST_SINK_MIRROR", value_delimiter = ',')]
    pub mirror: Vec<String>,
    /// The database of the keys.
    #[arg(long, default_value_t = 0)]
    pub db: u32,
    /// Items kept per mirrored key (a longer list or hash is mirrored by its newest items, marked inexact), and
    /// read per key when the relay snapshots history keys.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub window: u64,
    /// Rows (and mirror changes) per transaction, at most.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_rows: u64,
    /// Milliseconds a change may wait before its transaction is written.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub batch_ms: u64,
    /// Connections writing batches at once: the next batch's rows go in while the one before commits; the
    /// transactions still commit in stream order.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=4))]
    pub connections: u64,
    /// Address of the history endpoint (/history, /healthz, /metrics); none by default.
    #[arg(long, env = "REPLICAST_SINK_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Keys (Redis globs) the history endpoint may answer; by default the --history patterns.
    #[arg(long, value_delimiter = ',')]
    pub serve: Vec<String>,
    /// Origins of pages that may read the history endpoint (CORS), e.g. the relay's http://host:port; `*` for any.
    #[arg(long = "origin", value_delimiter = ',')]
    pub origins: Vec<String>,
    /// Host names the endpoint answers to besides IP addresses and localhost (as the relay's --public-host).
    #[arg(long = "public-host", value_delimiter = ',')]
    pub public_hosts: Vec<String>,
}

/// Bytes of rows per transaction, at most (besides --batch-rows).
const BATCH_BYTES: usize = 32 << 20;

/// `replicast sink`: runs until SIGINT/SIGTERM.
pub async fn run(args: SinkArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.history.is_empty() || !args.mirror.is_empty(),
        "nothing to keep: give --history or --mirror patterns (or both)"
    );
    let mut client = writer::connect(&args.database)
        .await
        .context("cannot connect to PostgreSQL (--database)")?;
    schema::prepare(&mut client, args.create_schema).await?;
    let positions = writer::load_positions(&client).await?;
    let known_mirror = writer::load_mirror_keys(&client).await?;
    let history_windows = writer::load_history_windows(&client).await?;
    let mirror_relists = writer::load_mirror_relists(&client).await?;
    let metrics = Arc::new(SinkMetrics::default());

    let endpoint = match args.listen {
        Some(addr) => {
            client.batch_execute(&history::session_settings()).await?;
            let serve = if args.serve.is_empty() {
                &args.history
            } else {
                &args.serve
            };
            let service = Arc::new(history::HistoryService {
                client,
                serve: Patterns::new(serve),
                origins: args.origins.clone(),
                metrics: metrics.clone(),
                busy: tokio::sync::Semaphore::new(history::MAX_CONCURRENT),
                access: crate::access::Access {
                    public_hosts: args
                        .public_hosts
                        .iter()
                        .map(|h| h.to_ascii_lowercase())
                        .collect(),
                    ..Default::default()
                },
            });
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            println!(
                "History endpoint at http://{}/history",
                listener.local_addr()?
            );
            let app = history::router(service);
            Some(tokio::spawn(
                async move { axum::serve(listener, app).await },
            ))
        }
        None => None,
    };

    let window = args.window as usize;
    let modes = Modes {
        history: Patterns::new(&args.history),
        mirror: Patterns::new(&args.mirror),
        db: args.db,
        window,
    };
    let session = Session {
        relay: args.relay.clone(),
        token: args.token.clone(),
        patterns: args
            .history
            .iter()
            .chain(&args.mirror)
            .map(|p| p.as_bytes().to_vec())
            .collect(),
        mirror_patterns: args.mirror.iter().map(|p| p.as_bytes().to_vec()).collect(),
        db: args.db,
        window,
        limits: BatchLimits {
            rows: args.batch_rows as usize,
            bytes: BATCH_BYTES,
            age: Duration::from_millis(args.batch_ms),
            writing: args.connections as usize,
        },
    };
    // A batch per connection written while one waits and the next fills: the bound on the sink's memory.
    let (batches, queue) = tokio::sync::mpsc::channel(1);
    let writing = tokio::spawn(writer::write_all(
        args.database.clone(),
        metrics.clone(),
        queue,
        args.connections as usize,
    ));
    println!(
        "Sink following {} into PostgreSQL (history: {:?}, mirror: {:?})",
        args.relay, args.history, args.mirror
    );
    let mut changes = Changes::new(modes, known_mirror, history_windows);
    changes.mirror_relists_stored(mirror_relists);
    let following = follow::follow(session, changes, positions, batches, metrics);
    tokio::select! {
        result = following => result?,
        _ = crate::shutdown_signal() => {}
    }
    // Batches handed over are written before the sink exits; the one being filled is read again next time.
    let _ = tokio::time::timeout(Duration::from_secs(10), writing).await;
    if let Some(endpoint) = endpoint {
        endpoint.abort();
    }
    Ok(())
}
