// The inspector's reader: a Web Worker that reads a dropped RDB file through the wasm RDB reader (wasm/pkg-rdb,
// loaded here and nowhere else, so no other page downloads it). The file is streamed (`file.stream()`) into one
// buffer of CHUNK bytes, reused for every read (a BYOB reader), and each read is handed to wasm once: memory stays
// at that buffer plus the reader's state whatever the file's size. (Reading a fresh ArrayBuffer per slice instead
// let the worker's memory grow with the file, by about 110 MiB per GB in Chromium, until its garbage collector
// caught up: bench/inspect/run.mjs.) The page cancels by terminating the worker.
//
// In:  { file: File, top: number, now: number }
// Out: { type: 'progress', bytes, keys } at most every PROGRESS_MS, then { type: 'done', summary: <JSON text> }
//      or { type: 'error', message, bytes }.

import init, { RdbInspect } from '../../pkg-rdb/replicast_wasm.js';

/** Bytes read from the file at a time: large enough that the per-read cost vanishes, small next to any heap. */
const CHUNK = 2 * 1024 * 1024;
const PROGRESS_MS = 100;

/** The file's bytes in order, as views into one reused buffer where the browser can (a byte stream), else as
 * the stream's own chunks. Each view is valid until the next one is asked for. */
async function* chunks(file) {
  const stream = file.stream();
  let byob = null;
  try {
    byob = stream.getReader({ mode: 'byob' });
  } catch {
    // Not a byte stream in this browser: its default reader hands out fresh chunks.
  }
  if (!byob) {
    const reader = stream.getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) yield r.value;
    return;
  }
  let buffer = new ArrayBuffer(CHUNK);
  for (;;) {
    const { done, value } = await byob.read(new Uint8Array(buffer));
    if (done) return;
    yield value;
    // The read took the buffer over (detached it); it comes back as the view's own.
    buffer = value.buffer;
  }
}

self.onmessage = async ({ data: { file, top, now } }) => {
  let bytes = 0;
  try {
    await init();
    const inspect = new RdbInspect(top, now);
    let reported = 0;
    for await (const chunk of chunks(file)) {
      inspect.push(chunk);
      bytes += chunk.length;
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
