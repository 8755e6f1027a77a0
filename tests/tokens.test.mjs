// The wasm client's `token` option as a function (wasm/src/web/client/token.rs) against a real relay that verifies
// signed tokens (--jwt-secret), a real redis-server and Chromium: the function is called to connect, and again when
// the relay says the token expires soon; the fresh token goes over the open socket, so the session stays live, with
// its windows, past the first token's exp; and called again to reconnect, so the relay sees the token it gives then.
// Tokens are signed here with node's own HMAC, as the README shows.
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
  const grant = { sub: 'alice', replicast: { read: ['tenant:a:*'] } };
  await redis.cli('SET', 'tenant:a:before', 'one');

  const page = await chromium.browser.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err));
  // Signed when the client asks for it, so that the first token's 10 s count from its connect however slowly a
  // loaded machine opens the page (signed before, a 3 s token sometimes expired before its refresh came).
  const expiries = [];
  await page.exposeFunction('issueToken', () => {
    const exp = Math.floor(Date.now() / 1000) + (expiries.length === 0 ? 10 : 300);
    expiries.push(exp);
    return sign({ ...grant, exp });
  });
  await page.goto(relay.url);
  await page.evaluate(async () => {
    const { default: init, Replicast } = await import('/pkg/replicast_wasm.js');
    await init();
    window.statuses = [];
    window.calls = 0;
    const token = async () => {
      window.calls++;
      return window.issueToken();
    };
    window.client = new Replicast(`ws://${location.host}/ws`, { patterns: ['tenant:*'], window: 5, token });
    window.client.onStatus((s) => window.statuses.push(s));
  });
  await page.waitForFunction(() => window.client.status === 'live', null, { timeout: 20_000 });
  // The first token lives less than the relay's notice lead: the refresh is asked for at once.
  await page.waitForFunction(() => window.calls === 2, null, { timeout: 10_000 });
  // Past the first token's exp (the relay closes a session it did not refresh then).
  await page.waitForFunction((exp) => Date.now() / 1000 > exp + 1, expiries[0], { timeout: 20_000 });
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

test('the token function is called again to reconnect, and the token it gives decides what the new session sees', async () => {
  const now = Math.floor(Date.now() / 1000);
  const tokens = [
    sign({ sub: 'alice', exp: now + 300, replicast: { read: ['tenant:a:*'] } }),
    sign({ sub: 'bob', exp: now + 300, replicast: { read: ['tenant:b:*'] } }),
  ];
  await redis.cli('SET', 'tenant:a:first', 'one');

  const page = await chromium.browser.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err));
  // Every socket the client opens (with a token: the page's own dashboard opens others), those refused while no
  // relay listens included: each asks for its token first.
  let sockets = 0;
  page.on('websocket', (ws) => { if (new URL(ws.url()).searchParams.has('token')) sockets++; });
  await page.goto(relay.url);
  await page.evaluate(async (tokens) => {
    const { default: init, Replicast } = await import('/pkg/replicast_wasm.js');
    await init();
    window.calls = 0;
    const token = () => tokens[Math.min(window.calls++, tokens.length - 1)];
    window.client = new Replicast(`ws://${location.host}/ws`, { patterns: ['tenant:*'], window: 5, token });
  }, tokens);
  await page.waitForFunction(() => window.client.keys().includes('tenant:a:first'), null, { timeout: 20_000 });
  assert.equal(await page.evaluate(() => window.calls), 1);

  await relay.kill();
  // Written while no relay runs: the next relay's backlog starts after it, so the page joins with a snapshot.
  await redis.cli('SET', 'tenant:b:second', 'two');
  relay = await startRelay({
    redisUrl: redis.url, listen: relay.listen, args: ['--allow', 'tenant:*', '--jwt-secret', SECRET, '--jwt-leeway', '0'],
  });
  // Only a token asked for again, bob's, lets tenant:b:* reach the page; alice's would show tenant:a:* still.
  await page.waitForFunction(() => window.client.keys().includes('tenant:b:second'), null, { timeout: 30_000 });
  const seen = await page.evaluate(() => ({ keys: window.client.keys(), calls: window.calls }));
  // One call to connect, one for each attempt to reconnect: those that came before the new relay listened failed.
  assert.ok(seen.calls >= 2, `${seen.calls} calls`);
  assert.equal(seen.calls, sockets, 'a token asked for each socket opened');
  assert.ok(seen.keys.every((key) => key.startsWith('tenant:b:')), `the reconnected session's keys: ${seen.keys}`);
  assert.deepEqual(errors, []);
  await page.close();
});
