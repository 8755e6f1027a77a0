//! Replicast's npm package: the JavaScript face of the assembler (`replicast-assembler`) and the protocol
//! (`replicast-protocol`) for `wasm32-unknown-unknown`.
//!
//! [`web`] holds the wasm-bindgen exports: the WebSocket client (`Replicast`), the assembler without a socket
//! (`Assembler`), DOM rendering and the aggregates. Natively this crate is empty: everything it wraps is tested in
//! the crates it wraps, and in Chromium here (`wasm-pack test`).

#[cfg(target_arch = "wasm32")]
pub mod web;

/// The heap's allocator in the browser: talc, in place of the dlmalloc that std brings to wasm32. Smaller (the
/// npm package's `.wasm` is 1.6 KB lighter gzipped, docs/BENCHMARKS.md) and, by its own benchmarks, faster.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
