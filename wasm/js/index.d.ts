// The browser entry's types: those wasm-bindgen writes from the Rust code, so they cannot drift from it. Its
// classes declare `[Symbol.dispose]`, which TypeScript knows from this lib, whatever the app's `lib` says.
/// <reference lib="esnext.disposable" />
export * from './web/replicast_wasm.js';
