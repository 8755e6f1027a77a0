// Saved views across reloads (the client's `saveView` option, wasm/src/web/client/saved_views.rs) against a real
// relay, redis-server and Chromium: a reloaded page shows its windows from IndexedDB before the relay answers, then
// resumes without a snapshot (the relay's counters say so) and equals Redis; a view the backlog no longer covers, a
// corrupted record and a Redis restarted under a new epoch each fall back to a snapshot, and the record that could
// not be continued is cleared; a record is restored only for the signed token's identity (`sub` and grant) that
// saved it; and the views of an origin stay within `maxBytes` together.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { startRedis, startRelay, launchBrowser } from './support/processes.mjs';

let redis;
let chromium;

before(async () => {
  redis = await startRedis();
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.stop();
  await redis?.stop();
});

/** A page of the relay's origin that runs no client of its own (the dashboard would open sessions too). */
const QUIET_PAGE = '/pkg/replicast_wasm.js';
/** The interval is long so that only the test's `saveView()`, `pagehide` and a reload save. */
const SAVING = { saveView: { intervalMs: 600_000 } };

/** Loads the client's module into the page, so that a client can then start while the relay is frozen. */
async function loadModule(page) {
  await page.evaluate(async () => {
    const module = await import('/pkg/replicast_wasm.js');
    await module.default();
    window.Replicast = module.Replicast;
  });
}

/** Starts `window.client` with `options`; relay notices and warnings go to `window.warnings`. */
async function startClient(page, options) {
  await page.evaluate((options) => {
    window.warnings = [];
    const warn = console.warn;
    console.warn = (...args) => {
      window.warnings.push(args.join(' '));
      warn(...args);
    };
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    window.client = new window.Replicast(`${scheme}://${location.host}/ws`, options);
  }, options);
}

async function openPage(relay) {
  const page = await chromium.browser.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err));
  await page.goto(new URL(QUIET_PAGE, relay.url).href);
  await loadModule(page);
  return { page, errors };
}

/** Reloads the page (its client saves on `pagehide`) and loads the module again, with no client yet. */
async function reload(page) {
  await page.reload();
  await loadModule(page);
}

async function counter(relay, name) {
  const text = await (await fetch(new URL('/metrics', relay.url))).text();
  const line = text.split('\n').find((l) => l.startsWith(`replicast_${name} `));
  assert.ok(line, `no replicast_${name} in /metrics`);
  return Number(line.split(' ')[1]);
}

/** Sessions that resumed, and snapshots sent from Redis or from the relay's state. */
async function joins(relay) {
  return {
    resumes: await counter(relay, 'session_resumes_total'),
    snapshots: (await counter(relay, 'snapshots_total')) + (await counter(relay, 'state_snapshots_total')),
  };
}

/** Every window of the page's client as `{ key: [members or items, newest first] }`. */
function shown(page) {
  return page.evaluate(() => Object.fromEntries(window.client.keys().map((key) => {
    const w = window.client.window(key);
    return [key, w.items.map((i) => i.member ?? i.value ?? `${i.field}=${i.value}`)];
  })));
}

/** What Redis holds for `keys` (a sorted set and a list each), newest first, as `shown` gives it (window 10). */
async function inRedis(prefix) {
  const view = {};
  for (const key of (await redis.cli('--scan', '--pattern', `${prefix}*`)).split('\n').filter(Boolean).sort()) {
    const type = await redis.cli('TYPE', key);
    const items = type === 'zset'
      ? (await redis.cli('ZREVRANGE', key, '0', '9')).split('\n')
      : (await redis.cli('LRANGE', key, '-10', '-1')).split('\n').reverse();
    view[key] = items.filter(Boolean);
  }
  return view;
}

/** Waits until the page's windows equal Redis's. */
async function equalsRedis(page, prefix) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const [seen, expected] = [await shown(page), await inRedis(prefix)];
    try {
      assert.deepEqual(seen, expected);
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function write(prefix, from, to) {
  for (let i = from; i < to; i++) {
    await redis.cli('ZADD', `${prefix}z`, String(i), `{"n":${i}}`);
    await redis.cli('RPUSH', `${prefix}l`, `item ${i}`);
  }
}

/** The saved views' records in the page's IndexedDB, as byte arrays by key. */
function records(page) {
  return page.evaluate(() => new Promise((resolve, reject) => {
    const open = indexedDB.open('replicast');
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      if (!db.objectStoreNames.contains('views')) return resolve({});
      const store = db.transaction('views').objectStore('views');
      const keys = store.getAllKeys();
      const values = store.getAll();
      values.onsuccess = () => {
        resolve(Object.fromEntries(keys.result.map((k, i) => [k, Array.from(values.result[i])])));
        db.close();
      };
    };
  }));
}

async function live(page) {
  await page.waitForFunction(() => window.client.status === 'live', null, { timeout: 20_000 });
}

test('a reloaded page shows its saved windows before the relay answers, then resumes without a snapshot', async () => {
  const relay = await startRelay({ redisUrl: redis.url });
  try {
    const options = { patterns: ['perf:saved:a:*'], window: 10, ...SAVING };
    await write('perf:saved:a:', 0, 15);
    const { page, errors } = await openPage(relay);
    await startClient(page, options);
    await live(page);
    await equalsRedis(page, 'perf:saved:a:');
    assert.equal(await page.evaluate(() => window.client.saveView()), true);
    // Written after that save: only the save on `pagehide` has them.
    await write('perf:saved:a:', 15, 18);
    await equalsRedis(page, 'perf:saved:a:');
    const before = await shown(page);

    await reload(page);
    const counted = await joins(relay);
    relay.pause();
    try {
      await startClient(page, options);
      await page.waitForFunction(() => window.client.keys().length === 2, null, { timeout: 10_000 });
      assert.deepEqual(await shown(page), before, 'the last view, from IndexedDB, with the relay frozen');
      assert.equal(await page.evaluate(() => window.client.status), 'connecting');
    } finally {
      relay.resume();
    }
    await live(page);
    await write('perf:saved:a:', 18, 21);
    await equalsRedis(page, 'perf:saved:a:');
    const after = await joins(relay);
    assert.equal(after.resumes, counted.resumes + 1, 'the reloaded page resumed');
    assert.equal(after.snapshots, counted.snapshots, 'and was sent no snapshot');
    assert.deepEqual(errors, []);
    await page.close();
  } finally {
    await relay.stop();
  }
});

test('a saved view the backlog moved past, or a corrupted one, falls back to a snapshot', async () => {
  const relay = await startRelay({ redisUrl: redis.url, args: ['--backlog-bytes', '65536'] });
  try {
    const options = { patterns: ['perf:saved:b:*'], window: 10, ...SAVING };
    await write('perf:saved:b:', 0, 5);
    const { page, errors } = await openPage(relay);
    await startClient(page, options);
    await live(page);
    await equalsRedis(page, 'perf:saved:b:');
    assert.equal(await page.evaluate(() => window.client.saveView()), true);
    await reload(page);
    const second = page;

    // 200 KB of watched writes while the page has no client: more than the backlog holds.
    const filler = 'x'.repeat(1000);
    for (let i = 0; i < 200; i++) await redis.cli('RPUSH', 'perf:saved:b:l', `${i} ${filler}`);
    let counted = await joins(relay);
    await startClient(second, options);
    await live(second);
    await equalsRedis(second, 'perf:saved:b:');
    let after = await joins(relay);
    assert.equal(after.resumes, counted.resumes, 'no resume: the backlog moved past the saved offset');
    assert.equal(after.snapshots, counted.snapshots + 1);
    // The record the relay could not continue is gone (the next save writes the new one).
    await second.waitForFunction(async () => {
      const open = indexedDB.open('replicast');
      const db = await new Promise((resolve) => { open.onsuccess = () => resolve(open.result); });
      const count = db.transaction('views').objectStore('views').count();
      const n = await new Promise((resolve) => { count.onsuccess = () => resolve(count.result); });
      db.close();
      return n === 0;
    }, null, { timeout: 10_000 });

    // A saved record with one byte flipped in the middle.
    assert.equal(await second.evaluate(() => window.client.saveView()), true);
    await second.evaluate(() => window.client.close());
    const [[key, bytes]] = Object.entries(await records(second));
    await second.evaluate(([key, bytes]) => new Promise((resolve, reject) => {
      const open = indexedDB.open('replicast');
      open.onsuccess = () => {
        const view = Uint8Array.from(bytes);
        view[view.length >> 1] ^= 0x41;
        const tx = open.result.transaction('views', 'readwrite');
        tx.objectStore('views').put(view, key);
        tx.oncomplete = () => resolve();
        tx.onerror = () => reject(tx.error);
      };
    }), [key, bytes]);
    await reload(second);
    counted = await joins(relay);
    await startClient(second, options);
    await live(second);
    await equalsRedis(second, 'perf:saved:b:');
    after = await joins(relay);
    assert.equal(after.snapshots, counted.snapshots + 1, 'a fresh snapshot');
    assert.equal(after.resumes, counted.resumes);
    const warnings = await second.evaluate(() => window.warnings);
    assert.ok(warnings.some((w) => w.includes('the saved view cannot be used') && w.includes('checksum')), warnings.join('\n'));
    assert.deepEqual(await records(second), {}, 'the corrupted record was dropped');
    assert.deepEqual(errors, []);
    await second.close();
  } finally {
    await relay.stop();
  }
});

test('a Redis restarted under a new epoch clears the saved view, and the page shows what the new one holds', async () => {
  const own = await startRedis();
  let relay = await startRelay({ redisUrl: own.url });
  try {
    const options = { patterns: ['perf:saved:c:*'], window: 10, ...SAVING };
    await own.cli('ZADD', 'perf:saved:c:z', '1', 'old');
    const { page, errors } = await openPage(relay);
    await startClient(page, options);
    await live(page);
    await page.waitForFunction(() => window.client.keys().length === 1, null, { timeout: 10_000 });
    assert.equal(await page.evaluate(() => window.client.saveView()), true);
    const oldEpoch = await page.evaluate(() => window.client.epoch);
    await page.evaluate(() => window.client.close());
    assert.equal(Object.keys(await records(page)).length, 1);

    // The same ports, an empty Redis (a new replication ID) and a new relay.
    const { listen } = relay;
    await relay.stop();
    await own.stop();
    const again = await startRedis({ port: own.port });
    Object.assign(own, again);
    await own.cli('ZADD', 'perf:saved:c:z', '2', 'new');
    relay = await startRelay({ redisUrl: own.url, listen });
    await reload(page);
    await startClient(page, options);
    await live(page);
    await page.waitForFunction(() => window.client.window('perf:saved:c:z')?.items.length === 1, null, { timeout: 10_000 });
    assert.deepEqual(await shown(page), { 'perf:saved:c:z': ['new'] });
    assert.notEqual(await page.evaluate(() => window.client.epoch), oldEpoch);
    await page.waitForFunction(async () => {
      const open = indexedDB.open('replicast');
      const db = await new Promise((resolve) => { open.onsuccess = () => resolve(open.result); });
      const count = db.transaction('views').objectStore('views').count();
      const n = await new Promise((resolve) => { count.onsuccess = () => resolve(count.result); });
      db.close();
      return n === 0;
    }, null, { timeout: 10_000 });
    assert.deepEqual(errors, []);
    await page.close();
  } finally {
    await relay.stop();
    await own.stop();
  }
});

const SECRET = 'a test-only secret of at least 32 bytes';

/** An HS256 JWT of `claims`, signed with node's own HMAC. */
function sign(claims) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}

test('a saved view is restored only for the token identity that saved it', async () => {
  const relay = await startRelay({ redisUrl: redis.url, args: ['--allow', 'tenant:*', '--jwt-secret', SECRET] });
  try {
    const exp = Math.floor(Date.now() / 1000) + 600;
    const alice = sign({ sub: 'alice', exp, replicast: { read: ['tenant:a:*'] } });
    // Another user with another grant, and another user with alice's very grant.
    const bob = sign({ sub: 'bob', exp, replicast: { read: ['tenant:b:*'] } });
    const carol = sign({ sub: 'carol', exp, replicast: { read: ['tenant:a:*'] } });
    const options = (token) => ({ patterns: ['tenant:*'], window: 10, token, ...SAVING });
    await redis.cli('ZADD', 'tenant:a:z', '1', 'secret of a');
    await redis.cli('ZADD', 'tenant:b:z', '1', 'of b');
    const { page, errors } = await openPage(relay);
    await startClient(page, options(alice));
    await live(page);
    await page.waitForFunction(() => window.client.keys().length === 1, null, { timeout: 10_000 });
    assert.equal(await page.evaluate(() => window.client.saveView()), true);
    await page.evaluate(() => window.client.close());

    // Reloads the page and joins as `token`'s user: the relay's join counts before, and once its key is shown.
    const rejoin = async (token) => {
      await reload(page);
      const before = await joins(relay);
      await startClient(page, options(token));
      await live(page);
      await page.waitForFunction(() => window.client.keys().length === 1, null, { timeout: 10_000 });
      return { before, after: await joins(relay) };
    };

    // Bob, in the same browser: alice's record is not his, so his page joins with a snapshot of his own keys.
    let { before, after } = await rejoin(bob);
    assert.deepEqual(await shown(page), { 'tenant:b:z': ['of b'] });
    assert.equal(after.resumes, before.resumes, 'bob resumed from no saved view');
    assert.equal(after.snapshots, before.snapshots + 1);
    await page.evaluate(() => window.client.close());

    // Carol holds alice's grant: the keys she may see are the same, yet alice's record is not hers either.
    ({ before, after } = await rejoin(carol));
    assert.equal(after.resumes, before.resumes, 'carol resumed from no saved view');
    assert.equal(after.snapshots, before.snapshots + 1);
    await page.evaluate(() => window.client.close());

    // Alice again: her own record is still there, and her page resumes from it.
    ({ before, after } = await rejoin(alice));
    assert.deepEqual(await shown(page), { 'tenant:a:z': ['secret of a'] });
    assert.equal(after.resumes, before.resumes + 1, 'alice resumed from her saved view');
    assert.equal(after.snapshots, before.snapshots);
    assert.deepEqual(errors, []);
    await page.close();
  } finally {
    await relay.stop();
  }
});

test('saved views stay within maxBytes together, the oldest evicted first, and one larger than maxBytes is not kept', async () => {
  const relay = await startRelay({ redisUrl: redis.url });
  try {
    for (const name of ['a', 'b', 'c', 'd']) await write(`perf:bound:${name}:`, 0, 15);
    const { page, errors } = await openPage(relay);
    /** Starts a client of `perf:bound:<name>:*` saving under `maxBytes`, and saves its live view once. */
    const saveOne = async (name, maxBytes) => {
      const options = { patterns: [`perf:bound:${name}:*`], window: 10, saveView: { maxBytes, intervalMs: 600_000 } };
      await startClient(page, options);
      await live(page);
      await equalsRedis(page, `perf:bound:${name}:`);
      const saved = await page.evaluate(() => window.client.saveView());
      await page.evaluate(() => window.client.close());
      return saved;
    };
    /** The saved views' subscriptions (their record keys name the patterns) and their sizes, once `settled`. */
    const kept = async (settled) => {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const views = Object.entries(await records(page)).map(([key, bytes]) => [JSON.parse(key)[3][0], bytes.length]);
        if (settled(views) || Date.now() > deadline) return Object.fromEntries(views);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    const roomy = 1 << 20;
    assert.equal(await saveOne('a', roomy), true);
    assert.equal(await saveOne('b', roomy), true);
    const two = await kept((views) => views.length === 2);
    assert.deepEqual(Object.keys(two).sort(), ['perf:bound:a:*', 'perf:bound:b:*']);
    // Room for two views of this size, not three: saving a third evicts the oldest saved, a's.
    const size = Math.max(...Object.values(two));
    assert.equal(await saveOne('c', 2 * size + (size >> 1)), true);
    const evicted = await kept((views) => views.length === 2 && !views.some(([p]) => p === 'perf:bound:a:*'));
    assert.deepEqual(Object.keys(evicted).sort(), ['perf:bound:b:*', 'perf:bound:c:*']);
    // A view larger than the bound on its own is not kept, and evicts nothing (IndexedDB runs a read after the
    // transactions the save opened before it, so there is nothing to wait for).
    assert.equal(await saveOne('d', size >> 1), false);
    assert.deepEqual(Object.keys(await kept(() => true)).sort(), ['perf:bound:b:*', 'perf:bound:c:*']);
    assert.deepEqual(errors, []);
    await page.close();
  } finally {
    await relay.stop();
  }
});
