// The inspector's reader: a Web Worker that reads a dropped RDB file through the wasm RDB reader (wasm/pkg-rdb,
// loaded here and nowhere else, so no other page downloads it). The file is read in slices of CHUNK bytes, each
// handed to wasm once, so memory stays at a slice plus the reader's state whatever the file's size. The page
// cancels by terminating the worker.
//
// In:  { file: File, top: number, now: number }
// Out: { type: 'progress', bytes, keys } at most every PROGRESS_MS, then { type: 'done', summary: <JSON text> }
//      or { type: 'error', message, bytes }.

import init, { RdbInspect } from '../../pkg-rdb/replicast_wasm.js';

/** Bytes read from the file at a time: large enough that the per-slice cost vanishes, small next to any heap. */
const CHUNK = 2 * 1024 * 1024;
const PROGRESS_MS = 100;

self.onmessage = async ({ data: { file, top, now } }) => {
  let bytes = 0;
  try {
    await init();
    const inspect = new RdbInspect(top, now);
    let reported = 0;
    for (let at = 0; at < file.size; at += CHUNK) {
      const slice = new Uint8Array(await file.slice(at, at + CHUNK).arrayBuffer());
      inspect.push(slice);
      bytes = at + slice.length;
      if (performance.now() - reported >= PROGRESS_MS) {
        reported = performance.now();
        self.postMessage({ type: 'progress', bytes, keys: inspect.keys });
      }
    }
    inspect.finish();
    self.postMessage({ type: 'progress', bytes, keys: inspect.keys });
    self.postMessage({ type: 'done', summary: inspect.summary() });
    inspect.free();
  } catch (err) {
    self.postMessage({ type: 'error', message: String(err?.message ?? err), bytes });
  }
};
