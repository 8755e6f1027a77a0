// The RDB inspector end to end: dumps written at test time by a real redis-server (every type and the encodings
// Redis 7.0 writes: quicklist, intset, hashtable, listpack, skiplist, streams; TTLs; two databases; a function)
// are dropped into www/inspect.html in Chromium (dropped on the page, and picked), served by the real relay. The
// page reads each in a worker with the wasm RDB reader (wasm/pkg-rdb) and must show exactly what
// `replicast rdb --stats` prints for the same file; a corrupt and a truncated file show the reader's error; a file
// of more than 1 GiB is streamed to the end with a progress bar that moves, Chromium's memory staying far below the
// file's size (bench/inspect/run.mjs measures it on multi-GB files), and can be cancelled; and the dashboard's own
// page never loads the RDB module. A screenshot goes to target/screenshots/inspect.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdir, mkdtemp, readFile, writeFile, copyFile, rm, stat, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  startRedis, startRelay, launchBrowser, freePort, relayBinary, repoRoot, chromiumRssMib,
} from './support/processes.mjs';

const run = promisify(execFile);
/** The page lists this many biggest keys; the CLI is asked for as many. */
const TOP = 50;
const shots = path.join(repoRoot, 'target/screenshots');

let redis;
let relay;
let chromium;
let work;

before(async () => {
  await access(path.join(repoRoot, 'wasm/pkg-rdb/replicast_wasm.js')).catch(() => {
    throw new Error('wasm/pkg-rdb is missing: run scripts/build.sh (it builds the inspector\'s wasm module)');
  });
  work = await mkdtemp(path.join(tmpdir(), 'replicast-inspect-'));
  // Small thresholds, so small test data takes both the compact and the plain encoding of each type.
  redis = await startRedis({
    args: ['--enable-debug-command', 'yes', '--rdbcompression', 'no', '--zset-max-listpack-entries', '8',
      '--hash-max-listpack-entries', '8', '--set-max-intset-entries', '8'],
  });
  relay = await startRelay({ redisUrl: redis.url });
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.stop();
  await relay?.stop();
  await redis?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** Saves Redis's data and copies the dump to `name` in the work folder. */
async function dump(name) {
  await redis.cli('SAVE');
  const dir = (await redis.cli('CONFIG', 'GET', 'dir')).split('\n')[1];
  const file = path.join(work, name);
  await copyFile(path.join(dir, 'dump.rdb'), file);
  return file;
}

async function fillEveryType() {
  const cli = redis.cli;
  await cli('FLUSHALL');
  await cli('SET', 'user:1:name', 'alice');
  await cli('SET', 'user:2:name', 'bob', 'EX', '1800');
  await cli('SET', 'counter', '12345');
  await cli('SET', 'blob:big', 'x'.repeat(20_000), 'EX', String(3 * 86_400));
  await cli('RPUSH', 'queue:jobs', 'a', 'b', 'c');
  await cli('SADD', 'set:ints', '1', '2', '3');
  await cli('SADD', 'set:many', ...Array.from({ length: 20 }, (_, i) => `m${i}`));
  await cli('ZADD', 'zset:small', '1', 'a', '2', 'b');
  await cli('ZADD', 'zset:big', ...Array.from({ length: 20 }, (_, i) => [String(i), `z${i}`]).flat());
  await cli('HSET', 'user:1:profile', 'age', '30', 'city', 'Oslo');
  await cli('HSET', 'hash:big', ...Array.from({ length: 20 }, (_, i) => [`f${i}`, `v${i}`]).flat());
  await cli('EXPIRE', 'hash:big', String(60 * 86_400));
  await cli('XADD', 'events:stream', '*', 'kind', 'login');
  await cli('XADD', 'events:stream', '*', 'kind', 'logout');
  await cli('XGROUP', 'CREATE', 'events:stream', 'readers', '0');
  await cli('-n', '1', 'SET', 'other:db', 'in database 1', 'PX', '20000000');
  await cli('-n', '1', 'LPUSH', 'other:list', 'x');
  await cli('FUNCTION', 'LOAD', "#!lua name=inspectlib\nredis.register_function('hello', function() return 'hi' end)");
}

async function cliStats(file) {
  const { stdout } = await run(relayBinary, ['rdb', '--stats', '--top', String(TOP), file], { maxBuffer: 64 << 20 });
  return JSON.parse(stdout);
}

/** Opens the inspector, picks `file`, and waits for the page to finish (done or failed). */
async function inspect(file, timeout = 60_000) {
  const page = await chromium.browser.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err));
  await page.goto(new URL('inspect.html', relay.url).href);
  await page.setInputFiles('#file', file);
  await page.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.state), null, { timeout });
  return { page, errors };
}

/** The summary the page shows, as it offers it for saving. */
const pageSummary = (page) => page.evaluate(async () => JSON.parse(await (await fetch(document.getElementById('save-json').href)).text()));

test('the page shows exactly what replicast rdb --stats prints for a dump of every type and encoding', async () => {
  await fillEveryType();
  const file = await dump('every-type.rdb');
  const cli = await cliStats(file);
  // The dump holds what the test meant it to: each encoding, both databases, the function.
  assert.deepEqual(Object.keys(cli.dbs).sort(), ['0', '1']);
  for (const [type, encoding] of [['list', 'quicklist'], ['set', 'intset'], ['set', 'hashtable'], ['zset', 'listpack'],
    ['zset', 'skiplist'], ['hash', 'listpack'], ['hash', 'hashtable'], ['stream', 'listpacks'], ['string', 'string']]) {
    assert.ok(cli.encodings[type]?.[encoding]?.keys > 0, `${type} · ${encoding} in ${JSON.stringify(cli.encodings)}`);
  }
  assert.equal(cli.function_libraries.inspectlib, 1);
  assert.equal(cli.checksum, 'verified');
  assert.equal(cli.ttl.under_1h.keys, 1);
  assert.equal(cli.ttl.under_1d.keys, 1);
  assert.equal(cli.ttl.under_7d.keys, 1);
  assert.equal(cli.ttl.later.keys, 1);

  const { page, errors } = await inspect(file);
  try {
    assert.equal(await page.getAttribute('body', 'data-state'), 'done', await page.textContent('#error'));
    assert.deepEqual(await pageSummary(page), cli);
    await mkdir(shots, { recursive: true });
    await page.screenshot({ path: path.join(shots, 'inspect.png'), fullPage: true });
    // What is drawn is that summary: per type, per database, the prefix tree, the biggest keys, the checksum.
    const shown = await page.evaluate(() => {
      const value = (sel) => Number(document.querySelector(sel)?.dataset.value);
      return {
        stringKeys: value('tr[data-type="string"] [data-field="keys"]'),
        hashBytes: value('tr[data-type="hash"] [data-field="bytes"]'),
        db1Keys: value('tr[data-db="1"] [data-field="keys"]'),
        userKeys: Number(document.querySelector('details[data-prefix="user:"]')?.dataset.keys),
        user1Keys: Number(document.querySelector('details[data-prefix="user:1:"]')?.dataset.keys),
        biggestRows: document.querySelectorAll('#panel-biggest tbody tr').length,
        firstBiggest: document.querySelector('#panel-biggest tbody tr td.key')?.textContent,
        checksum: document.querySelector('[data-fact="Checksum"]')?.textContent,
        expiredRow: value('tr[data-ttl="under_1h"] [data-field="keys"]'),
        functions: value('[data-fact="functions"]'),
      };
    });
    const sum = (type, field) => Object.values(cli.dbs).reduce((t, db) => t + (db[type]?.[field] ?? 0), 0);
    const child = (node, prefix) => node.children.find((c) => c.prefix === prefix);
    assert.deepEqual(shown, {
      stringKeys: sum('string', 'keys'),
      hashBytes: sum('hash', 'bytes'),
      db1Keys: 2,
      userKeys: child(cli.prefixes, 'user:').keys,
      user1Keys: child(child(cli.prefixes, 'user:'), 'user:1:').keys,
      biggestRows: cli.biggest_keys.length,
      firstBiggest: cli.biggest_keys[0].key,
      checksum: 'verified',
      expiredRow: 1,
      functions: 1,
    });
    assert.equal(shown.userKeys, 3);
    assert.equal(cli.biggest_keys[0].key, 'blob:big');
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
  }

  // The same file dropped on the page rather than picked: a drop event carrying it, as a file manager's drag sends.
  const dropped = await chromium.browser.newPage();
  try {
    await dropped.goto(new URL('inspect.html', relay.url).href);
    const transfer = await dropped.evaluateHandle(({ name, bytes }) => {
      const data = new DataTransfer();
      data.items.add(new File([new Uint8Array(bytes)], name));
      return data;
    }, { name: path.basename(file), bytes: [...await readFile(file)] });
    await dropped.dispatchEvent('#drop', 'dragover', { dataTransfer: transfer });
    assert.equal(await dropped.getAttribute('body', 'data-dragging'), '');
    await dropped.dispatchEvent('#drop', 'drop', { dataTransfer: transfer });
    await dropped.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.state));
    assert.equal(await dropped.getAttribute('body', 'data-state'), 'done', await dropped.textContent('#error'));
    assert.equal(await dropped.getAttribute('body', 'data-dragging'), null);
    assert.deepEqual(await pageSummary(dropped), cli);
  } finally {
    await dropped.close();
  }
});

test('a corrupt and a truncated dump show the reader\'s error, the same as the CLI\'s', async () => {
  await fillEveryType();
  const file = await dump('good.rdb');
  const bytes = await readFile(file);
  const corrupt = Buffer.from(bytes);
  corrupt[Math.floor(corrupt.length / 2)] ^= 0xff;
  const cases = [
    ['corrupt.rdb', corrupt],
    ['truncated.rdb', bytes.subarray(0, Math.floor(bytes.length * 0.7))],
  ];
  for (const [name, content] of cases) {
    const bad = path.join(work, name);
    await writeFile(bad, content);
    const cli = await run(relayBinary, ['rdb', '--stats', bad]).then(() => null, (err) => err.stderr);
    assert.ok(cli, `${name}: the CLI must fail`);
    // The reader's message, which names the offset, under the CLI's own context ("cannot parse the RDB").
    const reason = cli.match(/RDB offset \d+: .*/)?.[0];
    assert.ok(reason, cli);
    const { page, errors } = await inspect(bad);
    try {
      assert.equal(await page.getAttribute('body', 'data-state'), 'failed');
      const shown = await page.textContent('#error');
      assert.ok(shown.startsWith(`Cannot read ${name}: `), shown);
      assert.ok(shown.includes(reason), `${name}: the page says ${JSON.stringify(shown)}, the CLI ${JSON.stringify(reason)}`);
      assert.ok(await page.isHidden('#report'));
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
    }
  }
});

/** Chromium's memory is sampled this often while it reads the big file. */
const RSS_SAMPLE_MS = 100;
/** Chromium's whole process tree may grow by at most this much while it reads a file of more than 1 GiB: the
 * worker streams it through one 2 MiB buffer (bench/inspect/run.mjs measured +80 MiB for 1 GB and +108 MiB for
 * 3.3 GB), while a file read whole would add at least its own size. */
const MAX_GROWTH_MIB = 512;

test('a dump of more than 1 GiB is streamed to the end with a moving progress bar, in bounded memory, and agrees with the CLI; Cancel ends a read', async (t) => {
  await redis.cli('FLUSHALL');
  // A million strings of 1,100 bytes, stored uncompressed (`--rdbcompression no`): 1.1 GB of dump.
  await redis.cli('DEBUG', 'POPULATE', '1000000', 'big:key', '1100');
  const file = await dump('big.rdb');
  await redis.cli('FLUSHALL');
  try {
    const { size } = await stat(file);
    assert.ok(size > 2 ** 30, `${size} bytes`);

    // Cancel, once the first progress is shown: the page terminates its worker and goes back to idle. The click is
    // made by the page itself as the first progress lands (a mutation observer runs before the page handles the
    // worker's next message), so a fast read cannot finish between seeing the progress and clicking.
    const page = await chromium.browser.newPage();
    try {
      await page.goto(new URL('inspect.html', relay.url).href);
      await page.evaluate(() => {
        const text = document.getElementById('reading-text');
        const observer = new MutationObserver(() => {
          if (text.textContent !== '') {
            observer.disconnect();
            document.getElementById('cancel').click();
          }
        });
        observer.observe(text, { childList: true, characterData: true, subtree: true });
      });
      const started = page.waitForEvent('worker');
      await page.setInputFiles('#file', file);
      const worker = await started;
      // A worker left running would never close: fail after a minute rather than wait for ever.
      let timer;
      const closed = await Promise.race([
        new Promise((resolve) => worker.on('close', () => resolve(true))),
        new Promise((resolve) => { timer = setTimeout(() => resolve(false), 60_000); }),
      ]);
      clearTimeout(timer);
      assert.ok(closed, 'the worker still runs a minute after Cancel');
      assert.equal(await page.getAttribute('body', 'data-state'), 'idle');
      assert.ok(await page.isHidden('#reading'));
      assert.ok(await page.isHidden('#report'));
    } finally {
      await page.close();
    }

    const cli = await cliStats(file);
    const reading = await chromium.browser.newPage();
    const errors = [];
    reading.on('pageerror', (err) => errors.push(err));
    try {
      await reading.goto(new URL('inspect.html', relay.url).href);
      // Every value the progress bar takes, in order.
      await reading.evaluate(() => {
        window.progressValues = [];
        const bar = document.getElementById('progress');
        new MutationObserver(() => window.progressValues.push(bar.value)).observe(bar, { attributes: true, attributeFilter: ['value'] });
      });
      const before = chromiumRssMib();
      let peak = before;
      const sampler = setInterval(() => { peak = Math.max(peak, chromiumRssMib()); }, RSS_SAMPLE_MS);
      try {
        await reading.setInputFiles('#file', file);
        await reading.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.state), null, { timeout: 600_000 });
      } finally {
        clearInterval(sampler);
      }
      assert.equal(await reading.getAttribute('body', 'data-state'), 'done', await reading.textContent('#error'));
      t.diagnostic(`Chromium: ${before.toFixed(0)} MiB before, +${(peak - before).toFixed(0)} MiB at most while reading ${(size / 2 ** 20).toFixed(0)} MiB`);
      assert.ok(peak - before < MAX_GROWTH_MIB,
        `Chromium grew by ${(peak - before).toFixed(0)} MiB (from ${before.toFixed(0)}) reading ${(size / 2 ** 20).toFixed(0)} MiB`);
      const progress = await reading.evaluate(() => window.progressValues);
      assert.ok(progress.some((v) => v > 0 && v < 1), `the bar moved: ${progress.join(' ')}`);
      assert.ok(progress.every((v, i) => i === 0 || v >= progress[i - 1]), `the bar never goes back: ${progress.join(' ')}`);
      assert.equal(progress.at(-1), 1);
      const summary = await pageSummary(reading);
      assert.equal(summary.keys, 1_000_000);
      assert.deepEqual(summary, cli);
      assert.deepEqual(errors, []);
    } finally {
      await reading.close();
    }
  } finally {
    await rm(file, { force: true });
  }
});

test('the inspector works as a static site, without a relay (scripts/inspector-site.sh)', async () => {
  await fillEveryType();
  const file = await dump('offline.rdb');
  const site = path.join(work, 'site');
  await run('bash', [path.join(repoRoot, 'scripts/inspector-site.sh'), site]);
  const port = await freePort();
  const server = spawn('python3', ['-m', 'http.server', '--bind', '127.0.0.1', '-d', site, String(port)], { stdio: 'ignore' });
  const page = await chromium.browser.newPage();
  try {
    const url = `http://127.0.0.1:${port}/inspect.html`;
    for (let tries = 0; ; tries += 1) {
      try {
        await page.goto(url);
        break;
      } catch (err) {
        if (tries > 50) throw err;
        await new Promise((resolve) => { setTimeout(resolve, 100); });
      }
    }
    await page.setInputFiles('#file', file);
    await page.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.state));
    assert.equal(await page.getAttribute('body', 'data-state'), 'done', await page.textContent('#error'));
    assert.deepEqual(await pageSummary(page), await cliStats(file));
  } finally {
    await page.close();
    server.kill();
  }
});

test('the dashboard links to the inspector and never loads the RDB module itself', async () => {
  const page = await chromium.browser.newPage();
  try {
    const requested = [];
    page.on('request', (r) => requested.push(new URL(r.url()).pathname));
    page.on('worker', (w) => requested.push(new URL(w.url()).pathname));
    await page.goto(relay.url);
    await page.waitForSelector('nav.pages a[href="inspect.html"]');
    await page.waitForLoadState('networkidle');
    assert.ok(requested.some((p) => p.startsWith('/pkg/')), 'the dashboard loads its own package');
    assert.ok(!requested.some((p) => p.startsWith('/pkg-rdb/')), requested.join('\n'));
    // Nor does the package it loads carry the reader: only the inspector's own module has RdbInspect.
    const script = (where) => page.evaluate(async (url) => (await fetch(url)).text(), where);
    assert.ok(!/RdbInspect|RdbScan/.test(await script('/pkg/replicast_wasm.js')), 'the dashboard\'s package holds the RDB reader');
    assert.match(await script('/pkg-rdb/replicast_wasm.js'), /export class RdbInspect/);
    await page.click('nav.pages a[href="inspect.html"]');
    await page.waitForURL(/inspect\.html$/);
    await page.waitForSelector('#file', { state: 'attached' });
  } finally {
    await page.close();
  }
});
