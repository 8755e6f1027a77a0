//! What a page reads of the windows, the same for both classes it can hold: [`Replicast`](super::Replicast), which
//! owns its socket, and [`Assembler`](super::Assembler), which is fed messages. [`read_api!`] writes the one set of
//! read methods (names, types, documentation) into each class, over where the class keeps its assembler
//! ([`ReadWindows`]), so that the two cannot drift apart.

use replicast_assembler::StreamAssembler;

use super::follow::Follow;

/// Where a class keeps its assembler. Reads run inside a borrow, never across a call back into JavaScript.
pub(super) trait ReadWindows {
    /// Runs `read` on the assembler, with the count of notices the relay sent.
    fn read<R>(&self, read: impl FnOnce(&StreamAssembler<Follow>, u64) -> R) -> R;
    /// Runs `read` on the assembler mutably: aggregates are brought up to date when read, and `seriesView` keeps
    /// its numbers in the observer.
    fn read_mut<R>(&self, read: impl FnOnce(&mut StreamAssembler<Follow>) -> R) -> R;
}

/// The read methods of `$class`, which implements [`ReadWindows`].
macro_rules! read_api {
    ($class:ident) => {
        #[wasm_bindgen::prelude::wasm_bindgen]
        impl $class {
            /// Replication offset applied so far (exact below 2^53).
            #[wasm_bindgen(getter)]
            pub fn offset(&self) -> f64 {
                $crate::web::reads::ReadWindows::read(self, |a, _| a.offset() as f64)
            }

            /// The replication ID of the stream followed (shard 0's), once the relay said hello.
            #[wasm_bindgen(getter)]
            pub fn epoch(&self) -> Option<String> {
                $crate::web::reads::ReadWindows::read(self, |a, _| a.epoch().map(str::to_string))
            }

            /// Where each shard's stream stands: one entry per shard whose hello arrived (only shard 0 with a
            /// relay following one Redis).
            #[wasm_bindgen(getter, unchecked_return_type = "ReplicastPosition[]")]
            pub fn positions(&self) -> wasm_bindgen::JsValue {
                $crate::web::reads::ReadWindows::read(self, |a, _| $crate::web::view::positions(a))
            }

            /// Watched keys that have a window, in key order.
            pub fn keys(&self) -> Vec<String> {
                $crate::web::reads::ReadWindows::read(self, |a, _| $crate::web::view::keys(a))
            }

            /// Items in `key`'s window.
            pub fn len(&self, key: &str) -> usize {
                $crate::web::reads::ReadWindows::read(self, |a, _| $crate::web::view::len(a, key))
            }

            /// The items' times (sorted-set scores), oldest first.
            pub fn times(&self, key: &str) -> js_sys::Float64Array {
                $crate::web::reads::ReadWindows::read(self, |a, _| $crate::web::view::times(a, key))
            }

            /// Every key's newest sample in one call, for a page that reads many keys each frame: for each of
            /// `keys`, in order, `2 + F` numbers (F: the aggregated fields, `aggregate.fields`,
            /// `aggregate.counters`, then `aggregate.series`; 0 without `aggregate`): the items in its window, its newest item's time, then
            /// each aggregated field's value in that item. NaN where the key has no window, its items have no
            /// time (lists, hashes, strings), aggregation is off, or the item lacks the field.
            #[wasm_bindgen(js_name = newestOf)]
            pub fn newest_of(&self, keys: Vec<String>) -> js_sys::Float64Array {
                $crate::web::reads::ReadWindows::read(self, |a, _| {
                    $crate::web::view::newest_of(a, &keys)
                })
            }

            /// `key`'s handle for `changes`, a small integer: given the first time (the key is then reported as
            /// changed otherwise, to be read whole, once it has items), the same when asked again; `undefined`
            /// without `aggregate`.
            pub fn track(&self, key: &str) -> Option<u32> {
                $crate::web::reads::ReadWindows::read_mut(self, |a| a.observer_mut().track(key))
            }

            /// What changed in the tracked keys' windows since the last call, for a page that keeps each key's
            /// series itself: a row of `4 + F` numbers (F as in `newestOf`, then `aggregate.series`) per key that
            /// changed, and only those: its handle, its items, how many were appended at its newest end (those
            /// that left the oldest end are the difference of the counts) or -1 when it changed otherwise (read it
            /// whole), its newest item's time and each field's value in it (NaN: none). A view of wasm memory,
            /// like `seriesView`: valid until the next call into this object.
            pub fn changes(&self) -> js_sys::Float64Array {
                $crate::web::reads::ReadWindows::read_mut(self, |a| {
                    let rows = a.observer_mut().changes();
                    // SAFETY: the view aliases the observer's `view_buffer`, which only the next call into this
                    // object changes; the contract above tells the page not to keep the view past that.
                    unsafe { js_sys::Float64Array::view(rows) }
                })
            }

            /// The numeric JSON field at `path` (e.g. `cpu.total`, `load.0`) of each item, oldest first; NaN
            /// where an item lacks it.
            pub fn series(
                &self,
                key: &str,
                path: &str,
            ) -> Result<js_sys::Float64Array, wasm_bindgen::JsError> {
                $crate::web::reads::ReadWindows::read(self, |a, _| {
                    $crate::web::view::series(a, key, path)
                })
            }

            /// `series` without the copy: a view of wasm memory, valid only until the next call into this object
            /// (or any call that may grow wasm memory, after which it reads as empty). For a page that draws the
            /// numbers at once and keeps nothing.
            #[wasm_bindgen(js_name = seriesView)]
            pub fn series_view(
                &self,
                key: &str,
                path: &str,
            ) -> Result<js_sys::Float64Array, wasm_bindgen::JsError> {
                $crate::web::reads::ReadWindows::read_mut(self, |a| {
                    let values = $crate::web::view::series_values(a, key, path)?;
                    let buffer = &mut a.observer_mut().view_buffer;
                    *buffer = values;
                    // SAFETY: the view aliases `view_buffer`, which only the next call into this object
                    // replaces; the contract above tells the page not to keep the view past that.
                    Ok(unsafe { js_sys::Float64Array::view(buffer) })
                })
            }

            /// The newest item, parsed as JSON; `undefined` when there is none or it is not JSON.
            pub fn latest(&self, key: &str) -> wasm_bindgen::JsValue {
                $crate::web::reads::ReadWindows::read(self, |a, _| {
                    $crate::web::view::latest(a, key)
                })
            }

            /// `key`'s window as a plain object: its type and its items, newest first.
            #[wasm_bindgen(unchecked_return_type = "ReplicastWindow | undefined")]
            pub fn window(&self, key: &str) -> wasm_bindgen::JsValue {
                $crate::web::reads::ReadWindows::read(self, |a, _| {
                    $crate::web::view::window(a, key)
                })
            }

            /// The Redis type of `key`'s window (`zset`, `stream`, `list`, `hash`, `string`), if it has one.
            pub fn kind(&self, key: &str) -> Option<String> {
                $crate::web::reads::ReadWindows::read(self, |a, _| {
                    a.window(key.as_bytes())
                        .map(|w| w.kind().name().to_string())
                })
            }

            /// Whether `key`'s window holds all Redis holds for it.
            pub fn complete(&self, key: &str) -> bool {
                $crate::web::reads::ReadWindows::read(self, |a, _| {
                    a.window(key.as_bytes()).is_some_and(|w| w.complete())
                })
            }

            /// Whether `key`'s window waits for a top-up.
            pub fn stale(&self, key: &str) -> bool {
                $crate::web::reads::ReadWindows::read(self, |a, _| {
                    a.window(key.as_bytes()).is_some_and(|w| w.stale())
                })
            }

            /// When `key` expires, in Unix milliseconds, if it has a TTL.
            #[wasm_bindgen(js_name = expiresAt)]
            pub fn expires_at(&self, key: &str) -> Option<f64> {
                $crate::web::reads::ReadWindows::read(self, |a, _| {
                    a.window(key.as_bytes())
                        .and_then(|w| w.expires_at_ms())
                        .map(|t| t as f64)
                })
            }

            /// `key`'s statistics of an aggregated field over its window and the rolling buckets.
            #[wasm_bindgen(unchecked_return_type = "ReplicastFieldStats | null")]
            pub fn stats(
                &self,
                key: &str,
                path: &str,
            ) -> Result<wasm_bindgen::JsValue, wasm_bindgen::JsError> {
                $crate::web::reads::ReadWindows::read_mut(self, |a| {
                    a.observer_mut().stats(key, path)
                })
            }

            /// Across keys, over each key's newest item: the statistics of an aggregated field.
            #[wasm_bindgen(unchecked_return_type = "ReplicastFieldStats | null")]
            pub fn fleet(
                &self,
                path: &str,
            ) -> Result<wasm_bindgen::JsValue, wasm_bindgen::JsError> {
                $crate::web::reads::ReadWindows::read_mut(self, |a| a.observer_mut().fleet(path))
            }

            /// Across keys, how many keys' newest value of an aggregated field is above `threshold`.
            #[wasm_bindgen(js_name = fleetAbove)]
            pub fn fleet_above(
                &self,
                path: &str,
                threshold: f64,
            ) -> Result<usize, wasm_bindgen::JsError> {
                $crate::web::reads::ReadWindows::read_mut(self, |a| {
                    a.observer_mut().fleet_above(path, threshold)
                })
            }

            /// Bad input seen so far, by kind.
            #[wasm_bindgen(unchecked_return_type = "ReplicastDiagnostics")]
            pub fn diagnostics(&self) -> wasm_bindgen::JsValue {
                $crate::web::reads::ReadWindows::read(self, |a, notices| {
                    a.observer().diagnostics(a.diagnostics(), notices)
                })
            }
        }
    };
}

pub(super) use read_api;
