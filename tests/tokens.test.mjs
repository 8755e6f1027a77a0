// The wasm client's `token` option as a function (wasm/src/web/client/token.rs) against a real relay that verifies
// signed tokens (--jwt-secret), a real redis-server and Chromium: the function is called to connect, and again when
// the relay says the token expires soon; the fresh token goes over the open socket, so the session stays live, with
// its windows, past the first token's exp. Tokens are signed here with node's own HMAC, as the README shows.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { startRedis, startRelay, launchBrowser } from './support/processes.mjs';

const SECRET = 'a test-only secret of at least 32 bytes';

/** An HS256 JWT of `claims`. */
function sign(claims) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}

let redis;
let relay;
let chromium;

before(async () => {
  redis = await startRedis();
  relay = await startRelay({
    redisUrl: redis.url, args: ['--allow', 'tenant:*', '--jwt-secret', SECRET, '--jwt-leeway', '0'],
  });
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.stop();
  await relay?.stop();
  await redis?.stop();
});

test('a token function is called to connect and to refresh, and the session outlives the first exp', async () => {
  const now = Math.floor(Date.now() / 1000);
  const grant = { sub: 'alice', replicast: { read: ['tenant:a:*'] } };
  const first = { ...grant, exp: now + 3 };
  const tokens = [sign(first), sign({ ...grant, exp: now + 300 })];
  await redis.cli('SET', 'tenant:a:before', 'one');

  const page = await chromium.browser.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err));
  await page.goto(relay.url);
  await page.evaluate(async (tokens) => {
    const { default: init, Replicast } = await import('/pkg/replicast_wasm.js');
    await init();
    window.statuses = [];
    window.calls = 0;
    const token = async () => tokens[Math.min(window.calls++, tokens.length - 1)];
    window.client = new Replicast(`ws://${location.host}/ws`, { patterns: ['tenant:*'], window: 5, token });
    window.client.onStatus((s) => window.statuses.push(s));
  }, tokens);
  await page.waitForFunction(() => window.client.status === 'live', null, { timeout: 20_000 });
  // The first token lives less than the relay's notice lead: the refresh is asked for at once.
  await page.waitForFunction(() => window.calls === 2, null, { timeout: 10_000 });
  // Past the first token's exp (the relay closes a session it did not refresh then).
  await page.waitForFunction((exp) => Date.now() / 1000 > exp + 1, first.exp, { timeout: 10_000 });
  await redis.cli('SET', 'tenant:a:after', 'two');
  await redis.cli('SET', 'tenant:b:other', 'never');
  await page.waitForFunction(() => window.client.keys().includes('tenant:a:after'), null, { timeout: 10_000 });

  const seen = await page.evaluate(() => ({
    keys: window.client.keys(), statuses: window.statuses, calls: window.calls,
  }));
  assert.deepEqual(seen.keys, ['tenant:a:after', 'tenant:a:before'], 'only the token\'s keys');
  assert.deepEqual(seen.statuses, ['connecting', 'live'], 'one session throughout');
  assert.equal(seen.calls, 2);
  assert.deepEqual(errors, []);
  await page.close();
});
