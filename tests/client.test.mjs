// The wasm client a page uses (`Replicast`, wasm/src/web/client.rs) against a real relay and redis-server in a
// real Chromium: windows, typed-array series and the newest item equal what Redis holds; one change callback per
// animation frame; statuses through a relay restart; resume without a reload.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, startRelay, launchBrowser, openClient as openPage } from './support/processes.mjs';

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
const openClient = (options) => openPage(chromium.browser, relay, options);

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
    view: Array.from(window.client.seriesView('perf:c1', 'cpu.total')),
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
  assert.deepEqual(seen.view, seen.series, 'the zero-copy view holds the same numbers');

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

/** Runs one command with redis-cli's JSON output (RESP3: WITHSCORES pairs, maps as objects). */
async function json(...args) {
  return JSON.parse(await redis.cli('--json', ...args));
}

test('after a workload on every type, with removals and top-ups, each window equals Redis', async () => {
  const { page, errors } = await openClient({
    patterns: ['perf:t:*'], window: 3, aggregate: { fields: ['cpu'], time: 't' },
  });
  await page.waitForFunction(() => window.client.status === 'live', null, { timeout: 20_000 });
  const cli = (...args) => redis.cli(...args);
  for (let i = 1; i <= 6; i++) {
    await cli('ZADD', 'perf:t:z', String(i), JSON.stringify({ id: `z${i}`, t: i, cpu: i * 10 }));
    await cli('XADD', 'perf:t:s', `${i}-0`, 'cpu', String(i), 'n', `e${i}`);
    await cli('RPUSH', 'perf:t:l', `l${i}`);
    await cli('HSET', 'perf:t:h', `f${i % 4}`, String(i));
  }
  // Removals that leave windows shorter than what Redis holds: the client must ask for top-ups.
  await cli('ZREM', 'perf:t:z', JSON.stringify({ id: 'z6', t: 6, cpu: 60 }));
  await cli('ZINCRBY', 'perf:t:z', '10', JSON.stringify({ id: 'z2', t: 2, cpu: 20 }));
  await cli('ZPOPMAX', 'perf:t:z');
  await cli('XDEL', 'perf:t:s', '6-0');
  await cli('XTRIM', 'perf:t:s', 'MAXLEN', '4');
  await cli('RPOP', 'perf:t:l', '2');
  await cli('LPOP', 'perf:t:l');
  await cli('LSET', 'perf:t:l', '-1', 'changed');
  await cli('HINCRBY', 'perf:t:h', 'f1', '100');
  await cli('HDEL', 'perf:t:h', 'f2');
  await cli('SET', 'perf:t:str', '10');
  await cli('INCRBY', 'perf:t:str', '5');
  await cli('APPEND', 'perf:t:str', '0');
  await cli('SET', 'perf:t:gone', 'soon', 'PX', '300');
  // A script's writes reach replicas as one MULTI/EXEC block.
  await cli('EVAL', "redis.call('ZADD', KEYS[1], 7, ARGV[1]) redis.call('RPUSH', KEYS[2], 'l7') return 1", '2',
    'perf:t:z', 'perf:t:l', JSON.stringify({ id: 'z7', t: 7, cpu: 70 }));
  await cli('RENAME', 'perf:t:str', 'perf:t:renamed');

  const info = await redis.cli('INFO', 'replication');
  const target = Number(info.match(/master_repl_offset:(\d+)/)[1]);
  await page.waitForFunction((target) => window.client.offset >= target, target, { timeout: 10_000 });
  await page.waitForFunction(() => window.client.keys().every((k) => !window.client.window(k).stale)
    && !window.client.keys().includes('perf:t:gone'), null, { timeout: 10_000 });

  const seen = await page.evaluate(() => Object.fromEntries(window.client.keys().map((k) => [k, window.client.window(k)])));
  assert.deepEqual(Object.keys(seen).sort(), ['perf:t:h', 'perf:t:l', 'perf:t:renamed', 'perf:t:s', 'perf:t:z']);

  const zset = (await json('ZRANGE', 'perf:t:z', '-3', '-1', 'WITHSCORES')).reverse();
  assert.deepEqual(seen['perf:t:z'].items.map((i) => [i.member, i.score]), zset);
  const stream = await json('XREVRANGE', 'perf:t:s', '+', '-', 'COUNT', '3');
  assert.deepEqual(seen['perf:t:s'].items.map((i) => [i.id, i.fields.flat()]), stream);
  const list = (await json('LRANGE', 'perf:t:l', '-3', '-1')).reverse();
  assert.deepEqual(seen['perf:t:l'].items.map((i) => i.value), list);
  const hash = await json('HGETALL', 'perf:t:h');
  assert.deepEqual(Object.fromEntries(seen['perf:t:h'].items.map((i) => [i.field, i.value])), hash);
  assert.deepEqual(seen['perf:t:renamed'].items[0].value, await redis.cli('GET', 'perf:t:renamed'));

  // The aggregates follow the same window: the zset's CPU field over its 3 members.
  const cpus = zset.map(([member]) => JSON.parse(member).cpu);
  const stats = await page.evaluate(() => window.client.stats('perf:t:z', 'cpu'));
  const series = await page.evaluate(() => Array.from(window.client.series('perf:t:z', 'cpu')));
  assert.deepEqual(series, [...cpus].reverse(), 'the followed series, oldest first');
  assert.equal(stats.count, 3);
  assert.equal(stats.min, Math.min(...cpus));
  assert.equal(stats.max, Math.max(...cpus));
  assert.ok(Math.abs(stats.mean - cpus.reduce((a, b) => a + b, 0) / 3) < 1e-9);
  // Every key's newest sample in one array, a row per key asked: items, newest time, `cpu` (NaN: none).
  const rows = await page.evaluate(() => Array.from(window.client.newestOf(['perf:t:z', 'perf:t:s', 'perf:t:l', 'perf:t:none'])));
  const [newestMember, newestScore] = zset[0];
  assert.deepEqual(rows.slice(0, 3), [3, Number(newestScore), JSON.parse(newestMember).cpu], 'the zset, after its top-up');
  assert.deepEqual(rows.slice(3, 6), [3, Number(stream[0][0].split('-')[0]), Number(stream[0][1][1])], 'the stream');
  assert.equal(rows[6], 3, 'the list has its items…');
  assert.ok(Number.isNaN(rows[7]) && Number.isNaN(rows[8]), '…and no time');
  assert.equal(rows[9], 0, 'no window');
  assert.ok(Number.isNaN(rows[10]) && Number.isNaN(rows[11]));
  const diagnostics = await page.evaluate(() => window.client.diagnostics());
  assert.ok(diagnostics.topupsRequested >= 1, JSON.stringify(diagnostics));
  assert.deepEqual(errors, []);
  await page.close();
});
