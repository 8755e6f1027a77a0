// `client.verify()` (issue 21.5) in a real Chromium against a real relay and redis-server: the relay digests the
// windows its own state holds for the page's subscription, placed in the stream at its offset, and the page's wasm
// assembler digests its own windows when it reads that answer. Equal over every windowed type, live; different once
// the page's window is altered (a message the test slips into the page's WebSocket); refused for a window deeper
// than the relay's state.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, startRelay, launchBrowser, openClient } from './support/processes.mjs';

let redis;
let relay;
let chromium;

before(async () => {
  redis = await startRedis();
  for (let i = 0; i < 30; i++) {
    await redis.cli('ZADD', 'perf:z', String(i), `m${i}`);
  }
  await redis.cli('RPUSH', 'perf:l', 'a', 'b', 'c');
  await redis.cli('HSET', 'perf:h', 'f1', 'v1', 'f2', 'v2');
  await redis.cli('SET', 'perf:s', 'value');
  await redis.cli('XADD', 'perf:x', '1-1', 'cpu', '12');
  await redis.cli('SET', 'other:secret', 'never sent');
  relay = await startRelay({ redisUrl: redis.url, args: ['--state-depth', '50'] });
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.stop();
  await relay?.stop();
  await redis?.stop();
});

test("a page's digest equals the relay's state's, live, and differs once the relay's state of a key is altered", async () => {
  const { page, errors } = await openClient(chromium.browser, relay, { patterns: ['perf:*'], window: 10 });
  await page.waitForFunction(() => window.client.status === 'live', null, { timeout: 20_000 });
  await page.waitForFunction(() => window.client.keys().length === 5, null, { timeout: 10_000 });

  const first = await page.evaluate(() => window.client.verify());
  assert.equal(first.equal, true, JSON.stringify(first));
  assert.equal(first.relay, first.page);
  assert.equal(first.relayKeys, 5);
  // 10 of the sorted set's 30, 3 list items, 2 fields, a string, an entry.
  assert.equal(first.pageItems, 10 + 3 + 2 + 1 + 1);

  await redis.cli('ZADD', 'perf:z', '100', 'newest');
  await redis.cli('HSET', 'perf:h', 'f3', 'v3');
  await redis.cli('XADD', 'perf:x', '2-0', 'cpu', '13');
  await page.waitForFunction(() => window.client.latest('perf:x') !== undefined && window.client.len('perf:h') === 3,
    null, { timeout: 10_000 });
  const live = await page.evaluate(() => window.client.verify());
  assert.equal(live.equal, true, JSON.stringify(live));
  assert.ok(live.offset > first.offset);
  assert.notEqual(live.relay, first.relay);

  // The relay's state of perf:s is altered (the debug build's test hook): the page's digest stays, the relay's
  // changes, and the two differ. (The page's digest follows every item, score and value by the same code: the
  // assembler's digest tests.)
  const corrupted = await fetch(new URL('/verify/corrupt?key=perf:s', relay.url), { method: 'POST' });
  assert.equal(corrupted.status, 200, await corrupted.text());
  const altered = await page.evaluate(() => window.client.verify());
  assert.equal(altered.equal, false, JSON.stringify(altered));
  assert.equal(altered.page, live.page, "the page's windows did not change");
  assert.notEqual(altered.relay, altered.page);
  assert.deepEqual(errors, []);
  await page.close();
});

test('the relay refuses a digest for a window deeper than its state', async () => {
  const { page } = await openClient(chromium.browser, relay, { patterns: ['perf:*'], window: 60 });
  await page.waitForFunction(() => window.client.status === 'live', null, { timeout: 20_000 });
  const refused = await page.evaluate(() => window.client.verify().then(
    () => 'resolved',
    (err) => `${err.code}: ${err.message}`,
  ));
  assert.match(refused, /^refused: the relay's state cannot answer this subscription/);
  await page.close();
});
