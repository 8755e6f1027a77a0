//! Replicast's npm package: the JavaScript face of the assembler (`replicast-assembler`) and the protocol
//! (`replicast-protocol`) for `wasm32-unknown-unknown`.
//!
//! [`web`] holds the wasm-bindgen exports: the WebSocket client (`Replicast`), the assembler without a socket
//! (`Assembler`), DOM rendering and the aggregates. Natively this crate is empty: everything it wraps is tested in
//! the crates it wraps, and in Chromium here (`wasm-pack test`).

#[cfg(target_arch = "wasm32")]
pub mod web;
