// The assembler in headless Chromium: applies a recorded stream of 200,000 ZADDs over 20 keys to windows of
// 1,000, in wasm, in a page driven by playwright-core, and times the same messages parsed without being applied
// (the floor under the apply). See README.md here for the whole procedure.
//
//   node bench/assembler/chromium.mjs [STREAM] [--runs 15] [--pkg DIR]
//
// STREAM defaults to target/bench-assembler/zadd-200k-20.resp (with its .json beside it, from
// bench/resp/record.mjs); the wasm package (--pkg) to target/bench-assembler/pkg-web. CHROMIUM picks the browser.
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
    runs: { type: 'string', default: '15' },
    pkg: { type: 'string', default: path.join(repoRoot, 'target/bench-assembler/pkg-web') },
  },
});
const streamPath = positionals[0] ?? path.join(repoRoot, 'target/bench-assembler/zadd-200k-20.resp');
const meta = JSON.parse(await readFile(`${streamPath}.json`, 'utf8'));
const pkg = opts.pkg;
const files = {
  '/': [path.join(here, 'page.html'), 'text/html'],
  '/pkg/replicast_wasm.js': [path.join(pkg, 'replicast_wasm.js'), 'text/javascript'],
  '/pkg/replicast_wasm_bg.wasm': [path.join(pkg, 'replicast_wasm_bg.wasm'), 'application/wasm'],
  '/stream': [streamPath, 'application/octet-stream'],
};

const { page, browser, close } = await openBenchPage(files);
try {
  const r = await page.evaluate(({ start, runs }) => window.runApply({ start, runs }),
    { start: meta.start, runs: Number(opts.runs) });
  const rate = (ms) => r.commands / (ms / 1000) / 1e6;
  console.log(`Chromium ${browser.version()}, ${streamPath}: ${r.commands} commands (${r.bytes} bytes), `
    + `${r.keys} keys, ${r.members} members held`);
  console.log(`apply: ${rate(r.ms.median).toFixed(2)} M commands/s (min ${rate(r.ms.max).toFixed(2)}, `
    + `max ${rate(r.ms.min).toFixed(2)}); median of ${r.runs} runs ${r.ms.median.toFixed(1)} ms`);
  const parsed = r.parseMs && { median: rate(r.parseMs.median), min: rate(r.parseMs.max), max: rate(r.parseMs.min) };
  if (parsed) console.log(`parse only (decode and split into commands, nothing applied): ${parsed.median.toFixed(2)} `
    + `M commands/s (min ${parsed.min.toFixed(2)}, max ${parsed.max.toFixed(2)}); `
    + `median ${r.parseMs.median.toFixed(1)} ms`);
  printResult('assembler-apply', {
    engine: `Chromium ${browser.version()}`, ...r,
    'M commands/s': { median: rate(r.ms.median), min: rate(r.ms.max), max: rate(r.ms.min) },
    ...(parsed && { 'parse M commands/s': parsed }),
  });
} finally {
  await close();
}
