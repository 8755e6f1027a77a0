// The dashboard end to end: samples written to a real Redis as the collector writes them become tiles, charts and
// fleet numbers in a real browser, through the relay and the wasm assembler. The page opens on a snapshot, follows
// every new sample, marks hosts that go silent or appear, shows its connection state and recovers when the relay
// comes back. Screenshots go to target/screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { access, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { startRedis, startRelay, launchBrowser, repoRoot } from './support/processes.mjs';
import { writeSamples } from './support/perf-samples.mjs';

const HOSTS = [
  'cache-01', 'cache-02', 'db-01', 'db-02', 'db-03', 'web-01', 'web-02', 'web-03', 'web-04', 'worker-01',
  'worker-02', 'worker-03',
];
const HISTORY_S = 60;
const shots = path.join(repoRoot, 'target/screenshots');

let redis;
let relay;
let chromium;
let page;
const errors = [];
/** Hosts the writer reports for, once a second. */
const reporting = new Set(HOSTS);
let writer;
/** The writer's writes not finished yet: each spawns a redis-cli, which can take longer than a second. */
const writing = new Set();

before(async () => {
  await access(path.join(repoRoot, 'www/vendor/d3.min.js')).catch(() => {
    throw new Error('www/vendor/d3.min.js is missing: run scripts/build.sh (it copies d3 from node_modules)');
  });
  await mkdir(shots, { recursive: true });
  redis = await startRedis();
  const now = Date.now();
  const history = [];
  for (const host of HOSTS) for (let s = HISTORY_S; s > 0; s -= 1) history.push({ host, t: now - s * 1000 });
  await writeSamples(redis.port, history);
  // Not a watched key: never a tile.
  await redis.cli('ZADD', 'other:web-01', String(now), '{"cpu":{"total":1}}');
  startWriter();
  relay = await startRelay({ redisUrl: redis.url });
  chromium = await launchBrowser();
  page = await chromium.browser.newPage({ viewport: { width: 1440, height: 960 }, colorScheme: 'dark' });
  page.on('pageerror', (err) => errors.push(err));
});

function startWriter() {
  writer = setInterval(() => {
    const t = Date.now();
    const write = writeSamples(redis.port, [...reporting].map((host) => ({ host, t })))
      .catch((err) => errors.push(err));
    writing.add(write);
    write.finally(() => writing.delete(write));
  }, 1000);
}

/** Stops the writer once its writes under way have reached Redis: after it, Redis's newest samples stay put. */
async function stopWriter() {
  clearInterval(writer);
  await Promise.all(writing);
}

after(async () => {
  await stopWriter();
  await chromium?.stop();
  await relay?.stop();
  await redis?.stop();
});

const tileOf = (host) => `#tiles a.tile[data-host="${host}"]`;

/** The newest sample of `host` in Redis. */
async function newestInRedis(host) {
  return JSON.parse(await redis.cli('ZRANGE', `perf:${host}`, '-1', '-1'));
}

/** The sample Redis holds for `host` at time `t`. */
async function sampleAt(host, t) {
  return JSON.parse(await redis.cli('ZRANGEBYSCORE', `perf:${host}`, String(t), String(t)));
}

/** Waits until `selector`'s data-t reaches `t`; returns its data-t, data-cpu and shown CPU, read at once. */
async function shownAtLeast(selector, t) {
  await page.waitForFunction(
    ([sel, min]) => Number(document.querySelector(sel)?.dataset.t) >= min,
    [selector, t],
    { timeout: 10_000 },
  );
  return page.$eval(selector, (el) => ({
    t: Number(el.dataset.t),
    cpu: Number(el.dataset.cpu),
    text: el.querySelector('.value.cpu')?.textContent,
  }));
}

test('every host in Redis gets a tile that shows its newest sample and follows new ones', async () => {
  // The overview's subscriptions, in the order the page sends them (the host detail's name one key, not perf:*).
  const windows = [];
  page.on('websocket', (ws) => ws.on('framesent', ({ payload }) => {
    const message = typeof payload === 'string' ? JSON.parse(payload) : null;
    if (message?.type === 'subscribe' && message.patterns?.includes('perf:*')) windows.push(message.window);
  }));
  await page.goto(relay.url);
  await page.waitForSelector('#status[data-state="live"]', { timeout: 20_000 });
  await page.waitForFunction((n) => document.querySelectorAll('#tiles a.tile').length === n, HOSTS.length, {
    timeout: 10_000,
  });
  const shown = await page.$$eval('#tiles a.tile', (tiles) => tiles.map((t) => t.dataset.host));
  assert.deepEqual(shown, HOSTS, 'one tile per perf:* key, in name order, and none for other:web-01');

  for (const host of ['web-01', 'db-02']) {
    const newest = await newestInRedis(host);
    const { t, cpu, text } = await shownAtLeast(tileOf(host), newest.t);
    const sample = await sampleAt(host, t);
    assert.equal(cpu, sample.cpu.total, `${host}: the tile's CPU is the sample's at ${t}`);
    assert.equal(text, `${sample.cpu.total.toFixed(1)}\u202f%`);
    // It keeps following: the next sample replaces it.
    const next = await shownAtLeast(tileOf(host), t + 1);
    assert.equal(next.cpu, (await sampleAt(host, next.t)).cpu.total);
  }

  // The first snapshot holds two samples a host, so the first tiles wait for little; then the page asks for the 2 min
  // window (about 121 samples: the interval it observed from two samples is a second give or take the writer's
  // jitter, tens of ms on a loaded machine), and the sparkline fills in with the history written before the page
  // opened.
  const points = `${tileOf('web-01')} .spark.cpu path`;
  await page.waitForFunction(([sel, n]) => document.querySelector(sel)?.getAttribute('d').split(/[ML]/).length - 1 >= n,
    [points, HISTORY_S], { timeout: 20_000 });
  // The interval read from two samples can be off (the gap between the history written before and the first live
  // sample, here): the page may deepen once more when it has read more, never more often.
  assert.ok(windows.length >= 2 && windows.length <= 3 && windows[0] === 2 && windows.at(-1) > HISTORY_S,
    `the overview subscribed with two samples a host, then with its window: ${windows}`);
  assert.equal(await page.textContent('#fleet [data-stat="hosts"] .value'), String(HOSTS.length));

  // The fleet's aggregates, from the assembler, equal those of each host's newest sample in Redis (writes paused).
  await stopWriter();
  const newestCpu = [];
  for (const host of HOSTS) {
    const sample = await newestInRedis(host);
    await shownAtLeast(tileOf(host), sample.t);
    newestCpu.push(sample.cpu.total);
  }
  newestCpu.sort((a, b) => a - b);
  const mean = newestCpu.reduce((a, b) => a + b, 0) / newestCpu.length;
  // The strip is redrawn a few times a second: wait for it to show the newest samples.
  await page.waitForFunction((m) => Math.abs(Number(document.getElementById('fleet').dataset.cpuMean) - m) < 1e-9, mean,
    { timeout: 10_000 });
  const fleet = await page.$eval('#fleet', (el) => ({ ...el.dataset }));
  startWriter();
  assert.ok(Math.abs(Number(fleet.cpuMean) - mean) < 1e-9, `fleet mean ${fleet.cpuMean}, Redis ${mean}`);
  assert.equal(Number(fleet.cpuP95), newestCpu[Math.ceil(0.95 * newestCpu.length) - 1], 'nearest-rank p95');
  assert.equal(Number(fleet.above), newestCpu.filter((v) => v > 80).length);

  const frames = await page.evaluate(() => globalThis.replicastDashboard.frameTimes.slice());
  const sorted = [...frames].sort((a, b) => a - b);
  console.log(`# ${frames.length} frames drawn, median ${sorted[sorted.length >> 1]?.toFixed(2)} ms of work`);
  assert.ok(frames.length > 0);
  await page.screenshot({ path: path.join(shots, 'dashboard.png') });
});

test('a host opens in detail from the keyboard and the URL, with its newest sample; "/" filters', async () => {
  await page.focus(tileOf('web-02'));
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => location.hash === '#host=web-02');
  await page.waitForSelector('#detail:not([hidden])[data-host="web-02"]');
  const newest = await newestInRedis('web-02');
  const { t, cpu } = await shownAtLeast('#detail', newest.t);
  assert.equal(cpu, (await sampleAt('web-02', t)).cpu.total);
  await page.waitForFunction(() => document.querySelectorAll('#detail .procs tbody tr').length === 3);
  const lines = await page.$$eval('#detail .charts .lines path', (ps) => ps.filter((p) => p.getAttribute('d')).length);
  assert.ok(lines >= 5, `${lines} chart lines drawn`);
  assert.deepEqual(
    await page.$$eval('#detail .tcp li', (lis) => lis.map((li) => li.dataset.state).sort()),
    ['ESTABLISHED', 'LISTEN', 'TIME_WAIT'],
  );
  await page.screenshot({ path: path.join(shots, 'host.png') });

  await page.keyboard.press('ArrowRight');
  await page.waitForSelector('#detail[data-host="web-03"]');
  await page.keyboard.press('Escape');
  await page.waitForSelector('#overview:not([hidden])');
  assert.equal(await page.evaluate(() => location.hash), '');

  // "/" filters the hosts, in the URL too; Escape clears the filter.
  await page.keyboard.press('/');
  await page.keyboard.type('web');
  await page.waitForFunction(() => document.querySelectorAll('#tiles a.tile').length === 4);
  assert.equal(await page.evaluate(() => location.hash), '#filter=web');
  await page.keyboard.press('Escape');
  await page.waitForFunction((n) => document.querySelectorAll('#tiles a.tile').length === n, HOSTS.length);

  // A link to a host opens on it.
  const other = await chromium.browser.newPage();
  other.on('pageerror', (err) => errors.push(err));
  await other.goto(`${relay.url}#host=db-01`);
  await other.waitForSelector('#detail:not([hidden])[data-host="db-01"][data-t]', { timeout: 20_000 });
  await other.close();
});

test('a host that stops reporting is marked silent, and one that appears is marked new', async () => {
  reporting.delete('worker-03');
  reporting.add('edge-01');
  await page.waitForSelector(`${tileOf('edge-01')}[data-state="new"]`, { timeout: 10_000 });
  await page.waitForSelector(`${tileOf('worker-03')}[data-state="silent"]`, { timeout: 15_000 });
  // The fleet strip redraws a few times a second, after the tiles: wait for it to say so too.
  await page.waitForFunction(
    () => /1 silent/.test(document.querySelector('#fleet [data-stat="hosts"] .sub')?.textContent ?? ''),
    null,
    { timeout: 20_000 },
  );
  assert.equal(await page.$eval(tileOf('web-01'), (el) => el.dataset.state), 'live');
});

test('the page shows offline when the relay dies and goes live again without a reload', async () => {
  await page.evaluate(() => { globalThis.notReloaded = true; });
  const { listen } = relay;
  await relay.stop();
  await page.waitForSelector('#status[data-state="offline"]', { timeout: 10_000 });

  relay = await startRelay({ redisUrl: redis.url, listen });
  const restarted = Date.now();
  await page.waitForSelector('#status[data-state="live"]', { timeout: 20_000 });
  const { t, cpu } = await shownAtLeast(tileOf('web-01'), restarted);
  assert.equal(cpu, (await sampleAt('web-01', t)).cpu.total);
  assert.equal(await page.evaluate(() => globalThis.notReloaded), true);
  assert.deepEqual(errors, []);
});
