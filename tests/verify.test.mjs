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

/** A snapshot message (wire tag 4) at `offset` holding the RESP commands `commands` (arrays of strings). */
function snapshotMessage(offset, commands) {
  const resp = commands
    .map((args) => `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join(''))
    .join('');
  const header = Buffer.alloc(9);
  header[0] = 4;
  header.writeBigUInt64LE(BigInt(offset), 1);
  return Buffer.concat([header, Buffer.from(resp)]);
}

test("a page's digest equals the relay's state's, live, and differs once the page's window is altered", async () => {
  let toPage;
  const { page, errors } = await openClient(chromium.browser, relay, { patterns: ['perf:*'], window: 10 }, (page) =>
    page.routeWebSocket(/\/ws/, (ws) => {
      // Forwarded both ways as they are; the test may add a message of its own towards the page.
      ws.connectToServer();
      toPage = ws;
    }));
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

  // The page's string perf:s takes a value Redis never had. A string, not a sorted set: a member added to a full
  // window pushes another out, and the page would ask the relay to read that key again at once, healing it.
  const offset = await page.evaluate(() => window.client.offset);
  toPage.send(snapshotMessage(offset, [['SET', 'perf:s', 'altered']]));
  await page.waitForFunction(() => JSON.stringify(window.client.window('perf:s') ?? null).includes('altered'),
    null, { timeout: 10_000 });
  const altered = await page.evaluate(() => window.client.verify());
  assert.equal(altered.equal, false, JSON.stringify(altered));
  assert.equal(altered.relay, live.relay, "the relay's state did not change");
  assert.notEqual(altered.page, altered.relay);
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
