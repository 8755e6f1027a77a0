// The package's browser entry: the `web` build of the client, with its wasm fetched and compiled here, once, when
// the package is first imported. The top-level await below is the package's, so a page imports `Replicast` and
// uses it at once, with no `init()` of its own; bundlers (Vite, webpack 5) emit the `.wasm` as an asset because
// the glue names it with `new URL('replicast_wasm_bg.wasm', import.meta.url)`.
import init from './web/replicast_wasm.js';

await init();

export * from './web/replicast_wasm.js';
