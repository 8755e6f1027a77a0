//! The browser API, compiled only for `wasm32`: what JavaScript sees of the assembler.
//!
//! - [`Assembler`]: the StreamAssembler alone, for pages that bring their own socket and drawing.
//! - [`Replicast`]: the client a page uses: a WebSocket to the relay, reconnects and resumes, the assembler, and
//!   reads of windows, series and aggregates, with one change callback per animation frame.
//! - [`LiveTable`]: the whole path of the walking skeleton: a WebSocket to the relay, the assembler, and a table
//!   of the windows rendered from wasm once per animation frame.
//!
//! Bytes cross into wasm once per WebSocket message and results cross out once per frame, never per command.

pub mod bench;
mod client;
mod live_table;
pub mod rdb;
mod table;
mod view;

use js_sys::Float64Array;
use wasm_bindgen::prelude::*;

use crate::assembler::{Outcome, StreamAssembler, WatchConfig};

pub use client::Replicast;
pub use live_table::LiveTable;
pub use table::render_table;

/// The StreamAssembler alone: feed it the relay's binary messages yourself, read the windows of the keys it
/// watches. Works wherever wasm does, Node.js included.
#[wasm_bindgen]
pub struct Assembler {
    inner: StreamAssembler,
}

#[wasm_bindgen]
impl Assembler {
    /// Watches what `options` says (`patterns`, `keys`, `db`, `window`; the connection options are ignored).
    #[wasm_bindgen(constructor)]
    pub fn new(options: client::ReplicastOptions) -> Result<Assembler, JsError> {
        Ok(Assembler {
            inner: StreamAssembler::new(client::options_watch(options)?.0),
        })
    }

    /// Applies one relay message; returns whether any window changed. Throws on a malformed message, and with
    /// a message starting "resync:" when the relay dropped the session.
    pub fn push(&mut self, message: &[u8]) -> Result<bool, JsError> {
        match self.inner.push_message(message)? {
            Outcome::Joined { .. } => Ok(true),
            Outcome::Applied { changed, .. } => Ok(changed),
            Outcome::Notice { .. } => Ok(false),
            Outcome::Resync { reason } => Err(JsError::new(&format!("resync: {reason}"))),
        }
    }

    /// Replication offset applied so far (exact below 2^53).
    #[wasm_bindgen(getter)]
    pub fn offset(&self) -> f64 {
        self.inner.offset() as f64
    }

    #[wasm_bindgen(getter)]
    pub fn epoch(&self) -> Option<String> {
        self.inner.epoch().map(str::to_string)
    }

    /// Watched keys that have a window, in key order.
    pub fn keys(&self) -> Vec<String> {
        view::keys(&self.inner)
    }

    /// Items in `key`'s window.
    pub fn len(&self, key: &str) -> usize {
        view::len(&self.inner, key)
    }

    /// The items' times (sorted-set scores), oldest first.
    pub fn times(&self, key: &str) -> Float64Array {
        view::times(&self.inner, key)
    }

    /// The numeric JSON field at `path` of each item, oldest first; NaN where an item lacks it.
    pub fn series(&self, key: &str, path: &str) -> Result<Float64Array, JsError> {
        view::series(&self.inner, key, path)
    }

    /// The newest item, parsed as JSON; `undefined` when there is none or it is not JSON.
    pub fn latest(&self, key: &str) -> JsValue {
        view::latest(&self.inner, key)
    }

    /// `key`'s window as a plain object: its type and its items, newest first.
    pub fn window(&self, key: &str) -> Result<JsValue, JsError> {
        view::window(&self.inner, key)
    }
}

fn watch_config(patterns: Vec<String>, window: usize, db: u32) -> WatchConfig {
    WatchConfig {
        patterns: patterns.into_iter().map(String::into_bytes).collect(),
        db,
        window,
    }
}
