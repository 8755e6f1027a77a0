// The dashboard's frame work at 20, 200 and 1,000 simulated hosts (or --hosts), in headless Chromium: a release relay
// with its embedded redis-server and in-process collector (`serve --demo-hosts N`, one sample per host a second),
// windows filled first, then the page's own frame meter (`replicastDashboard.frameTimes`: the time spent in the
// page's change and tick callbacks per animation frame) read over --seconds, in the overview and in a host detail.
//
//   cargo build --release -p replicast-server && bash scripts/build.sh release
//   node bench/dashboard/run.mjs [--hosts 20,200,1000] [--seconds 20] [--window 120]
//
// Target (issue 7): with 200 hosts at 1 Hz, median frame work under 8 ms. REPLICAST_BIN picks another relay
// binary (bench/run.mjs --smoke uses the debug one). Ends with a `RESULT {json}` line for bench/run.mjs.
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { once } from 'node:events';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { launchBrowser, repoRoot } from '../../tests/support/processes.mjs';
import { printResult } from '../support.mjs';

const { values: opts } = parseArgs({
  options: {
    hosts: { type: 'string', default: '20,200,1000' },
    seconds: { type: 'string', default: '20' },
    window: { type: 'string', default: '120' },
  },
});
const bin = process.env.REPLICAST_BIN ?? path.join(repoRoot, 'target/release/replicast');
const seconds = Number(opts.seconds);
const windowSize = Number(opts.window);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts the relay with its embedded Redis and demo collector; resolves with the page and Redis URLs. */
async function startRelay(hosts) {
  const child = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--demo-hosts', String(hosts)], {
    stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RUST_LOG: 'warn' },
  });
  let seen = '';
  const urls = await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      seen += d;
      const page = seen.match(/live at (http:\/\/\S+)/);
      const redis = seen.match(/Embedded Redis: (redis:\/\/\S+)/);
      if (page && redis) resolve({ page: page[1], redis: redis[1] });
    });
    child.once('exit', (code) => reject(new Error(`relay exited (${code}): ${seen}`)));
  });
  return { ...urls, stop: async () => { child.kill('SIGTERM'); await once(child, 'exit'); } };
}

function summary(times) {
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { frames: sorted.length, median: at(0.5), p95: at(0.95), max: sorted.at(-1) };
}

async function measure(page) {
  await page.evaluate(() => { globalThis.replicastDashboard.frameTimes.length = 0; });
  const t0 = Date.now();
  await sleep(seconds * 1000);
  const frames = await page.evaluate(() => globalThis.replicastDashboard.frameTimes.slice());
  return { ...summary(frames), perSecond: frames.reduce((a, b) => a + b, 0) / ((Date.now() - t0) / 1000) };
}

const { browser, stop } = await launchBrowser();
const results = [];
try {
  for (const hosts of opts.hosts.split(',').map(Number)) {
    const relay = await startRelay(hosts);
    try {
      // Fill every window before measuring: `window` samples per host, written by the collector's --once mode.
      for (let i = 0; i < windowSize; i++) {
        await promisify(execFile)(bin, ['collect', '--redis-url', relay.redis, '--once', '--no-local',
          '--simulate', String(hosts)]);
      }
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      const opened = Date.now();
      await page.goto(`${relay.page}?window=${windowSize}`);
      await page.waitForFunction((n) => document.querySelectorAll('[data-host]').length >= n, hosts,
        { timeout: 180_000 });
      console.log(`${hosts} hosts on the page ${((Date.now() - opened) / 1000).toFixed(1)} s after it opened`);
      await sleep(3000);
      const overview = await measure(page);
      await page.evaluate(() => { location.hash = 'host=web-01'; });
      await sleep(2000);
      const detail = await measure(page);
      const f = (s) => `median ${s.median.toFixed(2)} ms, p95 ${s.p95.toFixed(2)} ms, max ${s.max.toFixed(1)} ms `
        + `over ${s.frames} frames; ${s.perSecond.toFixed(1)} ms of work a second`;
      console.log(`${hosts} hosts (+ this machine), window ${windowSize}: overview ${f(overview)}`);
      console.log(`${hosts} hosts, host detail: ${f(detail)}`);
      results.push({ hosts, view: 'overview', ...overview }, { hosts, view: 'host detail', ...detail });
      await page.close();
    } finally {
      await relay.stop();
    }
  }
  console.log(`Chromium ${browser.version()}, ${seconds} s per view; load average ${(await import('node:os')).loadavg()[0].toFixed(2)}`);
  printResult('dashboard', { engine: `Chromium ${browser.version()}`, seconds, window: windowSize, results });
} finally {
  await stop();
}
