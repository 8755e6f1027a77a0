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

/// The StreamAssembler: feed it the relay's binary messages, read the windows of the keys it watches.
#[wasm_bindgen]
pub struct Assembler {
    inner: StreamAssembler,
}

#[wasm_bindgen]
impl Assembler {
    /// Watches keys matching any of `patterns` (Redis globs) in database `db`, keeping `window` members each.
    #[wasm_bindgen(constructor)]
    pub fn new(patterns: Vec<String>, window: usize, db: u32) -> Assembler {
        Assembler {
            inner: StreamAssembler::new(watch_config(patterns, window, db)),
        }
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

    /// Watched keys that currently have a window.
    pub fn keys(&self) -> Vec<String> {
        self.inner
            .windows()
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect()
    }

    /// Members of `key`'s window, newest first.
    pub fn members(&self, key: &str) -> Vec<String> {
        self.inner
            .window(key.as_bytes())
            .map(|w| {
                w.newest_first()
                    .map(|(m, _)| String::from_utf8_lossy(m).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Scores of `key`'s window, newest first, in the order of [`Assembler::members`].
    pub fn scores(&self, key: &str) -> Float64Array {
        let scores: Vec<f64> = self
            .inner
            .window(key.as_bytes())
            .map(|w| w.newest_first().map(|(_, s)| s).collect())
            .unwrap_or_default();
        Float64Array::from(scores.as_slice())
    }
}

fn watch_config(patterns: Vec<String>, window: usize, db: u32) -> WatchConfig {
    WatchConfig {
        patterns: patterns.into_iter().map(String::into_bytes).collect(),
        db,
        window,
    }
}
