// The live write profile end to end: a known workload replayed through a real redis-server (`redis-cli --pipe`) is
// counted by the real relay from its replica link, and `/profile` and www/profile.html in Chromium show exactly
// its counts (the window is longer than the test, so it holds all of it): commands by name, the hottest keys and
// prefixes by writes and by stream bytes, MULTI sizes, the keys DEL and UNLINK removed (an expiration among them),
// and the keys Redis evicts, as many as its own INFO says. A key outside --allow, written a thousand times, never
// appears — neither its name nor its prefix — in the raw bytes of /profile, /metrics, any response the page
// receives or any WebSocket frame the dashboard it is opened from receives; a prefix that --profile-prefixes names
// does, with its count. Reading the profile sends Redis nothing: its command statistics do not move and no client
// runs MONITOR. Without the token, /profile answers 401. A screenshot goes to target/screenshots/profile.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { startRedis, startRelay, launchBrowser, repoRoot } from './support/processes.mjs';

const TOKEN = 'profile-test-token';
const SECRET_KEY = 'secret:doc:4f2c-hidden-name';
const TENANT_KEY = 'tenant:acme-corp:ids';
const WAIT_MS = 20_000;
const shots = path.join(repoRoot, 'target/screenshots');

let redis;
let relay;
let chromium;

before(async () => {
  redis = await startRedis();
  relay = await startRelay({
    redisUrl: redis.url,
    args: ['--allow', 'perf:*,app:*', '--token', TOKEN, '--profile-window', '3600', '--profile-prefixes', 'tenant:'],
  });
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.stop();
  await relay?.stop();
  await redis?.stop();
});

async function waitFor(what, check) {
  const deadline = Date.now() + WAIT_MS;
  let last;
  while (!(last = await check())) {
    if (Date.now() > deadline) assert.fail(`${what}: not after ${WAIT_MS} ms`);
    await sleep(100);
  }
  return last;
}

/** GET `path` on the relay; resolves to the status and the raw body bytes. */
function rawGet(path) {
  return new Promise((resolve, reject) => {
    http.get(new URL(path, relay.url), (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
    }).on('error', reject);
  });
}

/** Sends `commands` (arrays of arguments) to Redis as one `redis-cli --pipe` stream. */
async function pipe(commands) {
  const resp = commands.map((args) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`).join('');
  const child = spawn('redis-cli', ['-p', String(redis.port), '--pipe'], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stdin.end(resp);
  const [code] = await once(child, 'exit');
  assert.equal(code, 0, out);
  assert.match(out, /errors: 0, replies: \d+/);
}

const repeat = (n, make) => Array.from({ length: n }, (_, i) => make(i));

/** The bytes of `args` as one RESP command: what Redis propagates for a command it does not rewrite. */
const respBytes = (args) => Buffer.byteLength(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
const sum = (values) => values.reduce((a, b) => a + b, 0);

/** Redis's `INFO <section>` as a map of its fields. */
async function info(section) {
  const text = await redis.cli('INFO', section);
  return Object.fromEntries(text.split(/\r?\n/).filter((l) => l.includes(':')).map((l) => l.split(/:(.*)/s).slice(0, 2)));
}

/** Every secret: what must never leave the relay, as bytes to look for. */
const FORBIDDEN = ['secret', '4f2c', 'hidden-name', 'acme-corp'];

function assertNoSecret(bytes, where) {
  const text = Buffer.from(bytes).toString('latin1');
  for (const word of FORBIDDEN) assert.ok(!text.includes(word), `${word} in ${where}: ${text.slice(0, 400)}`);
}

test('the profile counts a known workload exactly, and never names a key outside --allow', async () => {
  await waitFor('the relay streams', async () => (await fetch(new URL('/healthz', relay.url))).status === 200);
  await pipe([
    ...repeat(500, (i) => ['SET', 'perf:hot', `v${i}`]),
    ...repeat(100, (i) => ['ZADD', 'perf:zset', String(i), `m${i}`]),
    ...repeat(50, (i) => ['HSET', 'app:user:1', `f${i}`, 'v']),
    ...repeat(1000, (i) => ['SET', SECRET_KEY, `secret value ${i}`]),
    ...repeat(200, (i) => ['SET', TENANT_KEY, `${i}`]),
    ...repeat(20, (i) => [['MULTI'], ['SET', 'perf:m1', `${i}`], ['SET', 'perf:m2', `${i}`], ['SET', 'perf:m3', `${i}`], ['EXEC']]).flat(),
    ['DEL', 'perf:hot'],
    ['UNLINK', 'perf:zset'],
    ['SET', 'perf:expiring', 'v', 'PX', '50'],
  ]);
  // Reading the key once it expired makes Redis expire it, which it propagates as a DEL.
  await sleep(100);
  assert.equal(await redis.cli('GET', 'perf:expiring'), '');

  const expected = { set: 500 + 1000 + 200 + 60 + 1, zadd: 100, hset: 50, multi: 20, exec: 20, del: 2, unlink: 1 };
  const read = async () => {
    const { status, body } = await rawGet(`/profile?token=${TOKEN}`);
    assert.equal(status, 200);
    assertNoSecret(body, '/profile');
    return JSON.parse(body.toString('utf8'));
  };
  const profile = await waitFor('the workload counted', async () => {
    const p = await read();
    return p.since_start.commands.del >= expected.del ? p : null;
  });
  // By stream bytes: each command's bytes as Redis propagated it (these are not rewritten), one key each.
  const bytes = {
    'perf:hot': sum(repeat(500, (i) => respBytes(['SET', 'perf:hot', `v${i}`]))) + respBytes(['DEL', 'perf:hot']),
    'perf:zset': sum(repeat(100, (i) => respBytes(['ZADD', 'perf:zset', String(i), `m${i}`]))) + respBytes(['UNLINK', 'perf:zset']),
    'app:user:1': sum(repeat(50, (i) => respBytes(['HSET', 'app:user:1', `f${i}`, 'v']))),
    'perf:m1': sum(repeat(20, (i) => respBytes(['SET', 'perf:m1', `${i}`]))),
  };
  const tenantBytes = sum(repeat(200, (i) => respBytes(['SET', TENANT_KEY, `${i}`])));
  for (const window of [profile.since_start, profile.current]) {
    const { select, ping, ...commands } = window.commands;
    assert.deepEqual(commands, expected);
    assert.deepEqual(window.deleted_keys, { del: 2, unlink: 1 });
    assert.deepEqual(window.multi, { blocks: 20, commands: 60, largest: 3, sizes: [{ from: 3, to: 4, blocks: 20 }] });
    assert.equal(window.hidden.key_writes, 1200);
    const writes = Object.fromEntries(window.keys.by_writes.map((h) => [h.name, h.writes]));
    assert.deepEqual(writes, {
      'perf:hot': 501, 'perf:zset': 101, 'app:user:1': 50, 'perf:m1': 20, 'perf:m2': 20, 'perf:m3': 20,
      'perf:expiring': 2,
    });
    assert.ok(window.keys.by_writes.every((h) => h.error === 0), 'exact while the keys fit the summary');
    const prefixes = Object.fromEntries(window.prefixes.by_writes.map((h) => [h.name, h.writes]));
    assert.deepEqual(prefixes, { 'perf:': 664, 'tenant:': 200, 'app:': 50, 'app:user:': 50 });
    const keyBytes = Object.fromEntries(window.keys.by_bytes.map((h) => [h.name, h.bytes]));
    for (const [key, expect] of Object.entries(bytes)) assert.equal(keyBytes[key], expect, `${key} by bytes`);
    assert.ok(window.keys.by_bytes.every((h) => h.error === 0), 'exact while the keys fit the summary');
    const prefixBytes = Object.fromEntries(window.prefixes.by_bytes.map((h) => [h.name, h.bytes]));
    assert.equal(prefixBytes['app:'], bytes['app:user:1']);
    assert.equal(prefixBytes['app:user:'], bytes['app:user:1']);
    assert.equal(prefixBytes['tenant:'], tenantBytes);
  }
  assert.equal(profile.previous, null);
  assert.equal(profile.window_seconds, 3600);

  // Nothing leaves the relay's other endpoints either.
  for (const endpoint of ['/metrics', '/healthz']) assertNoSecret((await rawGet(endpoint)).body, endpoint);

  // The profile costs Redis nothing: reading it sends no command (Redis counts every command it runs, by name;
  // the replica link's own REPLCONF ACKs and this test's INFO aside), and no client runs MONITOR.
  const quiet = ({ cmdstat_info, cmdstat_replconf, ...others }) => others;
  const before = quiet(await info('commandstats'));
  for (let i = 0; i < 5; i += 1) await read();
  await sleep(1500);
  assert.deepEqual(quiet(await info('commandstats')), before);
  assert.ok(!('cmdstat_monitor' in before), 'no client ran MONITOR');
  const clients = (await redis.cli('CLIENT', 'LIST')).split('\n');
  assert.ok(clients.every((c) => !/ flags=\S*O/.test(c)), clients.join('\n'));

  const refused = await rawGet('/profile');
  assert.equal(refused.status, 401);
  assert.equal((await rawGet('/profile?token=wrong')).status, 401);
});

test('the profile page, opened from the dashboard, shows the counts, and no response it receives names a key outside --allow', async () => {
  const page = await chromium.browser.newPage();
  const errors = [];
  const bodies = [];
  page.on('pageerror', (err) => errors.push(err));
  page.on('response', (res) => { bodies.push(res.body().then((b) => ({ url: res.url(), b }), () => null)); });
  const frames = [];
  page.on('websocket', (ws) => ws.on('framereceived', ({ payload }) => frames.push(Buffer.from(payload))));
  try {
    // From the dashboard's header, whose link carries the dashboard's token. The dashboard follows every key
    // (`keys=*`), so --allow alone decides what its WebSocket receives.
    await page.goto(new URL(`/?token=${TOKEN}&keys=*`, relay.url).href);
    await waitFor('the dashboard\'s snapshot', async () => Buffer.concat(frames).includes('perf:m1'));
    await page.click('nav.pages a:has-text("Write profile")');
    await page.waitForURL(/profile\.html\?token=/);
    await page.waitForFunction(() => document.body.dataset.state === 'live');
    // Two polls at least, so what the page received is more than its first answer.
    await waitFor('a second poll', async () => (await Promise.all(bodies)).filter((r) => r?.url.includes('/profile?')).length >= 2);
    await mkdir(shots, { recursive: true });
    await page.screenshot({ path: path.join(shots, 'profile.png'), fullPage: true });
    const shown = await page.evaluate(() => ({
      set: document.querySelector('tr[data-command="set"]')?.dataset.value,
      setPerSecond: document.querySelector('tr[data-command="set"] td:nth-child(2)')?.textContent,
      rates: document.querySelector('#panel-rates h2')?.textContent,
      hot: document.querySelector('#panel-keys-writes tr[data-name="perf:hot"]')?.dataset.value,
      tenant: document.querySelector('#panel-prefixes-writes tr[data-name="tenant:"]')?.dataset.value,
      hidden: document.querySelector('[data-fact="total-hidden"]')?.dataset.value,
      text: document.body.innerText,
    }));
    // The raw bytes first: what the page and the dashboard before it received.
    assertNoSecret(Buffer.concat(frames), `${frames.length} WebSocket frames`);
    for (const r of await Promise.all(bodies)) if (r) assertNoSecret(r.b, r.url);
    assertNoSecret(Buffer.from(shown.text), 'the page\'s text');
    const { setPerSecond, rates, ...counts } = shown;
    assert.deepEqual({ ...counts, text: undefined }, { set: '1761', hot: '501', tenant: '200', hidden: '1200', text: undefined });
    // Shown as rates over the window being filled (no window has ended yet), whose length the panel names rounded
    // to the second: 1,761 SETs over it.
    const seconds = Number(rates.match(/the last (\d+) s$/)?.[1]);
    assert.ok(seconds >= 1, rates);
    const perSecond = Number(setPerSecond);
    assert.ok(perSecond >= 1761 / (seconds + 0.5) - 0.5 && perSecond <= 1761 / (seconds - 0.5) + 0.5,
      `${setPerSecond} SETs/s over ${rates}`);
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
  }
});

test('the keys Redis evicts count as the DELs its primary sends for them, as many as Redis says it evicted', async () => {
  const read = async () => JSON.parse((await rawGet(`/profile?token=${TOKEN}`)).body.toString('utf8')).since_start;
  const before = await read();
  const stats = await info('stats');
  const used = Number((await info('memory')).used_memory);
  // Room for about 200 of the 1,000 values of 10 kB written: the rest of them, or older keys, are evicted.
  await redis.cli('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru');
  await redis.cli('CONFIG', 'SET', 'maxmemory', String(used + 2_000_000));
  try {
    await pipe(repeat(1000, (i) => ['SET', `perf:evict:${i}`, 'x'.repeat(10_000)]));
  } finally {
    await redis.cli('CONFIG', 'SET', 'maxmemory', '0');
  }
  const after = await info('stats');
  const evicted = Number(after.evicted_keys) - Number(stats.evicted_keys);
  const expired = Number(after.expired_keys) - Number(stats.expired_keys);
  assert.ok(evicted >= 500, `Redis evicted ${evicted} keys`);
  const counted = await waitFor('the workload counted', async () => {
    const p = await read();
    return p.commands.set >= before.commands.set + 1000 && p.deleted_keys.del >= before.deleted_keys.del + evicted ? p : null;
  });
  assert.equal(counted.commands.set - before.commands.set, 1000);
  assert.equal(counted.deleted_keys.del - before.deleted_keys.del, evicted + expired);
  assert.equal(counted.commands.del - before.commands.del, evicted + expired);
  assert.equal(counted.deleted_keys.unlink, before.deleted_keys.unlink);
});
