// The walking skeleton end to end: a write to a real Redis becomes a row in a real browser, through the relay and
// the wasm assembler; the page shows its connection state and recovers when the relay comes back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { startRedis, startRelay, launchBrowser, repoRoot } from './support/processes.mjs';

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

test('the page opens on a snapshot of what Redis holds', async () => {
  await redis.cli('ZADD', 'perf:before', '1', '{"id":"old1"}', '2', '{"id":"old2"}', '3', '{"id":"old3"}');
  const page = await chromium.browser.newPage();
  await page.goto(`${relay.url}?keys=perf:before&window=2`);
  await page.waitForSelector('tr[data-member*="old3"]', { timeout: 20_000 });
  const members = await page.$$eval('#rows tr', (trs) => trs.map((tr) => tr.dataset.member));
  assert.deepEqual(members, ['{"id":"old3"}', '{"id":"old2"}'], 'the newest 2, as ZRANGE perf:before -2 -1');
  await page.close();
});

test('a ZADD becomes a row in the browser, newest first, for watched keys only', async () => {
  const page = await chromium.browser.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err));
  await page.goto(`${relay.url}?keys=perf:demo&window=5`);
  await page.waitForSelector('#status[data-state="live"]', { timeout: 20_000 });

  const t0 = Date.now();
  await redis.cli('ZADD', 'perf:demo', String(t0), '{"id":"a1","cpu":12.5}');
  await page.waitForSelector('tr[data-member*="\\"a1\\""]', { timeout: 10_000 });
  console.log(`# row appeared ${Date.now() - t0} ms after the ZADD`);

  await redis.cli('ZADD', 'perf:other', '1', 'not-watched');
  await redis.cli('ZADD', 'perf:demo', String(t0 + 1000), '{"id":"a2","cpu":40}');
  await page.waitForSelector('tr[data-member*="\\"a2\\""]', { timeout: 10_000 });
  const rows = await page.$$eval('#rows tr', (trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
  assert.deepEqual(rows, [
    ['perf:demo', String(t0 + 1000), '{"id":"a2","cpu":40}'],
    ['perf:demo', String(t0), '{"id":"a1","cpu":12.5}'],
  ]);

  const shots = path.join(repoRoot, 'target/e2e');
  await mkdir(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, 'skeleton.png') });
  assert.deepEqual(errors, []);
  await page.close();
});

test('the page shows offline when the relay dies and goes live again without a reload', async () => {
  const page = await chromium.browser.newPage();
  await page.goto(relay.url);
  await page.waitForSelector('#status[data-state="live"]', { timeout: 20_000 });

  const { listen } = relay;
  await relay.stop();
  await page.waitForSelector('#status[data-state="offline"]', { timeout: 10_000 });

  relay = await startRelay({ redisUrl: redis.url, listen });
  await page.waitForSelector('#status[data-state="live"]', { timeout: 20_000 });
  await redis.cli('ZADD', 'perf:after-restart', String(Date.now()), '{"id":"r1"}');
  await page.waitForSelector('tr[data-key="perf:after-restart"]', { timeout: 10_000 });
  await page.close();
});
