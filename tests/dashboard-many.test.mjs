// The overview of a large fleet, end to end (real redis-server, relay and Chromium): at 2,000 hosts only the tiles
// on screen and a screen around them are in the document, scrolling binds the others (with their numbers, as Redis
// holds them, and their alerts), sorting and grouping order every host, not only those drawn, and an alert on a
// host far off screen is in the alert list and on its tile once it is scrolled to.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, startRelay, launchBrowser } from './support/processes.mjs';
import { writeSamples } from './support/perf-samples.mjs';

const ROLES = ['cache', 'db', 'web', 'worker'];
/** 2,000 hosts, 500 of each role, and one that runs hot and sorts last by name. */
const HOSTS = [...ROLES.flatMap((role) => Array.from({ length: 500 }, (_, i) => `${role}-${String(i).padStart(4, '0')}`))];
const HOT_HOST = 'zz-hot';
const HOT = { cpu: { total: 99.5, cores: [99.5, 99.5] } };
const SAMPLES = 8;
/** The rule the page opens with: CPU above 90 % for 2 s. */
const RULES = 'cpu=90/2s';
/** Fewer tiles than this in the document: a few screens of them, not a tile per host. */
const FEW_TILES = 400;
const WAIT = { timeout: 60_000 };

let redis;
let relay;
let chromium;
let page;
const errors = [];

before(async () => {
  redis = await startRedis();
  const now = Date.now();
  const samples = [];
  for (let s = SAMPLES; s > 0; s -= 1) {
    const t = now - s * 1000;
    for (const host of HOSTS) samples.push({ host, t });
    samples.push({ host: HOT_HOST, t, patch: HOT });
  }
  await writeSamples(redis.port, samples);
  relay = await startRelay({ redisUrl: redis.url });
  chromium = await launchBrowser();
  page = await chromium.browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('pageerror', (err) => errors.push(err));
});

after(async () => {
  await chromium?.stop();
  await relay?.stop();
  await redis?.stop();
});

const tileOf = (host) => `#tiles a.tile[data-host="${host}"]`;
const tileCount = () => page.$$eval('#tiles a.tile', (els) => els.length);

test('at 2,000 hosts only the tiles near the screen are in the document, and scrolling brings the others', async () => {
  await page.goto(`${relay.url}#${RULES}`);
  await page.waitForFunction((n) => globalThis.replicastDashboard?.hosts.every((h) => h.fed !== undefined)
    && globalThis.replicastDashboard.hosts.length === n, HOSTS.length + 1, WAIT);
  assert.equal(await page.textContent('#shown'), '2001 hosts');
  const drawn = await tileCount();
  assert.ok(drawn > 0 && drawn < FEW_TILES, `${drawn} tiles in the document`);
  // The grid is as tall as all of its rows: the page scrolls to the last host.
  assert.equal(await page.$(tileOf(HOT_HOST)), null);
  // The list is redrawn at most twice a second.
  await page.waitForSelector(`#alerts tbody tr[data-host="${HOT_HOST}"]`, WAIT);
  const alerts = await page.$$eval('#alerts tbody tr', (rows) => rows.map((tr) => [tr.dataset.host, tr.dataset.measure]));
  assert.deepEqual(alerts, [[HOT_HOST, 'cpu']], 'the alert of a host with no tile is listed');

  await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
  await page.waitForSelector(`${tileOf(HOT_HOST)}[data-t]`, WAIT);
  const hot = await page.$eval(tileOf(HOT_HOST), (el) => ({
    alert: el.dataset.alert, cpu: el.querySelector('.value.cpu').textContent, t: Number(el.dataset.t),
  }));
  const newest = JSON.parse(await redis.cli('ZRANGE', `perf:${HOT_HOST}`, '-1', '-1'));
  assert.deepEqual(hot, { alert: 'cpu', cpu: '99.5\u202f%', t: newest.t });
  assert.equal(await page.$(tileOf(HOSTS[0])), null, 'the first tiles left the document');
  assert.ok(await tileCount() < FEW_TILES);
  // Every tile bound as it scrolled in shows its own host's newest sample.
  const shown = await page.$$eval('#tiles a.tile[data-t]', (els) => els.map((el) => [el.dataset.host, Number(el.dataset.cpu)]));
  assert.ok(shown.length > 10);
  for (const [host, cpu] of shown.slice(0, 10)) {
    const sample = JSON.parse(await redis.cli('ZRANGE', `perf:${host}`, '-1', '-1'));
    assert.equal(cpu, sample.cpu.total, host);
  }
  assert.deepEqual(errors, []);
});

test('sorting and grouping order all 2,000 hosts, not only the tiles drawn', async () => {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.mouse.move(0, 0);
  await page.evaluate((rules) => { location.hash = `sort=cpu&${rules}`; }, RULES);
  // The hottest host, last by name, is first by CPU.
  await page.waitForFunction((host) => document.querySelector('#tiles a.tile')?.dataset.host === host, HOT_HOST, WAIT);
  assert.ok(await tileCount() < FEW_TILES);

  await page.evaluate((rules) => { location.hash = `sort=name&group=role&${rules}`; }, RULES);
  await page.waitForFunction(() => document.querySelectorAll('#tiles section.group').length === 5, null, WAIT);
  const headings = await page.$$eval('#tiles .group-name', (els) => els.map((el) => el.textContent));
  assert.deepEqual(headings, ['cache · 500 hosts', 'db · 500 hosts', 'web · 500 hosts', 'worker · 500 hosts', 'zz · 1 host']);
  // The last group's one tile is reached by scrolling to it, past 2,000 others.
  await page.evaluate(() => document.querySelector('#tiles section.group[data-group="zz"]').scrollIntoView());
  await page.waitForSelector(`#tiles section.group[data-group="zz"] a.tile[data-host="${HOT_HOST}"][data-t]`, WAIT);
  assert.ok(await tileCount() < FEW_TILES);
  assert.deepEqual(errors, []);
});
