// Faults under a page that stays open: the relay SIGKILLed and started again, the primary SIGKILLed mid-write and
// started again empty, the relay frozen (SIGSTOP) until the primary drops it. Real redis-server, relay and Chromium;
// the page's `Replicast` client (wasm/src/web/client.rs) must find its way back by itself, and each test ends when
// every window in the page equals Redis's own `ZRANGE … WITHSCORES`, or fails after a bounded wait.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import { startRedis, startRelay, launchBrowser, ownership, openClient as openPage } from './support/processes.mjs';

/** Newest items each window keeps: fewer than each key gets, so windows drop their oldest. */
const WINDOW = 5;
/** How long a page may take to equal Redis once the writes stop. */
const CONVERGE_MS = 20_000;
/** How long a page may wait for the writer's first writes: each spawns a redis-cli, slow to start on a loaded
 * machine. */
const WRITES_MS = 60_000;

let chromium;
/** Processes and writers a test started, stopped after it whatever happened. */
const { owned, stopAll } = ownership();

before(async () => {
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.stop();
});

/** Opens a page on `relay` with a client watching `pattern` (and any further `options`), as `window.client`;
 * each status it reports goes to `window.statuses`. */
async function openClient(relay, pattern, options = {}) {
  const { page, errors } = await openPage(chromium.browser, relay, { patterns: [pattern], window: WINDOW, ...options });
  await page.waitForFunction(() => window.client.status === 'live', null, { timeout: 20_000 });
  return { page, errors };
}

/** Adds `count` members to each of `keys`, scores from `first` on. */
async function write(redis, keys, first, count, tag) {
  for (let i = first; i < first + count; i++) {
    for (const key of keys) await redis.cli('ZADD', key, String(i), JSON.stringify({ id: `${tag}${i}`, key }));
  }
}

/** Writes to `keys` in turn until `stop()`, which resolves with how many writes Redis took (`written()` tells
 * so far). A write that fails (Redis is down) is counted as failed and the next one tried a little later. */
function keepWriting(redis, keys, first, tag) {
  let running = true;
  let written = 0;
  let failed = 0;
  const loop = (async () => {
    for (let i = first; running; i++) {
      try {
        await redis.cli('ZADD', keys[i % keys.length], String(i), JSON.stringify({ id: `${tag}${i}` }));
        written++;
      } catch {
        failed++;
        await sleep(50);
      }
      await sleep(10);
    }
  })();
  return {
    written: () => written,
    stop: async () => {
      running = false;
      await loop;
      return { written, failed };
    },
  };
}

/** Every window in the page, as `[member, score]` pairs newest first, and the client's status. */
function pageState(page) {
  return page.evaluate(() => ({
    status: window.client.status,
    windows: Object.fromEntries(window.client.keys().map((key) => {
      const { items, stale } = window.client.window(key);
      return [key, { stale, items: items.map((i) => [i.member, i.score]) }];
    })),
  }));
}

/** What Redis holds for the same pattern: each key's newest `WINDOW` members, newest first, and a live client. */
async function redisState(redis, pattern) {
  const keys = JSON.parse(await redis.cli('--json', 'KEYS', pattern));
  const windows = {};
  for (const key of keys) {
    const items = JSON.parse(await redis.cli('--json', 'ZRANGE', key, String(-WINDOW), '-1', 'WITHSCORES'));
    windows[key] = { stale: false, items: items.reverse() };
  }
  return { status: 'live', windows };
}

/** Waits until every window in the page equals Redis for `pattern`, at most `CONVERGE_MS`; fails with the
 * difference otherwise. Resolves with Redis's windows. */
async function converges(page, redis, pattern) {
  const deadline = Date.now() + CONVERGE_MS;
  for (;;) {
    const seen = await pageState(page);
    const expected = await redisState(redis, pattern);
    if (isDeepStrictEqual(seen, expected) || Date.now() > deadline) {
      assert.deepEqual(seen, expected, `the page does not equal Redis after ${CONVERGE_MS} ms`);
      return expected.windows;
    }
    await sleep(200);
  }
}

/** The relay's counter `name` from /metrics. */
async function relayCounter(relay, name) {
  const text = await (await fetch(new URL('/metrics', relay.url))).text();
  const line = text.split('\n').find((l) => l.startsWith(`replicast_${name} `));
  assert.ok(line, `no replicast_${name} in /metrics`);
  return Number(line.split(' ')[1]);
}

/** A field of Redis's INFO, as a number. */
async function info(redis, section, field) {
  const text = await redis.cli('INFO', section);
  const match = text.match(new RegExp(`^${field}:(\\d+)`, 'm'));
  assert.ok(match, `no ${field} in INFO ${section}`);
  return Number(match[1]);
}

/** The members' ids in a window of `windows`, newest first. */
const ids = (windows, key) => windows[key].items.map(([member]) => JSON.parse(member).id);

test('the relay SIGKILLed and started again on its port: the page reconnects, re-snapshots and converges', async (t) => {
  t.after(stopAll);
  const redis = await owned(() => startRedis());
  let relay = await owned(() => startRelay({ redisUrl: redis.url }));
  const keys = ['perf:fault:a:1', 'perf:fault:a:2'];
  await write(redis, keys, 1, 3, 'before');
  const { page, errors } = await openClient(relay, 'perf:fault:a:*');
  await converges(page, redis, 'perf:fault:a:*');

  await relay.kill();
  await page.waitForFunction(() => window.client.status === 'offline', null, { timeout: 10_000 });
  // Written while no relay runs: the next relay's backlog starts after these, so they can only come by snapshot.
  await write(redis, keys, 4, 2, 'down');
  relay = await owned(() => startRelay({ redisUrl: redis.url, listen: relay.listen }));
  await page.waitForFunction(() => window.client.status === 'live', null, { timeout: 20_000 });
  await write(redis, keys, 6, 2, 'after');

  const windows = await converges(page, redis, 'perf:fault:a:*');
  assert.deepEqual(ids(windows, 'perf:fault:a:1'), ['after7', 'after6', 'down5', 'down4', 'before3']);
  assert.equal(await relayCounter(relay, 'session_resumes_total'), 0, 'nothing to resume in a new backlog');
  // A fresh snapshot: from Redis, or from the state the new relay built from its full sync.
  assert.ok((await relayCounter(relay, 'snapshots_total')) + (await relayCounter(relay, 'state_snapshots_total')) >= 1);
  // Offline when the socket died, then connecting and offline again while no relay listens, then live: never
  // resyncing, since a snapshot on a fresh join is not a resync.
  const statuses = await page.evaluate(() => window.statuses);
  assert.match(statuses.join(' '), /^connecting live (offline connecting )+live$/);
  assert.deepEqual(errors, []);
  await page.close();
});

test('the primary SIGKILLed mid-write and started again empty: the page re-snapshots the new epoch and converges', async (t) => {
  t.after(stopAll);
  const redis = await owned(() => startRedis());
  const relay = await owned(() => startRelay({ redisUrl: redis.url }));
  const { page, errors } = await openClient(relay, 'perf:fault:b:*');
  const epoch = await page.evaluate(() => window.client.epoch);

  const writer = await owned(() => keepWriting(redis, ['perf:fault:b:old1', 'perf:fault:b:old2'], 1, 'old'));
  await page.waitForFunction(() => window.client.len('perf:fault:b:old1') === 5, null, { timeout: WRITES_MS });
  await redis.kill();
  const oldWrites = await writer.stop();
  // The page saw the tenth write; the writer may not have heard Redis's reply to it before the kill.
  assert.ok(oldWrites.written >= 9, JSON.stringify(oldWrites));
  // The same port, an empty folder: Redis starts with no data and a new replication ID.
  const restarted = await owned(() => startRedis({ port: redis.port }));
  const newWriter = await owned(() => keepWriting(restarted, ['perf:fault:b:new1', 'perf:fault:b:old2'], 1, 'new'));
  await page.waitForFunction((epoch) => window.client.epoch !== epoch, epoch, { timeout: 20_000 });
  await write(restarted, ['perf:fault:b:new1', 'perf:fault:b:new2'], 1000, 6, 'last');
  const newWrites = await newWriter.stop();
  assert.ok(newWrites.written >= 1, JSON.stringify(newWrites));

  const windows = await converges(page, restarted, 'perf:fault:b:*');
  assert.deepEqual(Object.keys(windows).sort(), ['perf:fault:b:new1', 'perf:fault:b:new2', 'perf:fault:b:old2']);
  assert.ok(ids(windows, 'perf:fault:b:old2').every((id) => id.startsWith('new')), 'nothing of the old primary stays');
  assert.equal(await relayCounter(relay, 'link_full_syncs_total'), 2, 'one full sync per primary');
  const statuses = await page.evaluate(() => window.statuses);
  assert.deepEqual(statuses, ['connecting', 'live', 'resyncing', 'live'], 'the socket stayed open throughout');
  assert.deepEqual(errors, []);
  await page.close();
});

test('the relay frozen past the primary\'s repl-timeout, then thawed: the stream continues and pages converge', async (t) => {
  t.after(stopAll);
  // Redis drops a replica that sent no ACK for 2 s, and pings its replicas every second: the stream moves, and the
  // relay tells its sessions so, even when nobody writes.
  const redis = await owned(() => startRedis({ args: ['--repl-timeout', '2', '--repl-ping-replica-period', '1'] }));
  const relay = await owned(() => startRelay({ redisUrl: redis.url }));
  // One page with the default idle detection (30 s), which keeps its socket through the freeze, and one that
  // counts 4 s of silence as a dead socket, which drops it and must come back by itself.
  const patient = await openClient(relay, 'perf:fault:c:*');
  const quick = await openClient(relay, 'perf:fault:c:*', { idleTimeoutMs: 4_000 });
  const epoch = await patient.page.evaluate(() => window.client.epoch);

  const writer = await owned(() => keepWriting(redis, ['perf:fault:c:1', 'perf:fault:c:2', 'perf:fault:c:3'], 1, 'w'));
  await patient.page.waitForFunction(() => window.client.len('perf:fault:c:3') === 5, null, { timeout: WRITES_MS });
  relay.pause();
  const writtenBefore = writer.written();
  // Each wait below is for what the freeze must bring about; all of them end well within the patient page's 30 s,
  // which would otherwise count the frozen relay's silence as a dead socket.
  const thawBy = Date.now() + 25_000;
  try {
    await sleep(4_000);
    // Past repl-timeout the primary drops a replica that sent no ACK: wait until it has (it checks once a second).
    while (await info(redis, 'replication', 'connected_slaves') > 0) {
      assert.ok(Date.now() < thawBy, 'the primary never dropped the frozen relay');
      await sleep(200);
    }
    // The quick page hears the silence while the relay is still frozen (a close it waited on would never come).
    await quick.page.waitForFunction(() => window.client.status !== 'live', null,
      { timeout: Math.max(1, thawBy - Date.now()) });
    assert.equal(await patient.page.evaluate(() => window.client.status), 'live');
    // Writes the relay can only get from Redis's backlog: the freeze lasts until ten went in (each write spawns a
    // redis-cli, which a loaded machine may take long to start).
    while (writer.written() - writtenBefore < 10) {
      assert.ok(Date.now() < thawBy, `only ${writer.written() - writtenBefore} writes while the relay was frozen`);
      await sleep(100);
    }
  } finally {
    relay.resume();
  }
  await sleep(1_000);
  await writer.stop();
  await write(redis, ['perf:fault:c:1'], 100_000, 2, 'last');

  for (const { page } of [patient, quick]) {
    const windows = await converges(page, redis, 'perf:fault:c:*');
    assert.deepEqual(ids(windows, 'perf:fault:c:1').slice(0, 2), ['last100001', 'last100000']);
    assert.equal(await page.evaluate(() => window.client.epoch), epoch);
  }
  // The relay continued the same stream (PSYNC +CONTINUE): the patient page kept its socket, and the quick one
  // resumed where it was, without a snapshot.
  assert.equal(await info(redis, 'stats', 'sync_partial_ok'), 1);
  assert.equal(await relayCounter(relay, 'link_full_syncs_total'), 1);
  assert.ok(await relayCounter(relay, 'session_resumes_total') >= 1);
  assert.deepEqual(await patient.page.evaluate(() => window.statuses), ['connecting', 'live']);
  assert.match((await quick.page.evaluate(() => window.statuses)).join(' '), /^connecting live (offline connecting )+live$/);
  assert.deepEqual([...patient.errors, ...quick.errors], []);
  await patient.page.close();
  await quick.page.close();
});
