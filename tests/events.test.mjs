// Browser events end to end: a note written in one page's host detail goes to the relay (`client.send`), which
// appends it to the `annotations:perf` stream in a real Redis; every open page, the writer's included, gets it
// through the replication stream and shows it on that host (the detail's list and charts, the overview's tile);
// the test logs how soon (a speed figure, not checked here: a machine busy with builds took over two seconds).
// And `send()` itself: a promise of the entry id, rejected with the relay's reason for a key that is not
// writable, and when the client closes before the ack.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { startRedis, startRelay, launchBrowser, repoRoot } from './support/processes.mjs';
import { writeSamples } from './support/perf-samples.mjs';

const HOSTS = ['db-01', 'web-01', 'web-02'];
const NOTES = 'annotations:perf';

let redis;
let relay;
let chromium;
let writer;
const errors = [];

before(async () => {
  await access(path.join(repoRoot, 'www/vendor/d3.min.js')).catch(() => {
    throw new Error('www/vendor/d3.min.js is missing: run scripts/build.sh (it copies d3 from node_modules)');
  });
  redis = await startRedis();
  const now = Date.now();
  const history = [];
  for (const host of HOSTS) for (let s = 30; s > 0; s -= 1) history.push({ host, t: now - s * 1000 });
  await writeSamples(redis.port, history);
  writer = setInterval(() => {
    const t = Date.now();
    writeSamples(redis.port, HOSTS.map((host) => ({ host, t }))).catch((err) => errors.push(err));
  }, 1000);
  relay = await startRelay({
    redisUrl: redis.url,
    args: ['--allow', `perf:*,${NOTES}`, '--writable', NOTES],
  });
  chromium = await launchBrowser();
});

after(async () => {
  clearInterval(writer);
  await chromium?.stop();
  await relay?.stop();
  await redis?.stop();
});

async function openPage(hash = '') {
  const page = await chromium.browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (err) => errors.push(err));
  await page.goto(`${relay.url}${hash}`);
  await page.waitForSelector('#status[data-state="live"]', { timeout: 20_000 });
  return page;
}

/** Resolves when one of `page`'s detail notes reads `line`. */
function detailShows(page, line) {
  return page.waitForFunction(
    (line) => [...document.querySelectorAll('#detail .notes li .text')].some((el) => el.textContent === line),
    line,
    { timeout: 10_000 },
  );
}

test('a note written in one page shows on that host in every open page, through the stream', async () => {
  const overview = await openPage();
  await overview.waitForSelector('#tiles a.tile[data-host="web-01"][data-t]', { timeout: 10_000 });
  const writer = await openPage('#host=web-01');
  await writer.waitForSelector('#detail:not([hidden])[data-host="web-01"][data-t]', { timeout: 10_000 });

  await writer.fill('#detail .annotate-form input[name="text"]', 'deploy 1.4.2');
  await writer.fill('#detail .annotate-form input[name="by"]', 'Ana');
  const clicked = Date.now();
  await writer.click('#detail .annotate-form button[value="note"]');
  await Promise.all([
    detailShows(writer, '⚑ deploy 1.4.2 — Ana'),
    overview.waitForFunction(
      () => document.querySelector('#tiles a.tile[data-host="web-01"] .note')?.textContent === '⚑ deploy 1.4.2 — Ana',
      null,
      { timeout: 10_000 },
    ),
  ]);
  const shown = Date.now();
  console.log(`# the note showed in both pages ${shown - clicked} ms after the click`);

  // Redis holds it as the relay wrote it: the page's fields, then who sent it and when.
  const entries = JSON.parse(await redis.cli('--json', 'XRANGE', NOTES, '-', '+'));
  assert.equal(entries.length, 1);
  const fields = Object.fromEntries(entries[0][1].reduce((pairs, v, i, all) => (i % 2 ? pairs : [...pairs, [v, all[i + 1]]]), []));
  assert.deepEqual(
    { host: fields.host, text: fields.text, kind: fields.kind, by: fields.by },
    { host: 'web-01', text: 'deploy 1.4.2', kind: 'note', by: 'Ana' },
  );
  assert.match(fields._session, /^[0-9a-z]+-\d+$/);
  // Stamped by the relay as it wrote the entry: after the click, before both pages showed it (one clock).
  const stamped = Number(fields._time);
  assert.ok(clicked <= stamped && stamped <= shown, `${fields._time} not within ${clicked}..${shown}`);
  // Only web-01's tile has a note; the input is cleared for the next one.
  assert.equal(await overview.$eval('#tiles a.tile[data-host="web-02"] .note', (el) => el.hidden), true);
  assert.equal(await writer.inputValue('#detail .annotate-form input[name="text"]'), '');
  // A mark on each of the host's charts.
  await writer.waitForFunction(() => document.querySelectorAll('#detail .charts .marks line').length === 5, null, {
    timeout: 20_000,
  });

  // The other page acknowledges the host from its detail view; the first page sees it, and the tile says so.
  await overview.click('#tiles a.tile[data-host="web-01"]');
  await overview.waitForSelector('#detail:not([hidden])[data-host="web-01"]');
  await detailShows(overview, '⚑ deploy 1.4.2 — Ana');
  await overview.fill('#detail .annotate-form input[name="by"]', 'Bo');
  await overview.click('#detail .annotate-form button[value="ack"]');
  await detailShows(writer, '✓ investigating — Bo');
  await overview.click('#detail a.back');
  await overview.waitForFunction(
    () => document.querySelector('#tiles a.tile[data-host="web-01"]')?.dataset.note === 'ack',
    null,
    { timeout: 20_000 },
  );
  assert.equal(
    await overview.$eval('#tiles a.tile[data-host="web-01"] .note', (el) => el.textContent),
    '✓ investigating — Bo',
  );
  // The notes stream is not a host.
  const hosts = await overview.$$eval('#tiles a.tile', (tiles) => tiles.map((t) => t.dataset.host));
  assert.deepEqual(hosts, HOSTS);
  assert.deepEqual(errors, []);
  await overview.close();
  await writer.close();
});

test("send() resolves with the entry id, and rejects with the relay's reason or when the client closes first", async () => {
  const page = await chromium.browser.newPage();
  page.on('pageerror', (err) => errors.push(err));
  await page.goto(relay.url);
  const outcomes = await page.evaluate(async (notes) => {
    const { default: init, Replicast } = await import('/pkg/replicast_wasm.js');
    await init();
    const client = new Replicast(`ws://${location.host}/ws`, { patterns: ['perf:*'] });
    const early = await client.send(notes, { host: 'web-01', text: 'too early' }).catch((e) => e.message);
    await new Promise((resolve) => {
      client.onStatus((s) => s === 'live' && resolve());
    });
    const settle = (promise) => promise.then((id) => ({ id }), (e) => ({ error: e.message, isError: e instanceof Error }));
    const refused = await settle(client.send('perf:web-01', { text: 'x' }));
    const appended = await settle(client.send(notes, { host: 'web-02', text: 'from the API', n: 3, ok: true }));
    const badField = await settle(client.send(notes, { host: 'web-02', text: { nested: 1 } }));
    const cut = settle(client.send(notes, { host: 'web-02', text: 'never acked' }));
    client.close();
    return { early, refused, appended, badField, cut: await cut };
  }, NOTES);
  assert.match(outcomes.early, /^not connected to the relay \(status: connecting\)/);
  assert.deepEqual(outcomes.refused, {
    error: 'key "perf:web-01" is not writable: it matches no --writable or --writable-zset pattern',
    isError: true,
  });
  assert.match(outcomes.appended.id, /^\d+-\d+$/);
  const held = JSON.parse(await redis.cli('--json', 'XRANGE', NOTES, outcomes.appended.id, outcomes.appended.id));
  assert.deepEqual(held[0][1].slice(0, 8), ['host', 'web-02', 'text', 'from the API', 'n', '3', 'ok', 'true']);
  assert.match(outcomes.badField.error, /field "text" must be a string, a number or a boolean/);
  assert.deepEqual(outcomes.cut, { error: 'the client was closed before the relay answered', isError: true });
  assert.deepEqual(errors, []);
  await page.close();
});
