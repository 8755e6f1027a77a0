//! Replicast's assembler: reads a Redis replication stream and keeps bounded, live windows of the keys a page
//! watches.
//!
//! Pure Rust, with no I/O and no JavaScript bindings: the npm package (`wasm/`) wraps it for the browser, and native
//! programs (the relay's tests, the fuzzers, the benchmarks) run the very same code. The stream it reads is the
//! protocol crate's (`replicast-protocol`).
//!
//! - `watch`: what a page watches ([`WatchConfig`]).
//! - [`assembler`]: the StreamAssembler: messages, segments, `MULTI` blocks, snapshots, top-ups; and its saved
//!   view (its windows and positions as bytes, kept by a page across a reload to resume instead of re-snapshotting).
//! - `keyspace`: the watched database's windows and what is known about keys without one.
//! - `commands`: how each command changes the windows, one file per type.
//! - [`digest`]: digests of window contents, to compare two followers' windows without sending them.
//! - [`windows`]: the window of each type: sorted set, stream, list, hash, string.
//! - [`observe`]: how windows report items entering and leaving them, for the aggregation.
//! - [`diagnostics`]: counters of bad input and inexact commands.
//! - [`link`]: the browser side of a relay session without I/O: statuses, reconnect backoff, idle detection.
//! - [`aggregate`]: incremental statistics over the windows' JSON samples, per key, per field value or across keys.
//! - [`series`]: numeric series of aggregated fields, kept in time order as items come and go.
//! - [`sort`]: the one sort every caller shares, compiled once (the wasm client's size).

pub mod aggregate;
pub mod assembler;
mod commands;
pub mod diagnostics;
pub mod digest;
mod keyspace;
pub mod link;
pub mod observe;
pub mod series;
mod shard_set;
pub mod sort;
mod watch;
pub mod windows;

pub use assembler::{Outcome, StreamAssembler, WatchConfig};
pub use commands::{db_index, known_commands};
pub use diagnostics::Diagnostics;
pub use windows::{ItemView, Kind, Window};
