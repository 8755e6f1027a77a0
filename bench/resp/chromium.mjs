// The wasm parser in headless Chromium: parses the recorded 200,000-ZADD stream (bench/resp/record.mjs) in a
// page, in wasm, driven by playwright-core.
//
//   source scripts/lib.sh && with_wasm_env wasm-pack build wasm --release --target web \
//     --out-dir ../target/bench-resp/pkg-web
//   node bench/resp/chromium.mjs [STREAM]
//
// CHROMIUM picks the browser binary (see tests/support/processes.mjs).
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser } from '../../tests/support/processes.mjs';
import { format } from './measure.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');
const streamPath = process.argv[2] ?? path.join(repoRoot, 'target/bench-resp/zadd-200k.resp');
const files = {
  '/': [path.join(here, 'page.html'), 'text/html'],
  '/measure.js': [path.join(here, 'measure.js'), 'text/javascript'],
  '/pkg/replicast_wasm.js': [path.join(repoRoot, 'target/bench-resp/pkg-web/replicast_wasm.js'), 'text/javascript'],
  '/pkg/replicast_wasm_bg.wasm': [path.join(repoRoot, 'target/bench-resp/pkg-web/replicast_wasm_bg.wasm'), 'application/wasm'],
  '/stream': [streamPath, 'application/octet-stream'],
};

const server = createServer(async (req, res) => {
  const file = files[req.url];
  if (!file) {
    res.writeHead(req.url === '/favicon.ico' ? 204 : 404).end();
    return;
  }
  res.writeHead(200, { 'content-type': file[1] }).end(await readFile(file[0]));
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const { browser, stop } = await launchBrowser();
try {
  const page = await browser.newPage();
  page.on('console', (m) => console.log(`page: ${m.text()}`));
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  const version = browser.version();
  const results = await page.evaluate(() => window.runBench());
  console.log(`Chromium ${version}, ${streamPath}`);
  for (const r of results) console.log(format('wasm in Chromium', r));
} finally {
  await stop();
  server.close();
}
