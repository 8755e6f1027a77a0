// Two relays in front of one Redis Cluster, and a page that switches from one to the other: relay A follows each
// shard's primary, relay B each shard's replica, and the page's `Replicast` client names B as its alternate. A is
// SIGKILLed; the page must move to B by itself and resume every shard there from where its windows are (the
// replicas stream the same offsets as their primaries), without a snapshot. Real redis-server nodes, relays and
// Chromium; every wait is bounded and ends with every window in the page equal to Redis's own `ZRANGE`. And the
// dashboard on a cluster, fed by `replicast collect --cluster`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import { spawn } from 'node:child_process';
import { startCluster, startRelay, launchBrowser, relayBinary, ownership, openClient } from './support/processes.mjs';

/** Newest items each window keeps: as many as the first batch writes, fewer than each key ends with. */
const WINDOW = 20;
/** Keys the page watches; their slots fall on every shard of a three-primary cluster. */
const KEYS = Array.from({ length: 9 }, (_, i) => `perf:h${i}`);
/** How long any one wait may take: a relay's health, the page's switch, the windows' convergence. */
const WAIT_MS = 20_000;

let chromium;
/** Processes and writers a test started, stopped after it whatever happened. */
const { owned, keep, stopAll } = ownership();

before(async () => {
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.stop();
});

/** Polls `check` every 100 ms until it resolves truthy; fails after `WAIT_MS` with `what` and `describe()`. */
async function waitFor(what, check, describe = async () => '') {
  const deadline = Date.now() + WAIT_MS;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what}: not after ${WAIT_MS} ms\n${await describe()}`);
    await sleep(100);
  }
}

/** Waits until the relay's `/healthz` answers 200: every shard's link streams. */
async function healthy(relay) {
  let last = '';
  await waitFor(`${relay.url} healthy`, async () => {
    const res = await fetch(new URL('/healthz', relay.url));
    last = `${res.status} ${await res.text()}`;
    return res.status === 200;
  }, async () => `last /healthz: ${last}`);
}

/** The relay's counter `name` from /metrics. */
async function relayCounter(relay, name) {
  const text = await (await fetch(new URL('/metrics', relay.url))).text();
  const line = text.split('\n').find((l) => l.startsWith(`replicast_${name} `));
  assert.ok(line, `no replicast_${name} in /metrics`);
  return Number(line.split(' ')[1]);
}

const wsUrl = (relay) => `ws://${relay.listen}/ws`;

/** Adds members `m${i}` with score `i`, for `i` in [first, first + count), to every key; the keys in parallel. */
async function write(cluster, first, count) {
  await Promise.all(KEYS.map(async (key) => {
    for (let i = first; i < first + count; i++) await cluster.zadd(key, i, `m${i}`);
  }));
}

/** Every watched window in the page, as `[member, score]` pairs newest first. */
function pageWindows(page) {
  return page.evaluate((keys) => Object.fromEntries(keys.map((key) => {
    if (!window.client.keys().includes(key)) return [key, null];
    const { items, stale } = window.client.window(key);
    return [key, { stale, items: items.map((i) => [i.member, i.score]) }];
  })), KEYS);
}

/** What Redis holds for the same keys. */
async function redisWindows(cluster) {
  const windows = {};
  for (const key of KEYS) windows[key] = { stale: false, items: await cluster.zrangeNewest(key, WINDOW) };
  return windows;
}

/** The client's status, relay, positions and statuses so far. */
const clientState = (page) => page.evaluate(() => ({
  status: window.client.status, relay: window.client.relay, positions: window.client.positions,
  statuses: window.statuses,
}));

/** Waits until every window in the page equals Redis; fails with the difference after `WAIT_MS`. */
async function converges(page, cluster, when) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const seen = await pageWindows(page);
    const expected = await redisWindows(cluster);
    if (isDeepStrictEqual(seen, expected)) return;
    if (Date.now() > deadline) {
      const state = JSON.stringify(await clientState(page));
      assert.deepEqual(seen, expected, `${when}: the page does not equal Redis after ${WAIT_MS} ms (client: ${state})`);
    }
    await sleep(200);
  }
}

test('relay A SIGKILLed: the page switches to relay B on the replicas, resumes every shard there and converges', async (t) => {
  t.after(stopAll);
  const cluster = await owned(() => startCluster({ primaries: 3, replicas: 1 }));
  await write(cluster, 1, WINDOW);
  // Each shard holds some of the keys, so each shard's stream matters to the page.
  for (const port of cluster.primaries) {
    assert.ok(Number(await cluster.cli(port, 'DBSIZE')) > 0, `no watched key on the shard of ${port}`);
  }

  const seed = `127.0.0.1:${cluster.primaries[0]}`;
  const relayA = await owned(() => startRelay({ args: ['--cluster', seed, '--cluster-follow', 'primary', '--allow', 'perf:*'] }));
  // B takes the page served by A: A's origin may connect to it.
  const relayB = await owned(() => startRelay({
    args: ['--cluster', seed, '--cluster-follow', 'replica', '--allow', 'perf:*', '--origin', new URL(relayA.url).origin],
  }));
  await healthy(relayA);
  await healthy(relayB);

  const { page, errors } = await openClient(chromium.browser, relayA,
    { patterns: ['perf:*'], window: WINDOW, alternates: [wsUrl(relayB)] });
  await converges(page, cluster, 'on relay A');
  const onA = await clientState(page);
  assert.equal(onA.relay, wsUrl(relayA));
  assert.equal(onA.positions.length, 3, `one position per shard: ${JSON.stringify(onA.positions)}`);
  assert.equal(await relayCounter(relayB, 'session_resumes_total'), 0);
  assert.equal(await relayCounter(relayB, 'snapshots_total'), 0);

  await relayA.kill();
  const killedAt = Date.now();
  await write(cluster, WINDOW + 1, 10);
  await waitFor('the page on relay B, live', async () => {
    const { status, relay } = await clientState(page);
    return status === 'live' && relay === wsUrl(relayB);
  }, async () => JSON.stringify(await clientState(page)));
  const switchMs = Date.now() - killedAt;
  await converges(page, cluster, 'on relay B');
  const convergeMs = Date.now() - killedAt;
  t.diagnostic(`switched to B ${switchMs} ms after the kill; equal to Redis after ${convergeMs} ms`);

  // B resumed the page's session on every shard's epoch (the replicas follow their primaries' replication IDs)
  // and never needed a snapshot.
  const onB = await clientState(page);
  const epochs = (s) => s.positions.map((p) => `${p.shard}:${p.epoch}`).sort();
  assert.deepEqual(epochs(onB), epochs(onA), 'every shard keeps its epoch across the switch');
  assert.ok(await relayCounter(relayB, 'session_resumes_total') >= 1, 'B resumed the session');
  assert.equal(await relayCounter(relayB, 'snapshots_total'), 0, 'B sent no snapshot');

  await write(cluster, WINDOW + 11, 5);
  await converges(page, cluster, 'on relay B, after more writes');
  assert.equal(await relayCounter(relayB, 'snapshots_total'), 0, 'B sent no snapshot');
  assert.deepEqual(errors, []);
  // Live on A once its snapshots were applied (each shard's first hello there restarts nothing), offline when A
  // died, then live on B by a resume: never resyncing.
  const { statuses } = await clientState(page);
  assert.match(statuses.join(' '), /^connecting live (offline connecting )+live$/, `statuses: ${statuses.join(' ')}`);
  await page.close();
});

test('the dashboard on a cluster: every host the collector writes, whatever its shard, gets a tile that follows its newest sample', async (t) => {
  t.after(stopAll);
  const cluster = await owned(() => startCluster({ primaries: 3, replicas: 1 }));
  const seed = `127.0.0.1:${cluster.primaries[0]}`;
  const hosts = 12;
  const collector = spawn(relayBinary, ['collect', '--cluster', seed, '--simulate', String(hosts), '--no-local', '--interval', '250ms'],
    { stdio: 'ignore' });
  keep({ stop: async () => { collector.kill('SIGTERM'); } });
  const relay = await owned(() => startRelay({ args: ['--cluster', seed, '--allow', 'perf:*,annotations:perf'] }));
  await healthy(relay);
  const page = await chromium.browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(relay.url);
  await page.waitForSelector('#status[data-state="live"]', { timeout: WAIT_MS });
  await page.waitForFunction((n) => document.querySelectorAll('#tiles a.tile').length === n, hosts, { timeout: WAIT_MS });
  const shown = await page.$$eval('#tiles a.tile', (tiles) => tiles.map((el) => el.dataset.host));
  // Slots 0–5460, 5461–10922 and 10923–16383 are the three primaries' (redis-cli --cluster create splits evenly).
  const thirds = new Set(shown.map((host) => Math.floor(cluster.slot(`perf:${host}`) / 5461.34)));
  assert.equal(thirds.size, 3, `the hosts' keys are on every shard: ${shown}`);
  // Each tile reaches its host's newest sample in Redis (read on the key's owner), then follows newer ones.
  for (const host of shown) {
    const [[member]] = await cluster.zrangeNewest(`perf:${host}`, 1);
    const newest = JSON.parse(member).t;
    await page.waitForFunction(([h, min]) => Number(document.querySelector(`#tiles a.tile[data-host="${h}"]`)?.dataset.t) >= min,
      [host, newest], { timeout: WAIT_MS });
  }
  assert.deepEqual(errors, [], 'no page errors');
  await page.close();
});
