//! Replicast's protocol: what crosses the wire between Redis, the relay and the browser, read and written the same
//! way on every side (natively in the relay, in wasm in the browser).
//!
//! - [`resp`]: the incremental, offset-aware RESP parser: replication-stream commands and RESP2/RESP3 replies.
//! - [`wire`]: the relay → browser messages (binary): hellos, commands with their offsets, snapshots, stale keys.
//! - [`client_message`]: the browser → relay messages (JSON): subscribe, top-up, event, with their limits.
//! - [`decimal`]: text to a double, one parser for every reader of numbers (small in the browser's `.wasm`).
//! - [`pattern`]: Redis glob patterns, matched in time linear in pattern and key.
//! - [`short_bytes`]: equality of short byte strings without a call to `memcmp`.
//! - [`quote`]: text from Redis or a browser quoted inside error messages, as `{:?}` would, without core's Debug
//!   machinery.
//! - [`text`]: error texts as short codes in the npm package's client (`text!`), the words in its JavaScript.
//!
//! No I/O, no async runtime, no JavaScript bindings: the relay and the wasm package build on it.

pub mod client_message;
pub mod decimal;
mod json_text;
pub mod pattern;
pub mod quote;
pub mod resp;
pub mod short_bytes;
pub mod text;
pub mod wire;
