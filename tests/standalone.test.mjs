// The relay binary on its own: copied out of the checkout into an empty folder and started there, against a real
// Redis, it serves the page and the wasm client it embeds, and the page in Chromium goes live with what Redis holds.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRedis, startRelay, launchBrowser, relayBinary, ownership } from './support/processes.mjs';
import { writeSamples } from './support/perf-samples.mjs';

const { owned, keep, stopAll } = ownership();
after(stopAll);

test('the relay copied into an empty folder serves a page that goes live', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'replicast-standalone-'));
  keep({ stop: () => rm(dir, { recursive: true, force: true }) });
  const binary = path.join(dir, 'replicast');
  await copyFile(relayBinary, binary);
  assert.deepEqual(await readdir(dir), ['replicast'], 'nothing but the binary beside it');

  const redis = await owned(() => startRedis());
  const t = Date.now();
  await writeSamples(redis.port, [{ host: 'alone-01', t: t - 1000 }, { host: 'alone-01', t }]);
  const relay = await owned(() => startRelay({ redisUrl: redis.url, binary, cwd: dir }));
  const chromium = await owned(() => launchBrowser());
  const page = await chromium.browser.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err));

  const response = await page.goto(relay.url);
  assert.equal(response.status(), 200);
  const tile = '#tiles a.tile[data-host="alone-01"]';
  await page.waitForFunction((sel) => document.querySelector(sel)?.dataset.t !== undefined, tile, { timeout: 15_000 });
  assert.equal(Number(await page.$eval(tile, (el) => el.dataset.t)), t, 'the newest sample in Redis');

  // And it follows: a sample written now reaches the page.
  const next = t + 1000;
  await writeSamples(redis.port, [{ host: 'alone-01', t: next }]);
  await page.waitForFunction(([sel, min]) => Number(document.querySelector(sel)?.dataset.t) >= min, [tile, next], {
    timeout: 15_000,
  });
  assert.deepEqual(errors, []);
});
