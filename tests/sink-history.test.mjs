// The dashboard looking back through the sediment: real redis-server, relay, `replicast sink`, PostgreSQL and
// Chromium. Redis keeps web-01's newest 60 samples (as the collector's `--keep 60`) while the sink keeps every one in
// PostgreSQL. The page finds the sink through the relay's /config.json (`serve --history-url`); zoomed out past
// its live window, the host's charts draw what the sink's /history answers — samples Redis forgot, each bucket's
// average, minimum and maximum equal to the samples written — while a page without a sink stops at the window and
// says so.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, startRelay, launchBrowser, freePort } from './support/processes.mjs';
import { startPostgres, startSink } from './support/postgres.mjs';
import { writeSamples, perfSample } from './support/perf-samples.mjs';

const HOST = 'web-01';
const KEY = `perf:${HOST}`;
/** Samples Redis keeps per host: a minute at one a second. */
const KEEP = 60;
/** Samples written before the page opens, a second apart: a quarter of an hour. */
const PAST = 900;
const NNBSP = '\u202f';
const WAIT = { timeout: 20_000 };
const cpuPlot = '#detail .chart:first-child svg.plot';

let redis;
let pg;
let relay;
let sink;
let chromium;
let writer;
const errors = [];
/** Every sample time written, in order. */
const written = [];

async function sinkMetric(name) {
  const text = await (await fetch(`${sink.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

/** Waits until the sink has committed the stream up to where Redis is now. */
async function sinkCaughtUp() {
  const info = await redis.cli('INFO', 'replication');
  const target = Number(info.match(/master_repl_offset:(\d+)/)[1]);
  const deadline = Date.now() + 20_000;
  while (!(await sinkMetric('replicast_sink_committed_offset') >= target)) {
    if (Date.now() > deadline) throw new Error(`the sink did not commit offset ${target}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function write(times) {
  await writeSamples(redis.port, times.map((t) => ({ host: HOST, t })), { keep: KEEP });
  written.push(...times);
}

before(async () => {
  redis = await startRedis();
  pg = await startPostgres();
  const sinkPort = await freePort();
  relay = await startRelay({ redisUrl: redis.url, args: ['--history-url', `http://127.0.0.1:${sinkPort}`] });
  sink = await startSink({
    relay: `ws://${relay.listen}/ws`,
    database: pg.url,
    args: ['--history', 'perf:*', '--listen', `127.0.0.1:${sinkPort}`, '--origin', new URL(relay.url).origin,
      '--batch-ms', '50'],
  });
  // Joined (its first transaction holds the position of the relay's snapshot) before anything is written.
  const deadline = Date.now() + 20_000;
  while (!(await sinkMetric('replicast_sink_batches_total') >= 1)) {
    if (Date.now() > deadline) throw new Error('the sink never joined');
    await new Promise((r) => setTimeout(r, 50));
  }
  const now = Date.now();
  await write(Array.from({ length: PAST }, (_, i) => now - (PAST - i) * 1000));
  await sinkCaughtUp();
  writer = setInterval(() => write([Date.now()]).catch((err) => errors.push(err)), 1000);
  chromium = await launchBrowser();
});

after(async () => {
  clearInterval(writer);
  await chromium?.stop();
  await sink?.stop();
  await relay?.stop();
  await pg?.stop();
  await redis?.stop();
});

const percent = (v) => `${v.toFixed(1)}${NNBSP}%`;

test('zoomed out past the window, the host view draws the history the sink keeps and Redis forgot', async () => {
  assert.equal(Number(await redis.cli('ZCARD', KEY)), KEEP, 'Redis keeps a minute');
  assert.equal(Number(await pg.sql(`SELECT count(*) FROM replicast.zset_history WHERE key = '${KEY}'`)) >= PAST, true,
    'PostgreSQL keeps every sample');
  const config = await (await fetch(new URL('config.json', relay.url))).json();
  assert.deepEqual(config, { history: sink.url }, 'the relay tells the page where the sink is');

  const context = await chromium.browser.newContext({ viewport: { width: 1440, height: 960 }, timezoneId: 'UTC' });
  try {
    const page = await context.newPage();
    page.on('pageerror', (err) => errors.push(err));
    const answers = [];
    page.on('response', async (response) => {
      if (!response.url().startsWith(`${sink.url}/history?`)) return;
      answers.push({ url: new URL(response.url()), status: response.status(), json: await response.json().catch(() => null) });
    });
    await page.goto(`${relay.url}#host=${HOST}`);
    await page.waitForSelector(`#detail[data-host="${HOST}"][data-t][data-range="live"]`, WAIT);
    await page.click('#pause');
    await page.waitForSelector('body[data-paused="true"]');
    const oldestInRedis = Number((await redis.cli('ZRANGE', KEY, '0', '0', 'WITHSCORES')).split('\n')[1]);
    // Each zoom-out doubles the span: 2 min → 16 min, most of it older than anything Redis holds.
    for (let i = 0; i < 3; i += 1) await page.click('#detail [data-action="zoom-out"]');
    const [t0, t1] = (await page.$eval('#detail', (el) => el.dataset.range)).split('-').map(Number);
    assert.ok(t1 - t0 >= 15 * 60_000 && t0 < oldestInRedis - 10 * 60_000, `zoomed out to ${t0}–${t1}`);
    // The band of min–max is drawn once the sink's answer is in.
    await page.waitForFunction(() => document.querySelector('#detail .chart:first-child .bands path')?.getAttribute('d'), null, WAIT);
    // The band can come from an earlier zoom's answer: the last zoom's is in once the note stops saying it loads.
    await page.waitForFunction(() => document.querySelector('#detail .range-note')?.textContent !== 'Loading history…', null, WAIT);
    const note = await page.$eval('#detail .range-note', (el) => (el.hidden ? null : el.textContent));
    assert.equal(note, null, 'no note: history is there');

    const box = await page.locator(cpuPlot).boundingBox();
    await page.mouse.move(box.x + box.width * 0.1, box.y + box.height / 2);
    await page.waitForFunction(() => document.querySelector('#detail .chart:first-child .tooltip.history'), null, WAIT);
    const tip = await page.$eval('#detail .chart:first-child .tooltip', (el) => ({
      t: Number(el.dataset.t),
      time: el.querySelector('time').textContent,
      total: el.querySelector('li .value').textContent,
    }));
    assert.ok(tip.t < oldestInRedis, `the point at ${tip.t} is older than Redis's oldest, ${oldestInRedis}`);
    assert.ok(tip.time.endsWith(' · history'), tip.time);

    // The answer drawn: the request the page made last, and what the sink said (buckets or samples).
    const answer = answers.filter((a) => a.status === 200).at(-1);
    assert.ok(answer, `the page asked the sink: ${answers.map((a) => `${a.status} ${a.url}`).join(', ')}`);
    assert.equal(answer.url.searchParams.get('key'), KEY);
    const from = Number(answer.url.searchParams.get('from'));
    const to = Number(answer.url.searchParams.get('to'));
    const points = Number(answer.url.searchParams.get('points'));
    assert.ok(answer.json.points.length <= points, `${answer.json.points.length} points for ${points} asked`);
    // The bucket under the crosshair, from the samples written: its average, minimum and maximum CPU.
    const step = answer.json.step_ms;
    const inBucket = written.filter((t) => t >= from && t <= to && (step ? t >= tip.t && t < tip.t + step : t === tip.t));
    assert.ok(inBucket.length >= 1, `samples in the bucket at ${tip.t} (step ${step} ms)`);
    const cpu = inBucket.map((t) => perfSample(HOST, t).cpu.total);
    const avg = cpu.reduce((a, b) => a + b, 0) / cpu.length;
    assert.equal(tip.total, `${percent(avg)} (${percent(Math.min(...cpu))}–${percent(Math.max(...cpu))})`);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('without a sink, zooming out stops at the window and the page says so', async () => {
  const context = await chromium.browser.newContext({ viewport: { width: 1440, height: 960 }, timezoneId: 'UTC' });
  try {
    const page = await context.newPage();
    page.on('pageerror', (err) => errors.push(err));
    let asked = 0;
    page.on('request', (request) => { if (request.url().startsWith(`${sink.url}/`)) asked += 1; });
    await page.goto(`${relay.url}?history=off#host=${HOST}`);
    await page.waitForSelector(`#detail[data-host="${HOST}"][data-t][data-range="live"]`, WAIT);
    await page.click('#pause');
    const frozenT = await page.$eval('#detail', (el) => Number(el.dataset.t));
    for (let i = 0; i < 3; i += 1) await page.click('#detail [data-action="zoom-out"]');
    assert.equal(await page.$eval('#detail', (el) => el.dataset.range), `${frozenT - 120_000}-${frozenT}`);
    assert.equal(
      await page.textContent('#detail .range-note'),
      `No history sink is configured: the charts go back as far as the window (2${NNBSP}min).`,
    );
    assert.equal(asked, 0, 'nothing asked of the sink');
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});
