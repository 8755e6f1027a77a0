// The wasm parser in headless Chromium: parses the recorded 200,000-ZADD stream (bench/resp/record.mjs) in a
// page, in wasm, driven by playwright-core.
//
//   source scripts/lib.sh && with_wasm_env wasm-pack build wasm --release --target web \
//     --out-dir ../target/bench-resp/pkg-web -- --features bench
//   node bench/resp/chromium.mjs [STREAM] [--runs 15] [--pkg DIR]
//
// The plain JavaScript parser of js-parser.mjs runs on the same bytes beside it. --pkg is a web package (default
// target/bench-resp/pkg-web; wasm/pkg works too). CHROMIUM picks the browser binary (see
// tests/support/processes.mjs). Ends with a `RESULT {json}` line for bench/run.mjs.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { format } from './measure.js';
import { openBenchPage, printResult } from '../support.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');
const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    runs: { type: 'string', default: '15' },
    pkg: { type: 'string', default: path.join(repoRoot, 'target/bench-resp/pkg-web') },
  },
});
const streamPath = positionals[0] ?? path.join(repoRoot, 'target/bench-resp/zadd-200k.resp');
const files = {
  '/': [path.join(here, 'page.html'), 'text/html'],
  '/measure.js': [path.join(here, 'measure.js'), 'text/javascript'],
  '/js-parser.mjs': [path.join(here, 'js-parser.mjs'), 'text/javascript'],
  '/pkg/replicast_wasm.js': [path.join(opts.pkg, 'replicast_wasm.js'), 'text/javascript'],
  '/pkg/replicast_wasm_bg.wasm': [path.join(opts.pkg, 'replicast_wasm_bg.wasm'), 'application/wasm'],
  '/stream': [streamPath, 'application/octet-stream'],
};

const { page, browser, close } = await openBenchPage(files);
try {
  const version = browser.version();
  const results = await page.evaluate((runs) => window.runBench({ runs }), Number(opts.runs));
  console.log(`Chromium ${version}, ${streamPath}`);
  for (const r of results) console.log(format(`${r.parser} in Chromium`, r));
  printResult('resp-chromium', { engine: `Chromium ${version}`, results });
} finally {
  await close();
}
