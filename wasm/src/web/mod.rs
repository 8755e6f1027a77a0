//! The browser API, compiled only for `wasm32`: what JavaScript sees of the assembler.
//!
//! - [`Assembler`]: the StreamAssembler alone, for pages that bring their own socket and drawing.
//! - [`LiveTable`]: the whole path of the walking skeleton: a WebSocket to the relay, the assembler, and a table
//!   of the windows rendered from wasm once per animation frame.
//!
//! Bytes cross into wasm once per WebSocket message and results cross out once per frame, never per command.

pub mod bench;
mod live_table;
pub mod rdb;
mod table;

use js_sys::Float64Array;
use wasm_bindgen::prelude::*;

use crate::assembler::{Outcome, StreamAssembler, WatchConfig};

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

    /// Members of `key`'s window if it is a sorted set, newest first.
    pub fn members(&self, key: &str) -> Vec<String> {
        self.inner
            .window(key.as_bytes())
            .and_then(|w| w.as_zset())
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
            .and_then(|w| w.as_zset())
            .map(|w| w.newest_first().map(|(_, s)| s).collect())
            .unwrap_or_default();
        Float64Array::from(scores.as_slice())
    }

    /// The Redis type of `key`'s window (`zset`, `stream`, `list`, `hash`, `string`), if it has one.
    pub fn kind(&self, key: &str) -> Option<String> {
        self.inner
            .window(key.as_bytes())
            .map(|w| w.kind().name().to_string())
    }

    /// Items of `key`'s window, newest first, as text: members, `field=value …` of stream entries, list
    /// items, hash values, the string's value.
    pub fn items(&self, key: &str) -> Vec<String> {
        self.describe(key)
            .into_iter()
            .map(|(_, text)| text)
            .collect()
    }

    /// Labels of the items of [`Assembler::items`]: scores, stream ids, list indexes from the end, hash fields.
    pub fn labels(&self, key: &str) -> Vec<String> {
        self.describe(key)
            .into_iter()
            .map(|(label, _)| label)
            .collect()
    }

    /// Items in `key`'s window (0 without a window).
    pub fn len(&self, key: &str) -> usize {
        self.inner.window(key.as_bytes()).map_or(0, |w| w.len())
    }

    /// Whether `key`'s window holds all Redis holds for it.
    pub fn complete(&self, key: &str) -> bool {
        self.inner
            .window(key.as_bytes())
            .is_some_and(|w| w.complete())
    }

    /// Whether `key`'s window waits for a top-up.
    pub fn stale(&self, key: &str) -> bool {
        self.inner.window(key.as_bytes()).is_some_and(|w| w.stale())
    }

    /// When `key` expires, in Unix milliseconds, if it has a TTL.
    #[wasm_bindgen(js_name = expiresAt)]
    pub fn expires_at(&self, key: &str) -> Option<f64> {
        self.inner
            .window(key.as_bytes())
            .and_then(|w| w.expires_at_ms())
            .map(|t| t as f64)
    }

    /// Drops windows whose TTL passed at `now_ms`; returns how many.
    pub fn tick(&mut self, now_ms: f64) -> usize {
        self.inner.tick(now_ms.max(0.0) as u64)
    }

    /// Keys whose windows need a top-up, each once.
    #[wasm_bindgen(js_name = takeTopups)]
    pub fn take_topups(&mut self) -> Vec<String> {
        self.inner
            .take_topups()
            .into_iter()
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .collect()
    }

    fn describe(&self, key: &str) -> Vec<(String, String)> {
        self.inner
            .window(key.as_bytes())
            .map(|w| {
                w.items_newest_first()
                    .enumerate()
                    .map(|(i, item)| table::describe(i, &item))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn watch_config(patterns: Vec<String>, window: usize, db: u32) -> WatchConfig {
    WatchConfig {
        patterns: patterns.into_iter().map(String::into_bytes).collect(),
        db,
        window,
    }
}
