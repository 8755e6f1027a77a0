//! The relay's library: everything `replicast` (src/main.rs) is made of, so that fuzz targets and tests can reach
//! the parts that read untrusted input (a browser's messages, the replication stream) without a process.
//!
//! - What the relay follows: `relay` (the state every route and session shares, and the `Source` the flags name),
//!   `topology` (the shards followed and which holds each key: one Redis is a topology of one shard), `shard` (one
//!   stream followed: its upstream, link, backlog and snapshots), `cluster` (a Redis Cluster's shards, read again
//!   every second), `sentinel` and `upstream` (which node a shard follows), `hash_slot` (a key's cluster slot).
//! - The replica link: `replica_link` (PSYNC, reconnects), `link_io`, `link_error`, `backoff`, `sync_payload`,
//!   `stream_reader` (the stream cut into batches, commands too large to hold passed through), `tls`,
//!   `command_table` and `frames` (where each command's keys are).
//! - What browsers read: `backlog` (the shared, bounded stream, of what `reachable` says some session could be
//!   sent), `subscription` (what a session may see), `session` (one WebSocket, a stream per shard), `snapshot`
//!   (exact joins and top-ups), `state` (the windows the relay keeps itself, from the full sync's RDB and the
//!   stream, which answer joins without Redis, and its checks against Redis), `http` (the page, `/ws`),
//!   `verify_endpoint` (`/verify`: the state of chosen keys at an offset), `access` (who may connect), `tokens`
//!   (signed per-user tokens: what each session may see and write), `connections` (accepting sockets: per-address
//!   caps, the header timeout), `metrics` and `timings` (its histograms), `open_files` (the socket budget).
//! - What browsers write: `events` (a browser's event appended to a `--writable` key, its limits, the writer).
//! - The other subcommands: `record`, `rdb_command`, `collect`, `sink` (the sediment: PostgreSQL),
//!   `verify_command` (a relay's state against Redis), and
//!   `embedded_redis` for the demo.

pub mod access;
pub mod backlog;
pub mod backoff;
pub mod client_address;
pub mod cluster;
pub mod collect;
pub mod command_table;
pub mod connections;
pub mod embedded_redis;
pub mod events;
pub mod frames;
pub mod hash_slot;
pub mod http;
pub mod link_error;
pub mod link_io;
pub mod metrics;
pub mod open_files;
pub mod operator_access;
pub mod profile;
pub mod rdb_command;
pub mod reachable;
pub mod record;
pub mod relay;
pub mod replica_link;
pub mod sentinel;
pub mod session;
pub mod shard;
pub mod sink;
pub mod snapshot;
pub mod state;
pub mod state_checks;
pub mod static_files;
pub mod stream_reader;
pub mod subscription;
pub mod sync_payload;
pub mod timings;
pub mod tls;
pub mod tokens;
pub mod topology;
pub mod upstream;
pub mod verify_command;
pub mod verify_endpoint;
pub mod watchers;

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
