// The dashboard's frame work at 20, 200 and 1,000 simulated hosts (or --hosts), in headless Chromium: a release relay
// with its embedded redis-server and in-process collector (`serve --demo-hosts N`, one sample per host a second),
// every window filled first with a sample a second before the collector's first (--window seconds of them), then,
// once the page has read every host's window, the page's own frame meter (`replicastDashboard.frameTimes`: the time spent in the page's change and tick
// callbacks per animation frame) read over --seconds, in the overview and in a host detail, with everything open:
// the overview sorted by CPU and grouped by role, with its heatmap and alert list (rules evaluated on every host);
// the detail with its crosshair shown and the CPU chart's table open. Of the overview's frames, the time spent in
// reads of its client alone (`replicastDashboard.readTimes`: the calls into wasm, apart from drawing) is given too,
// per frame that read and in total a second: at one sample per host a second, the second's reads are what reading
// every host's new sample costs. The demo collector writes every host at once each second, so that one frame has
// every host's new sample to read (the worst case of the per-frame read); with --spread the bench writes the
// simulated hosts itself instead (`web-01`, `db-01`…, the samples of tests/support/perf-samples.mjs), each once a
// second but spread evenly over it, so that at 1,000 hosts and 60 frames a second each frame has ~17 (the
// realistic case). Before that, --loads fresh loads of the page,
// each timed from navigation to its milestones (the session live, the first change, the first tile drawn with a
// sample) and to every sparkline filled in (the page joins with a small window and then asks for its own).
//
//   bash scripts/build.sh release
//   node bench/dashboard/run.mjs [--hosts 20,200,1000] [--seconds 20] [--window 120] [--loads 3] [--spread]
//     [--profile]
//
// Target (issue 24): with 1,000 hosts at 1 Hz and those views open, median frame work under 8 ms. REPLICAST_BIN
// picks another relay binary (bench/run.mjs --smoke uses the debug one). Ends with a `RESULT {json}` line for
// bench/run.mjs.
import { spawn, execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import { once } from 'node:events';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { launchBrowser, repoRoot } from '../../tests/support/processes.mjs';
import { writeSamples, perfSample } from '../../tests/support/perf-samples.mjs';
import { printResult, spread } from '../support.mjs';

const { values: opts } = parseArgs({
  options: {
    hosts: { type: 'string', default: '20,200,1000' },
    seconds: { type: 'string', default: '20' },
    window: { type: 'string', default: '120' },
    loads: { type: 'string', default: '3' },
    profile: { type: 'boolean', default: false },
    spread: { type: 'boolean', default: false },
  },
});
const bin = process.env.REPLICAST_BIN ?? path.join(repoRoot, 'target/release/replicast');
const seconds = Number(opts.seconds);
const windowSize = Number(opts.window);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Samples written to Redis per `redis-cli --pipe` while filling the windows. */
const FILL_BATCH = 50_000;

/** Starts the relay with its embedded Redis and demo collector; resolves with the page and Redis URLs. */
async function startRelay(hosts) {
  // The demo collector writes this machine's samples too: N hosts are it and N − 1 simulated ones, so that 10,000
  // hosts are within the 10,000 keys a subscription may match.
  // With --spread, the collector writes this machine alone, and spreadWriter the others.
  const demoHosts = opts.spread ? 0 : hosts - 1;
  const child = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--demo-hosts', String(demoHosts)], {
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

/** Simulated host names as the demo collector gives them: `web-01`, `db-01`, `cache-01`, `queue-01`, `web-02`… */
const spreadHost = (i) => `${['web', 'db', 'cache', 'queue'][i % 4]}-${String(Math.floor(i / 4) + 1).padStart(2, '0')}`;

/**
 * Writes `hosts` simulated hosts (--spread) once a second each, spread evenly over the second: every 10 ms the
 * hosts due by then, through one Redis connection whose replies are read and dropped. Resolves with `stop()`.
 */
async function spreadWriter(redisUrl, hosts) {
  const socket = net.connect(Number(new URL(redisUrl).port), '127.0.0.1');
  await once(socket, 'connect');
  socket.on('data', () => {});
  const start = Date.now();
  let written = 0;
  const timer = setInterval(() => {
    const due = Math.floor(((Date.now() - start) * hosts) / 1000);
    let out = '';
    for (; written < due; written += 1) {
      const host = spreadHost(written % hosts);
      const t = Date.now();
      out += resp(['ZADD', `perf:${host}`, t, JSON.stringify(perfSample(host, t))]);
      out += resp(['ZREMRANGEBYRANK', `perf:${host}`, 0, -3601]);
    }
    if (out) socket.write(out);
  }, 10);
  return { stop: () => { clearInterval(timer); socket.destroy(); } };
}

function resp(args) {
  let out = `*${args.length}\r\n`;
  for (const a of args) out += `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`;
  return out;
}

function summary(times) {
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { frames: sorted.length, p25: at(0.25), median: at(0.5), p75: at(0.75), p95: at(0.95), max: sorted.at(-1) };
}

/**
 * Fills every host's window: `windowSize` samples a second apart before the oldest the collector has written, for
 * each of its keys (once all `hosts` are there), so the page sees full windows at the collector's own interval.
 */
async function fillWindows(redisUrl, hosts) {
  const { port } = new URL(redisUrl);
  const cli = (...args) => promisify(execFile)('redis-cli', ['-p', port, ...args], { maxBuffer: 64 << 20 })
    .then((r) => r.stdout.trim());
  let keys = [];
  while (keys.length < hosts) {
    await sleep(200);
    keys = (await cli('--scan', '--pattern', 'perf:*')).split('\n').filter(Boolean);
  }
  const oldest = Number((await cli('ZRANGE', keys[0], '0', '0', 'WITHSCORES')).split('\n')[1]);
  // In batches: at 10,000 hosts the whole fill is over a gigabyte of commands, more than one string can hold.
  let samples = [];
  for (const key of keys) {
    for (let s = windowSize; s > 0; s -= 1) samples.push({ host: key.slice('perf:'.length), t: oldest - s * 1000 });
    if (samples.length >= FILL_BATCH) {
      await writeSamples(port, samples, { keep: 3600 });
      samples = [];
    }
  }
  if (samples.length) await writeSamples(port, samples, { keep: 3600 });
}

/**
 * The relay's own rows of /metrics that say what a join cost it: its joins' and snapshot reads' time and count,
 * and snapshots answered by its state or read from Redis.
 */
async function relayCounters(pageUrl) {
  const text = await (await fetch(new URL('/metrics', pageUrl))).text();
  const value = (name) => Number(text.match(new RegExp(`^${name} (\\S+)$`, 'm'))?.[1] ?? NaN);
  return Object.fromEntries(['replicast_join_duration_seconds_sum', 'replicast_join_duration_seconds_count',
    'replicast_snapshot_duration_seconds_sum', 'replicast_snapshot_duration_seconds_count',
    'replicast_state_snapshots_total', 'replicast_snapshots_total'].map((name) => [name, value(name)]));
}

/**
 * What the relay did between two reads of relayCounters: its joins' time (the overview's, and the notes' small one
 * beside it), and where their snapshots came from.
 */
function relayWork(before, after) {
  const d = (name) => after[name] - before[name];
  return {
    joins: d('replicast_join_duration_seconds_count'),
    joinMs: 1000 * d('replicast_join_duration_seconds_sum'),
    snapshotReadMs: 1000 * d('replicast_snapshot_duration_seconds_sum'),
    fromState: d('replicast_state_snapshots_total'),
    fromRedis: d('replicast_snapshots_total'),
  };
}

/** The page's load milestones (frames.js `milestone`), in the order a load reaches them. */
const MILESTONES = ['live', 'first-change', 'first-live-frame'];

/**
 * Waits until every host's series holds as many samples as the overview asks for, once it asked for more than its
 * first 2 (the page joins with a small window and asks for the one it needs, within OVERVIEW_SAMPLES and what kept
 * up with the stream, once it knows the hosts). Resolves with when that was, in ms from navigation, and the samples.
 */
async function filled(page) {
  await page.waitForFunction(() => {
    const d = globalThis.replicastDashboard;
    return d?.hosts.length && d.samples > 2 && d.hosts.every((h) => h.series?.times.length >= d.samples);
  }, null, { timeout: 300_000, polling: 250 });
  return page.evaluate(() => ({ at: performance.now(), samples: globalThis.replicastDashboard.samples }));
}

/** When a freshly opened page reached each milestone, and filled every sparkline, in ms from its navigation. */
async function milestones(page) {
  await page.waitForFunction(() => performance.getEntriesByName('replicast:first-live-frame').length, null,
    { timeout: 180_000 });
  const reached = await page.evaluate((names) => Object.fromEntries(names.map((m) => [m,
    performance.getEntriesByName(`replicast:${m}`)[0]?.startTime ?? NaN])), MILESTONES);
  // Said before waiting for every sparkline, which can take minutes at 10,000 hosts.
  console.log(`  ${MILESTONES.map((m) => `${m} ${(reached[m] / 1000).toFixed(2)} s`).join(', ')}`);
  const { at, samples } = await filled(page);
  return { ...reached, filled: at, samples };
}

/**
 * Starts Chromium's sampling profiler on `page`; `stop()` resolves with the functions that took most of the time
 * themselves (self time, in percent of all samples).
 */
async function startProfile(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.start');
  return {
    stop: async () => {
      const { profile } = await cdp.send('Profiler.stop');
      const self = new Map();
      const byId = new Map(profile.nodes.map((n) => [n.id, n]));
      for (const id of profile.samples) {
        const { callFrame: f } = byId.get(id);
        const name = `${f.functionName || '(anonymous)'} ${f.url.split('/').pop()}:${f.lineNumber + 1}`;
        self.set(name, (self.get(name) ?? 0) + 1);
      }
      return [...self].sort((a, b) => b[1] - a[1]).slice(0, 15)
        .map(([name, n]) => `  ${((100 * n) / profile.samples.length).toFixed(1)}% ${name}`).join('\n');
    },
  };
}

const fs = (s) => `${(s.median / 1000).toFixed(2)} s (${(s.min / 1000).toFixed(2)}–${(s.max / 1000).toFixed(2)})`;

async function measure(page) {
  await page.evaluate(() => {
    globalThis.replicastDashboard.frameTimes.length = 0;
    globalThis.replicastDashboard.readTimes.length = 0;
  });
  const t0 = Date.now();
  await sleep(seconds * 1000);
  const frames = await page.evaluate(() => globalThis.replicastDashboard.frameTimes.slice());
  const reads = await page.evaluate(() => globalThis.replicastDashboard.readTimes.slice());
  const elapsed = (Date.now() - t0) / 1000;
  // How far behind the newest sample the page's hosts are: a page that keeps its frames light by falling behind
  // shows it here.
  const behind = summary(await page.evaluate(() => {
    const d = globalThis.replicastDashboard;
    return d.hosts.map((h) => d.newestT - h.t).filter((v) => !Number.isNaN(v));
  }));
  const read = summary(reads);
  return {
    ...summary(frames), perSecond: frames.reduce((a, b) => a + b, 0) / elapsed,
    behindMedian: behind.median, behindP95: behind.p95, behindMax: behind.max,
    reads: { frames: read.frames, median: read.median, p25: read.p25, p75: read.p75, p95: read.p95, max: read.max,
      perSecond: reads.reduce((a, b) => a + b, 0) / elapsed },
  };
}

const { browser, stop } = await launchBrowser();
const results = [];
try {
  for (const hosts of opts.hosts.split(',').map(Number)) {
    const relay = await startRelay(hosts);
    const writer = opts.spread ? await spreadWriter(relay.redis, hosts - 1) : null;
    try {
      await fillWindows(relay.redis, hosts);
      const loads = [];
      for (let i = 0; i < Number(opts.loads); i += 1) {
        const load = await browser.newPage({ viewport: { width: 1400, height: 900 } });
        const before = await relayCounters(relay.page);
        // With --profile, the first load is profiled from its navigation's commit (before its script runs) to its
        // first live frame.
        const loadProfiler = opts.profile && i === 0;
        await load.goto(`${relay.page}?window=${windowSize}#sort=cpu&group=role`,
          loadProfiler ? { waitUntil: 'commit' } : undefined);
        const profiler = loadProfiler ? await startProfile(load) : null;
        await load.waitForFunction(() => performance.getEntriesByName('replicast:live').length, null,
          { timeout: 180_000 });
        // The first join alone: the page's resize joins again once it has drawn its first frame.
        const relayJoin = relayWork(before, await relayCounters(relay.page));
        if (profiler) {
          await load.waitForFunction(() => performance.getEntriesByName('replicast:first-live-frame').length, null,
            { timeout: 180_000 });
          console.log(`${hosts} hosts, load 1 to its first live frame, self time by function:\n${await profiler.stop()}`);
        }
        loads.push({ ...await milestones(load), relayJoin: relayJoin.joinMs });
        console.log(`${hosts} hosts, load ${i + 1}: ${MILESTONES.map((m) => `${m} ${(loads[i][m] / 1000).toFixed(2)} s`)
          .join(', ')}, every sparkline at its ${loads[i].samples} samples ${(loads[i].filled / 1000).toFixed(2)} s; `
          + `the relay's join ${(relayJoin.joinMs / 1000).toFixed(2)} s (${relayJoin.joins} joins, snapshot reads `
          + `${(relayJoin.snapshotReadMs / 1000).toFixed(2)} s: ${relayJoin.fromState} from its state, `
          + `${relayJoin.fromRedis} from Redis)`);
        await load.close();
      }
      const first = Object.fromEntries([...MILESTONES, 'filled', 'relayJoin']
        .map((m) => [m, spread(loads.map((l) => l[m]))]));
      console.log(`${hosts} hosts, ${loads.length} loads, from navigation (median, min–max): `
        + MILESTONES.map((m) => `${m} ${fs(first[m])}`).join(', ') + `; the relay's join ${fs(first.relayJoin)}`
        + `; every sparkline filled in ${fs(first.filled)}`);
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      const opened = Date.now();
      // ?window= in seconds; the rules' default thresholds, so the alert list has what the simulation's hot hosts do.
      await page.goto(`${relay.page}?window=${windowSize}#sort=cpu&group=role`);
      await page.waitForFunction((n) => globalThis.replicastDashboard?.hosts.length >= n, hosts, { timeout: 180_000 });
      const tiles = Date.now();
      // Steady state: every host's window read once (its rule fields scanned, its alerts replayed) and in the heatmap.
      await page.waitForFunction((n) => globalThis.replicastDashboard.hosts.every((h) => h.fed !== undefined)
        && Number(document.getElementById('heatmap').dataset.rows) >= n, hosts, { timeout: 120_000 });
      await filled(page);
      console.log(`${hosts} hosts on the page ${((tiles - opened) / 1000).toFixed(1)} s after it opened, every window `
        + `read ${((Date.now() - opened) / 1000).toFixed(1)} s after`);
      await sleep(3000);
      const profiler = opts.profile ? await startProfile(page) : null;
      const overview = await measure(page);
      if (profiler) console.log(`${hosts} hosts, overview, self time by function:\n${await profiler.stop()}`);
      await page.evaluate(() => { location.hash = 'host=web-01&sort=cpu&group=role'; });
      await page.waitForSelector('#detail[data-t]', { timeout: 60_000 });
      const plot = await page.locator('#detail .chart:first-child svg.plot').boundingBox();
      await page.mouse.move(plot.x + plot.width * 0.6, plot.y + plot.height / 2);
      await page.click('#detail .chart:first-child summary');
      await sleep(2000);
      const detail = await measure(page);
      const f = (s) => `median ${s.median.toFixed(2)} ms (p25–p75 ${s.p25.toFixed(2)}–${s.p75.toFixed(2)}), `
        + `p95 ${s.p95.toFixed(2)} ms, max ${s.max.toFixed(1)} ms over ${s.frames} frames; `
        + `${s.perSecond.toFixed(1)} ms of work a second; hosts behind the newest sample by `
        + `${(s.behindMedian / 1000).toFixed(1)} s (p95 ${(s.behindP95 / 1000).toFixed(1)} s, max ${(s.behindMax / 1000).toFixed(1)} s)`;
      console.log(`${hosts} hosts (+ this machine), window ${windowSize}: overview ${f(overview)}`);
      console.log(`${hosts} hosts, host detail: ${f(detail)}`);
      const r = overview.reads;
      console.log(`${hosts} hosts${opts.spread ? ', spread' : ''}, overview, the client's reads alone: median `
        + `${r.median?.toFixed(3)} ms (p25–p75 ${r.p25?.toFixed(3)}–${r.p75?.toFixed(3)}), p95 ${r.p95?.toFixed(3)} ms, `
        + `max ${r.max?.toFixed(3)} ms over ${r.frames} frames that read; ${r.perSecond.toFixed(2)} ms of reads a second`);
      results.push({
        hosts, view: 'overview', ...overview, firstLiveFrame: first['first-live-frame'], filled: first.filled,
      },
        { hosts, view: 'host detail', ...detail });
      await page.close();
    } finally {
      writer?.stop();
      await relay.stop();
    }
  }
  console.log(`Chromium ${browser.version()}, ${seconds} s per view; load average ${(await import('node:os')).loadavg()[0].toFixed(2)}`);
  printResult('dashboard', {
    engine: `Chromium ${browser.version()}`, seconds, window: windowSize, spread: opts.spread, results,
  });
} finally {
  await stop();
}
