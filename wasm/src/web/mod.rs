//! The browser API, compiled only for `wasm32`: what JavaScript sees of the assembler.
//!
//! - [`Assembler`]: the StreamAssembler alone, for pages that bring their own socket and drawing.
//! - [`Replicast`]: the client a page uses: a WebSocket to the relay, reconnects and resumes, the assembler, and
//!   reads of windows, series and aggregates, with one change callback per animation frame.
//!
//! Bytes cross into wasm once per WebSocket message and results cross out once per frame, never per command.

#[cfg(feature = "tools")]
pub mod bench;
mod client;
mod error;
mod follow;
mod listeners;
#[cfg(feature = "tools")]
pub mod rdb;
mod sends;
mod view;

use js_sys::Float64Array;
use wasm_bindgen::prelude::*;

use crate::assembler::{Outcome, StreamAssembler};
use error::{replicast_error, typed, ErrorCode};
use follow::Follow;

pub use client::Replicast;

/// The StreamAssembler alone: feed it the relay's binary messages yourself, read the windows of the keys it
/// watches. Works wherever wasm does, Node.js included.
#[wasm_bindgen]
pub struct Assembler {
    inner: StreamAssembler<Follow>,
}

#[wasm_bindgen]
impl Assembler {
    /// Watches what `options` says (`patterns`, `keys`, `db`, `window`; the connection options are ignored).
    #[wasm_bindgen(constructor)]
    pub fn new(options: client::ReplicastOptions) -> Result<Assembler, JsValue> {
        let (watch, options) = client::options_watch(options)?;
        let follow =
            Follow::new(options.aggregate).map_err(|e| typed(e, ErrorCode::InvalidOptions))?;
        Ok(Assembler {
            inner: StreamAssembler::with_observer(watch, follow),
        })
    }

    /// Applies one relay message; returns whether any window changed. Throws a `ReplicastError`: code
    /// `badMessage` for a malformed message, `resync` when the relay dropped the session's stream.
    pub fn push(&mut self, message: &[u8]) -> Result<bool, JsValue> {
        self.inner.observer_mut().set_now(js_sys::Date::now());
        let outcome = self
            .inner
            .push_message(message)
            .map_err(|e| replicast_error(ErrorCode::BadMessage, &e.to_string()))?;
        match outcome {
            Outcome::Joined { .. } => Ok(true),
            Outcome::Applied { changed, .. } => Ok(changed),
            Outcome::Notice { .. } | Outcome::Ack { .. } => Ok(false),
            Outcome::Resync { reason } => Err(replicast_error(
                ErrorCode::Resync,
                &format!("the relay dropped the session's stream: {reason}"),
            )),
        }
    }

    /// Keys whose windows changed since the last call, in key order.
    #[wasm_bindgen(js_name = takeChanged)]
    pub fn take_changed(&mut self) -> Vec<String> {
        std::mem::take(&mut self.inner.observer_mut().changed)
            .into_iter()
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .collect()
    }

    /// `key`'s statistics of an aggregated field over its window and the rolling buckets.
    #[wasm_bindgen(unchecked_return_type = "ReplicastFieldStats | null")]
    pub fn stats(&mut self, key: &str, path: &str) -> Result<JsValue, JsError> {
        self.inner.observer_mut().stats(key, path)
    }

    /// Across keys, over each key's newest item: the statistics of an aggregated field.
    #[wasm_bindgen(unchecked_return_type = "ReplicastFieldStats | null")]
    pub fn fleet(&mut self, path: &str) -> Result<JsValue, JsError> {
        self.inner.observer_mut().fleet(path)
    }

    /// Across keys, how many keys' newest value of an aggregated field is above `threshold`.
    #[wasm_bindgen(js_name = fleetAbove)]
    pub fn fleet_above(&mut self, path: &str, threshold: f64) -> Result<usize, JsError> {
        self.inner.observer_mut().fleet_above(path, threshold)
    }

    /// Bad input seen so far, by kind.
    #[wasm_bindgen(unchecked_return_type = "ReplicastDiagnostics")]
    pub fn diagnostics(&self) -> Result<JsValue, JsError> {
        self.inner
            .observer()
            .diagnostics(self.inner.diagnostics(), 0)
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

    /// Where each shard's stream stands: one entry per shard whose hello arrived.
    #[wasm_bindgen(getter, unchecked_return_type = "ReplicastPosition[]")]
    pub fn positions(&self) -> Result<JsValue, JsError> {
        serde_wasm_bindgen::to_value(&client::positions(&self.inner))
            .map_err(|e| JsError::new(&e.to_string()))
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
    #[wasm_bindgen(unchecked_return_type = "ReplicastWindow | undefined")]
    pub fn window(&self, key: &str) -> Result<JsValue, JsError> {
        view::window(&self.inner, key)
    }

    /// The Redis type of `key`'s window (`zset`, `stream`, `list`, `hash`, `string`), if it has one.
    pub fn kind(&self, key: &str) -> Option<String> {
        self.inner
            .window(key.as_bytes())
            .map(|w| w.kind().name().to_string())
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
}
