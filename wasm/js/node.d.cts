// The types of Node's `require` entry: those of the `nodejs` build, which wasm-bindgen writes from the Rust code
// (see index.d.ts for the lib).
/// <reference lib="esnext.disposable" />
export * from './node/replicast_wasm.js';
