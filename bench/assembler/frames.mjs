// The per-frame boundary cost in headless Chromium: with 50 keys of 1,000-item windows, each frame brings one
// sample per key, then the page reads what changed (keys, times, a field's series, its statistics).
//
//   node bench/resp/record.mjs --commands 100000 --hosts 50 --out target/bench-assembler/zadd-100k-50.resp
//   node bench/assembler/frames.mjs [STREAM] [--frames 500] [--keys 50] [--window 1000] [--pkg DIR]
//
// The wasm package (--pkg) defaults to target/bench-assembler/pkg-web (see README.md here). Target: < 2 ms a frame.
// A fleet of 1,000 hosts as the dashboard shows it (windows of 120 samples, every host read each frame):
//
//   node bench/resp/record.mjs --commands 240000 --hosts 1000 --out target/bench-assembler/zadd-240k-1000.resp
//   node bench/assembler/frames.mjs target/bench-assembler/zadd-240k-1000.resp --keys 1000 --window 120 --frames 100
//
// --changed N: N samples a frame instead of one per key (--changed 17: 1,000 hosts once a second at 60 frames a
// second). The read of the changes (`track`, then `changes()` once a frame) is timed against the dashboard's read
// before it (`times` and `latest` of each changed key).
// Ends with a `RESULT {json}` line for bench/run.mjs.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { openBenchPage, printResult } from '../support.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');
const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    frames: { type: 'string', default: '500' },
    keys: { type: 'string', default: '50' },
    window: { type: 'string', default: '1000' },
    pkg: { type: 'string', default: path.join(repoRoot, 'target/bench-assembler/pkg-web') },
    changed: { type: 'string' },
  },
});
const streamPath = positionals[0] ?? path.join(repoRoot, 'target/bench-assembler/zadd-100k-50.resp');
const meta = JSON.parse(await readFile(`${streamPath}.json`, 'utf8'));
const pkg = opts.pkg;
const files = {
  '/': [path.join(here, 'frames.html'), 'text/html'],
  '/pkg/replicast_wasm.js': [path.join(pkg, 'replicast_wasm.js'), 'text/javascript'],
  '/pkg/replicast_wasm_bg.wasm': [path.join(pkg, 'replicast_wasm_bg.wasm'), 'application/wasm'],
  '/stream': [streamPath, 'application/octet-stream'],
};
const { page, browser, close } = await openBenchPage(files);
try {
  const keys = Number(opts.keys);
  const r = await page.evaluate((o) => window.runFrames(o), {
    start: meta.start, keys, window: Number(opts.window), frames: Number(opts.frames),
    changed: Number(opts.changed ?? keys),
  });
  const f = (s) => `median ${s.median.toFixed(3)} ms, p95 ${s.p95.toFixed(3)}, max ${s.max.toFixed(3)}, mean ${s.mean.toFixed(4)}`;
  console.log(`Chromium ${browser.version()}: ${r.frames} frames, ${r.keys} keys, windows of ${opts.window}`);
  console.log(`apply (one message of ${r.changedPerFrame} ZADDs): ${f(r.apply)}`);
  if (r.changes) console.log(`changes() of the ${keys} tracked keys, its rows read (${r.rowsRead / r.frames} a frame): ${f(r.changes)}`);
  console.log(`times + latest of each changed key (the dashboard's read before changes()): ${f(r.perKey)}`);
  console.log(`bulk read (changed keys, then newestOf of them, one call): ${f(r.bulk)}`);
  console.log(`boundary (times, series, stats for each changed key): ${f(r.boundary)}`);
  for (const [part, s] of Object.entries(r.parts)) console.log(`  of which ${part}: ${f(s)}`);
  printResult('assembler-frames', { engine: `Chromium ${browser.version()}`, ...r });
} finally {
  await close();
}
