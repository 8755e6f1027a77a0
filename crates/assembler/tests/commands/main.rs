//! Each command family on byte-literal streams: what the window holds after it, that the observer saw exactly
//! that, and which keys asked for a top-up.

#![cfg(not(target_arch = "wasm32"))]

#[path = "../assembled/mod.rs"]
mod assembled;

mod bytes;
mod cluster;
mod hash;
mod keys;
mod list;
mod stream;
mod string;
mod zset;
