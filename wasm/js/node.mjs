// The package's entry for Node's `import`: the CommonJS `nodejs` build (its wasm compiled synchronously when it is
// first required), with its exports as named ESM exports.
export * from './node/replicast_wasm.js';
