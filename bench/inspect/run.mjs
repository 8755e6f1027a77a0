// The RDB inspector's benchmark: reads dumps in Chromium through www/inspect.html, served as a static site
// (scripts/inspector-site.sh, the release wasm/pkg-rdb that scripts/build.sh builds), RUNS times each, and prints
// the read's MB/s (from picking the file to the report drawn) and the memory the browser takes meanwhile: the peak
// RSS of Chromium's whole process tree (browser, renderer with its worker, GPU and utility processes, from /proc,
// every 100 ms) above what it held before the read, and the page's JS heap (CDP Performance.getMetrics); median
// and [min, max]. The file is never read whole: the worker streams it through one 2 MiB buffer.
// Usage: node bench/inspect/run.mjs [mixed.rdb biglist.rdb …]   (default: the dumps of bench/rdb/make-dumps.sh;
// env: RUNS=3). Not part of bench/run.mjs or npm test.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromiumRssMib, freePort, launchBrowser, repoRoot } from '../../tests/support/processes.mjs';
import { spread } from '../support.mjs';

const dir = process.env.RDB_BENCH_DIR ?? path.join(repoRoot, 'target/rdb-bench');
const runs = Number(process.env.RUNS ?? 3);
const files = process.argv.slice(2).length ? process.argv.slice(2) : ['mixed.rdb', 'biglist.rdb'].map((f) => path.join(dir, f));
for (const file of files) {
  if (!existsSync(file)) throw new Error(`${file} is missing: run bash bench/rdb/make-dumps.sh`);
}

const site = await mkdtemp(path.join(tmpdir(), 'replicast-inspect-bench-'));
execFileSync('bash', [path.join(repoRoot, 'scripts/inspector-site.sh'), site], { stdio: 'ignore' });
const port = await freePort();
const server = spawn('python3', ['-m', 'http.server', '--bind', '127.0.0.1', '-d', site, String(port)], { stdio: 'ignore' });
const chromium = await launchBrowser();
const results = [];
try {
  for (const file of files) {
    const bytes = statSync(file).size;
    const samples = { mbps: [], rss: [], heap: [] };
    for (let run = 0; run < runs; run += 1) {
      const page = await chromium.browser.newPage();
      const cdp = await page.context().newCDPSession(page);
      await cdp.send('Performance.enable');
      for (let tries = 0; ; tries += 1) {
        try { await page.goto(`http://127.0.0.1:${port}/inspect.html`); break; } catch (err) { if (tries > 50) throw err; await new Promise((r) => { setTimeout(r, 100); }); }
      }
      const before = chromiumRssMib();
      let peakRss = before;
      let peakHeap = 0;
      const sampler = setInterval(async () => {
        peakRss = Math.max(peakRss, chromiumRssMib());
        const { metrics } = await cdp.send('Performance.getMetrics').catch(() => ({ metrics: [] }));
        const heap = metrics.find((m) => m.name === 'JSHeapUsedSize')?.value ?? 0;
        peakHeap = Math.max(peakHeap, heap / 2 ** 20);
      }, 100);
      const started = performance.now();
      await page.setInputFiles('#file', file);
      await page.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.state), null, { timeout: 600_000, polling: 50 });
      const seconds = (performance.now() - started) / 1000;
      clearInterval(sampler);
      const state = await page.getAttribute('body', 'data-state');
      if (state !== 'done') throw new Error(`${file}: ${await page.textContent('#error')}`);
      samples.mbps.push(bytes / 1e6 / seconds);
      samples.rss.push(peakRss - before);
      samples.heap.push(peakHeap);
      console.log(`${path.basename(file)} run ${run + 1}: ${(bytes / 1e6 / seconds).toFixed(0)} MB/s, browser RSS +${(peakRss - before).toFixed(1)} MiB over ${before.toFixed(0)} MiB, page heap ${peakHeap.toFixed(1)} MiB`);
      await page.close();
    }
    const row = { file: path.basename(file), bytes, mbps: spread(samples.mbps), rssMib: spread(samples.rss), heapMib: spread(samples.heap) };
    results.push(row);
    console.log(JSON.stringify(row));
  }
} finally {
  await chromium.stop();
  server.kill();
  await rm(site, { recursive: true, force: true });
}
console.log(`RESULT ${JSON.stringify({ inspect: results })}`);
