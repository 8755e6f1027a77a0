// The wasm client a page uses (`Replicast`, wasm/src/web/client.rs) against a real relay and redis-server in a
// real Chromium: windows, typed-array series and the newest item equal what Redis holds; one change callback per
// animation frame; statuses through a relay restart; resume without a reload.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, startRelay, launchBrowser } from './support/processes.mjs';

let redis;
let relay;
let chromium;

before(async () => {
  redis = await startRedis();
  relay = await startRelay({ redisUrl: redis.url });
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.stop();
  await relay?.stop();
  await redis?.stop();
});

/** Opens a page on the relay and starts a client in it, exposed as `window.client`; changes go to `window.changes`. */
async function openClient(options) {
  const page = await chromium.browser.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err));
  await page.goto(relay.url);
  await page.evaluate(async (options) => {
    const { default: init, Replicast } = await import('/pkg/replicast_wasm.js');
    await init();
    window.changes = [];
    window.statuses = [];
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    window.client = new Replicast(`${scheme}://${location.host}/ws`, options);
    window.client.onStatus((s) => window.statuses.push(s));
    window.client.onChange((c) => window.changes.push({ ...c, at: performance.now() }));
  }, options);
  return { page, errors };
}

/** Redis's newest `n` members of `key`, oldest first, parsed. */
async function newest(key, n) {
  const out = (await redis.cli('ZRANGE', key, String(-n), '-1')).split('\n').filter(Boolean);
  return out.map((m) => JSON.parse(m));
}

test('windows, series and the newest item equal what Redis holds, live', async () => {
  const t0 = Date.now();
  for (let i = 0; i < 5; i++) {
    await redis.cli('ZADD', 'perf:c1', String(t0 + i), JSON.stringify({ id: `a${i}`, t: t0 + i, cpu: { total: i * 10 } }));
  }
  const { page, errors } = await openClient({ patterns: ['perf:c*'], window: 3 });
  await page.waitForFunction(() => window.client.status === 'live', null, { timeout: 20_000 });
  await page.waitForFunction(() => window.client.len('perf:c1') === 3, null, { timeout: 10_000 });

  for (let i = 5; i < 8; i++) {
    await redis.cli('ZADD', 'perf:c1', String(t0 + i), JSON.stringify({ id: `a${i}`, t: t0 + i, cpu: { total: i * 10 } }));
  }
  await redis.cli('ZADD', 'perf:c2', String(t0), '{"id":"b0","cpu":{"total":1}}');
  await redis.cli('ZADD', 'other:x', '1', 'not watched');
  await page.waitForFunction(() => window.client.latest('perf:c1')?.id === 'a7', null, { timeout: 10_000 });
  await page.waitForFunction(() => window.client.keys().length === 2, null, { timeout: 10_000 });

  const seen = await page.evaluate(() => ({
    keys: window.client.keys(),
    series: Array.from(window.client.series('perf:c1', 'cpu.total')),
    missing: Array.from(window.client.series('perf:c1', 'mem.used')),
    times: Array.from(window.client.times('perf:c1')),
    latest: window.client.latest('perf:c1'),
    window: window.client.window('perf:c1'),
    isTyped: window.client.series('perf:c1', 'cpu.total') instanceof Float64Array,
  }));
  const expected = await newest('perf:c1', 3);
  assert.deepEqual(seen.keys, ['perf:c1', 'perf:c2']);
  assert.deepEqual(seen.series, expected.map((s) => s.cpu.total), 'oldest first, as ZRANGE');
  assert.ok(seen.missing.every(Number.isNaN), 'a missing field is NaN');
  assert.deepEqual(seen.times, expected.map((s) => s.t));
  assert.deepEqual(seen.latest, expected.at(-1));
  assert.equal(seen.window.type, 'zset');
  assert.deepEqual(seen.window.items.map((i) => JSON.parse(i.member)), expected.reverse(), 'newest first');
  assert.ok(seen.isTyped);

  // Changes come at most once per animation frame, and name the keys that changed.
  const changes = await page.evaluate(() => window.changes);
  assert.ok(changes.some((c) => c.keys.includes('perf:c2')), JSON.stringify(changes));
  for (let i = 1; i < changes.length; i++) assert.ok(changes[i].at > changes[i - 1].at);
  assert.deepEqual(errors, []);
  await page.close();
});

test('statuses go offline when the relay dies and live again, with what was written meanwhile', async () => {
  const { page } = await openClient({ patterns: ['perf:r*'], window: 10 });
  await page.waitForFunction(() => window.client.status === 'live', null, { timeout: 20_000 });
  await redis.cli('ZADD', 'perf:r1', '1', '{"id":"before"}');
  await page.waitForFunction(() => window.client.len('perf:r1') === 1, null, { timeout: 10_000 });

  const { listen } = relay;
  await relay.stop();
  await page.waitForFunction(() => window.client.status === 'offline', null, { timeout: 10_000 });
  // Written while the relay is down: the restarted relay has no backlog from before, so this comes by snapshot.
  await redis.cli('ZADD', 'perf:r1', '2', '{"id":"during"}');
  relay = await startRelay({ redisUrl: redis.url, listen });
  await page.waitForFunction(() => window.client.status === 'live', null, { timeout: 20_000 });
  await redis.cli('ZADD', 'perf:r1', '3', '{"id":"after"}');
  await page.waitForFunction(() => window.client.len('perf:r1') === 3, null, { timeout: 10_000 });
  const ids = await page.evaluate(() => window.client.window('perf:r1').items.map((i) => JSON.parse(i.member).id));
  assert.deepEqual(ids, ['after', 'during', 'before']);
  const statuses = await page.evaluate(() => window.statuses);
  assert.deepEqual(statuses.slice(0, 2), ['connecting', 'live']);
  assert.ok(statuses.includes('offline'), statuses.join());
  assert.equal(statuses.at(-1), 'live');
  await page.close();
});
