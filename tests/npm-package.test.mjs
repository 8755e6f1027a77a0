// The npm package `replicast` as its users get it: built by scripts/package.sh, packed with `npm pack`, installed
// from the tarball into one temp workspace (tests/support/npm-consumers.mjs), and used by consumer projects whose
// code is the package README's examples, verbatim but for the relay's URL: a Vite app (`vite build` and `vite
// dev`), a webpack 5 app, a plain page with an import map, a React app (Vite), Node (ESM and CommonJS), all with
// default configurations, against a real redis-server and relay, in Chromium or Node; and `tsc --strict` over the
// same examples against the shipped types.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { promisify } from 'node:util';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot, startRedis, startRelay, launchBrowser } from './support/processes.mjs';
import {
  makeWorkspace, readmeFiles, serveStatic, startViteDev, openConsolePage, README_URL,
} from './support/npm-consumers.mjs';

let workspace;
let readme;
let redis;
let relay;
let chromium;
let wsUrl;

before(async () => {
  [workspace, readme, redis] = await Promise.all([makeWorkspace(), readmeFiles(), startRedis()]);
  // The consumers' pages come from their own servers (Vite's, a static one), so the relay lets any origin in.
  relay = await startRelay({ redisUrl: redis.url, args: ['--origin', '*'] });
  wsUrl = `ws://${relay.listen}/ws`;
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.stop();
  await relay?.stop();
  await redis?.stop();
  await workspace?.remove();
});

/** A README example with the test relay's URL in place of the README's. */
function example(file) {
  const code = readme.get(file);
  assert.ok(code, `the README has no example for ${file}`);
  assert.ok(file.endsWith('.html') || code.includes(README_URL), `${file} connects to ${README_URL}`);
  return code.replaceAll(README_URL, wsUrl);
}

/** Writes a sample to `key` whose `cpu.total` is `value`, as a collector would. */
const writeSample = (key, value) =>
  redis.cli('ZADD', key, String(Date.now()), JSON.stringify({ id: `${key}-${value}`, cpu: { total: value } }));

/**
 * Opens `url`, whose page runs the README's main.js, writes a sample for `key` and waits for the example's
 * console line naming it with its value, and for the example's "synced".
 */
async function expectExampleLive(url, key) {
  const value = Math.round(Math.random() * 1e6) / 10;
  const page = await openConsolePage(chromium.browser, url);
  try {
    await page.waitForLog(([text]) => text === 'live', 30_000, `${url}: status live`);
    await page.waitForLog(([text]) => text === 'synced', 10_000, `${url}: synced`);
    await writeSample(key, value);
    const [, cpu, latest] = await page.waitForLog(([k, cpu]) => k === key && cpu === value, 15_000, `${url}: ${key}`);
    assert.equal(cpu, value);
    assert.deepEqual(latest, { id: `${key}-${value}`, cpu: { total: value } });
    assert.deepEqual(page.errors, []);
  } finally {
    await page.page.close();
  }
}

test('the package packs one clean file list, with an exports map for browsers, Node (import, require) and React', async () => {
  const { pack } = workspace;
  assert.equal(pack.name, 'replicast');
  const files = pack.files.map((f) => f.path).sort();
  assert.deepEqual(files, [
    'LICENSE', 'README.md', 'index.d.ts', 'index.js', 'node.d.cts', 'node.d.mts', 'node.mjs', 'node/package.json',
    'node/replicast_wasm.d.ts', 'node/replicast_wasm.js', 'package.json', 'react.d.ts', 'react.js',
    'web/replicast_wasm.d.ts', 'web/replicast_wasm.js', 'web/replicast_wasm_bg.wasm',
  ]);
  const manifest = JSON.parse(await readFile(path.join(workspace.dir, 'node_modules/replicast/package.json'), 'utf8'));
  const root = manifest.exports['.'];
  assert.deepEqual(root.browser, { types: './index.d.ts', default: './index.js' });
  assert.equal(root.node.import.default, './node.mjs');
  assert.equal(root.node.require.default, './node/replicast_wasm.js');
  assert.equal(manifest.exports['./react'].default, './react.js');
  for (const file of [root.node.import.types, root.node.require.types, root.types, manifest.exports['./react'].types]) {
    assert.ok(files.includes(file.slice(2)), `${file} is shipped`);
  }
  // Node picks its entries through the map: ESM the wrapper, CommonJS the nodejs build itself.
  const resolved = async (args) => (await promisify(execFile)('node', args, { cwd: workspace.dir })).stdout.trim();
  assert.match(await resolved(['--input-type=module', '-e', "console.log(import.meta.resolve('replicast'))"]),
    /\/node_modules\/replicast\/node\.mjs$/);
  assert.match(await resolved(['-e', "console.log(require.resolve('replicast'))"]),
    /\/node_modules\/replicast\/node\/replicast_wasm\.js$/);
  // The one published package: the repository's own package.json is a private workspace of another name.
  const workspaceManifest = JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8'));
  assert.equal(workspaceManifest.private, true);
  assert.notEqual(workspaceManifest.name, 'replicast');
});

/** Each class the declarations export, with its members' declarations (comments left out), by name. */
function declaredClasses(types) {
  const classes = new Map();
  for (const [, name, body] of types.matchAll(/^export class (\w+) \{\n([\s\S]*?)^\}/gm)) {
    const members = new Map();
    for (const line of body.replace(/\/\*\*[\s\S]*?\*\//g, '').split('\n')) {
      const member = /^ {4}(?:readonly )?(\w+)[(:]/.exec(line);
      if (member) members.set(member[1], line.trim());
    }
    classes.set(name, members);
  }
  return classes;
}

test('the package holds the client classes only, and both read windows through one API', async () => {
  const reads = ['offset', 'epoch', 'positions', 'keys', 'len', 'times', 'series', 'seriesView', 'newestOf', 'track', 'changes', 'latest', 'window',
    'kind', 'complete', 'stale', 'expiresAt', 'stats', 'fleet', 'fleetAbove', 'diagnostics'];
  const installed = path.join(workspace.dir, 'node_modules/replicast');
  for (const build of ['web', 'node']) {
    const classes = declaredClasses(await readFile(path.join(installed, build, 'replicast_wasm.d.ts'), 'utf8'));
    assert.deepEqual([...classes.keys()].sort(), ['Assembler', 'Replicast'],
      `${build}: no benchmark classes and no RDB reader in the package`);
    for (const read of reads) {
      const ours = classes.get('Replicast').get(read);
      assert.ok(ours, `${build}: Replicast.${read}`);
      assert.equal(classes.get('Assembler').get(read), ours, `${build}: Assembler.${read} reads as Replicast's`);
    }
  }
});

// The package's client is built with std compiled from its sources (scripts/lib.sh: build_wasm_client), whose
// file names reach the .wasm through the locations it keeps (wasm-bindgen's `unwrap_throw` names its caller):
// they must be remapped like the crates' are, or every user downloads the builder's folders.
test("the package's .wasm names no folder of the machine that built it", async () => {
  const wasm = await readFile(path.join(workspace.dir, 'node_modules/replicast/web/replicast_wasm_bg.wasm'));
  assert.deepEqual(builderFolders(wasm), []);
});

// wasm-bindgen's import names carry 16 hex digits of hash each and its closures' export names their Rust paths:
// scripts/wasm-names.mjs shortens both, in the .wasm and its glue (2.7 KB of the gzipped file). The other tests
// here instantiate the .wasm through both builds' glue, so a glue that did not match would fail them.
test("the package's .wasm imports and exports by short names", async () => {
  const wasm = await readFile(path.join(workspace.dir, 'node_modules/replicast/web/replicast_wasm_bg.wasm'));
  const module = new WebAssembly.Module(wasm);
  const long = [...WebAssembly.Module.imports(module), ...WebAssembly.Module.exports(module)]
    .map((item) => `${item.module ?? ''} ${item.name}`.trim())
    .filter((name) => name.length > 5);
  assert.deepEqual(long, []);
});

/** The builder's folders (its home, the checkout) that the bytes `wasm` name. */
function builderFolders(wasm) {
  const text = wasm.toString('latin1');
  return [`${os.homedir()}/`, repoRoot].filter((folder) => text.includes(folder));
}

/** The commands of a RESP stream of arrays of bulk strings (what Redis sends its replicas). */
function parseCommands(bytes) {
  const text = bytes.toString('latin1');
  const commands = [];
  let at = 0;
  const line = () => {
    const end = text.indexOf('\r\n', at);
    const out = text.slice(at, end);
    at = end + 2;
    return out;
  };
  while (at < text.length) {
    const count = Number(line().slice(1));
    const args = [];
    for (let i = 0; i < count; i++) {
      const len = Number(line().slice(1));
      args.push(bytes.subarray(at, at + len).toString('utf8'));
      at += len + 2;
    }
    commands.push(args);
  }
  return commands;
}

/** The relay's hello, commands and resync messages (docs/PROTOCOL.md), built by hand. */
function hello(epoch, offset) {
  const out = Buffer.alloc(11 + epoch.length);
  out[0] = 1;
  out[1] = 3;
  out.writeBigUInt64LE(BigInt(offset), 2);
  out[10] = epoch.length;
  out.write(epoch, 11, 'latin1');
  return out;
}

function commands(start, bytes) {
  const out = Buffer.alloc(13 + bytes.length);
  out[0] = 2;
  out.writeBigUInt64LE(BigInt(start), 1);
  out.writeUInt32LE(bytes.length, 9);
  bytes.copy(out, 13);
  return out;
}

/** Runs `code` as the file `name` of a Node consumer project (so `replicast` resolves to the installed package),
 * with `input` on its stdin; resolves with its stdout. */
async function runNode(name, code, input) {
  const dir = await workspace.project('node-decode', { [name]: code });
  const child = execFile('node', [path.join(dir, name)], { cwd: dir, maxBuffer: 1 << 24 });
  child.stdin.end(input);
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const [code_] = await once(child, 'exit');
  assert.equal(code_, 0, `${name} failed:\n${err}`);
  return out;
}

test('in Node, through import and require, a recorded stream decodes into exact windows', async () => {
  const stream = await readFile(path.join(repoRoot, 'crates/protocol/tests/data/zadd.resp'));
  const start = Number((await readFile(path.join(repoRoot, 'crates/protocol/tests/data/zadd.offset'), 'utf8')).trim());
  const window = 7;
  // What Redis holds after these ZADDs: per key, the newest `window` members by score.
  const expected = new Map();
  for (const [name, key, score, member] of parseCommands(stream)) {
    if (name !== 'ZADD') continue;
    const members = expected.get(key) ?? new Map();
    members.set(member, Number(score));
    expected.set(key, members);
  }
  const newest = (key) => [...expected.get(key)].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? 1 : -1)).slice(0, window);
  const decode = `
    const [hello, commands] = JSON.parse(fs.readFileSync(0, 'utf8')).map((b) => Buffer.from(b, 'base64'));
    const assembler = new Assembler({ patterns: ['perf:*'], window: ${window} });
    assembler.push(hello);
    assembler.push(commands);
    const out = {};
    for (const key of assembler.keys()) {
      out[key] = { window: assembler.window(key), cpu: Array.from(assembler.series(key, 'cpu.user')) };
    }
    console.log(JSON.stringify({ offset: assembler.offset, windows: out }));
  `;
  const input = JSON.stringify([hello('rec', start), commands(start, stream)].map((b) => b.toString('base64')));
  for (const [name, imports] of [
    ['read.mjs', "import { Assembler } from 'replicast'; import fs from 'node:fs';"],
    ['read.cjs', "const { Assembler } = require('replicast'); const fs = require('node:fs');"],
  ]) {
    const seen = JSON.parse(await runNode(name, imports + decode, input));
    assert.equal(seen.offset, start + stream.length, name);
    assert.deepEqual(Object.keys(seen.windows).sort(), [...expected.keys()].sort(), name);
    for (const key of expected.keys()) {
      const items = seen.windows[key].window.items.map((i) => [i.member, i.score]);
      assert.deepEqual(items, newest(key), `${name} ${key}`);
      assert.deepEqual(seen.windows[key].cpu, newest(key).reverse().map(([m]) => JSON.parse(m).cpu.user), `${name} ${key}`);
    }
  }
});

test('in Node, errors are typed: a resync, a malformed message and bad options each carry their code', async () => {
  const out = await runNode('errors.cjs', `
    const { Assembler, isReplicastError } = require('replicast');
    const caught = (f) => { try { f(); return 'no error'; } catch (e) { return { name: e.name, code: e.code, message: e.message, typed: isReplicastError(e), isError: e instanceof Error }; } };
    const assembler = new Assembler({ patterns: ['perf:*'] });
    const reason = Buffer.from('the backlog moved on');
    const resync = Buffer.concat([Buffer.from([3]), reason]);
    console.log(JSON.stringify({
      resync: caught(() => assembler.push(resync)),
      bad: caught(() => assembler.push(Buffer.from([200, 1, 2]))),
      options: caught(() => new Assembler({ patterns: [], keys: [] })),
      plain: isReplicastError(new Error('x')),
    }));
  `, '');
  const seen = JSON.parse(out);
  assert.deepEqual({ ...seen.resync, message: undefined }, { name: 'ReplicastError', code: 'resync', typed: true, isError: true, message: undefined });
  assert.match(seen.resync.message, /the backlog moved on/);
  assert.doesNotMatch(seen.resync.message, /^resync:/);
  assert.equal(seen.bad.code, 'badMessage');
  assert.equal(seen.bad.typed, true);
  assert.equal(seen.options.code, 'invalidOptions');
  assert.equal(seen.plain, false);
});

// The .wasm holds its error texts as U+FDD0 and a 4-digit code (crates/protocol/src/text.rs, 7 bytes instead of the
// words); each build's glue gives them back their words (scripts/wasm-texts.mjs). What a user reads must be the
// words, the same as a build without the codes: a message of the wire decoder, of the saved view's reader, of the
// options, and the diagnostics' last error, through the Node glue and through the web glue.
test('the error texts the .wasm holds as codes read as their words, through the Node and the web glue', async () => {
  const installed = path.join(workspace.dir, 'node_modules/replicast');
  const wasm = await readFile(path.join(installed, 'web/replicast_wasm_bg.wasm'));
  const marker = Buffer.from('\uFDD0');
  assert.ok(wasm.includes(marker), 'the .wasm holds its texts as codes');
  assert.ok(!wasm.includes(Buffer.from('expected a protocol version byte')), 'and not their words');
  const expected = {
    tag: 'relay message byte 0: expected a message tag (1 hello, 2 commands, 3 resync, 4 snapshot, 5 notice, 6 ack, 7 shard, 8 stale, 9 expiring, 10 digest)',
    version: 'relay message byte 1: expected a protocol version byte',
    view: 'not a saved view: it does not start with "RCVW"',
    options: 'Replicast options watch nothing: give patterns or keys',
    lastError: 'at offset 0: relay message byte 1: expected a protocol version byte',
  };
  const messages = `
    const message = (f) => { try { f(); return 'no error'; } catch (e) { return e.message; } };
    const assembler = new Assembler({ patterns: ['perf:*'] });
    const seen = {
      tag: message(() => assembler.push(new Uint8Array([200, 1, 2]))),
      version: message(() => assembler.push(new Uint8Array([1]))),
      view: message(() => new Assembler({ patterns: ['perf:*'] }).restoreView(new Uint8Array([1, 2, 3]))),
      options: message(() => new Assembler({ patterns: [], keys: [] })),
    };
    seen.lastError = assembler.diagnostics().lastError;
  `;
  const node = JSON.parse(await runNode('texts.cjs', `
    const { Assembler } = require('replicast');
    ${messages}
    console.log(JSON.stringify(seen));
  `, ''));
  assert.deepEqual(node, expected, 'the Node glue');
  const web = await import(pathToFileURL(path.join(installed, 'web/replicast_wasm.js')).href);
  web.initSync({ module: wasm });
  const { Assembler } = web;
  const seen = new Function('Assembler', `${messages}; return seen;`)(Assembler);
  assert.deepEqual(seen, expected, 'the web glue');
});

// The glue gives the error texts' codes back their words only where a message reaches a person: an Error's
// message, a console message, the diagnostics' last error. Everything else from the .wasm is data, which must reach
// the page as Redis holds it: a key, a field, a value or a member that holds U+FDD0 and a text's code (or the
// marker alone) is read back byte for byte, from a snapshot and from the stream, through the Node and the web glue
// (whose client's console messages still read as words).
test('data that holds a text code arrives as Redis holds it, through the Node and the web glue', async () => {
  const installed = path.join(workspace.dir, 'node_modules/replicast');
  const text = 'the end of the input';
  const marked = `\uFDD0${textCode(text)}`;
  for (const build of ['node', 'web']) {
    const glue = await readFile(path.join(installed, build, 'replicast_wasm.js'), 'utf8');
    assert.ok(glue.includes(JSON.stringify({ [textCode(text)]: text }).slice(1, -1)), `${build}: ${marked} is a text's code`);
  }
  const keys = {
    zset: `perf:fdd0:z${marked}`, hash: 'perf:fdd0:h\uFDD0', string: `perf:fdd0:s${marked}\uFDD0`, stream: `perf:fdd0:x${marked}`,
  };
  const json = JSON.stringify({ note: marked });
  await redis.cli('ZADD', keys.zset, '1', marked, '2', '\uFDD0', '3', json);
  await redis.cli('HSET', keys.hash, marked, `${marked} ${marked}\uFDD0`, '\uFDD0', marked);
  await redis.cli('SET', keys.string, marked);
  await redis.cli('XADD', keys.stream, '*', marked, '\uFDD0');
  const later = JSON.stringify({ note: `later ${marked}` });
  const expected = (afterWrite) => ({
    [keys.zset]: {
      type: 'zset',
      items: [...(afterWrite ? [[later, 4]] : []), [json, 3], ['\uFDD0', 2], [marked, 1]],
      latest: JSON.parse(afterWrite ? later : json),
    },
    [keys.hash]: {
      type: 'hash',
      items: [[marked, `${marked} ${marked}\uFDD0`], ['\uFDD0', marked]].sort(),
      latest: { [marked]: `${marked} ${marked}\uFDD0`, '\uFDD0': marked },
    },
    [keys.string]: { type: 'string', items: [marked], latest: null },
    [keys.stream]: { type: 'stream', items: [[[marked, '\uFDD0']]], latest: { [marked]: '\uFDD0' } },
  });
  // What a client holds, read through the API every window goes through.
  const read = `(client) => Object.fromEntries(client.keys().map((key) => {
    const { type, items } = client.window(key) ?? { type: 'no window', items: [] };
    const seen = items.map((i) => ({ zset: [i.member, i.score], hash: [i.field, i.value], stream: i.fields })[type] ?? i.value);
    if (type === 'hash') seen.sort();
    return [key, { type, items: seen, latest: client.latest(key) ?? null }];
  }))`;
  const zaddLater = () => redis.cli('ZADD', keys.zset, '4', later);

  // Node: the README's Assembler over a WebSocket (ws), which prints what it holds after every message.
  const dir = await workspace.project('fdd0-node', {
    'read.mjs': `
      import { Assembler } from 'replicast';
      import WebSocket from 'ws';
      const read = ${read};
      const assembler = new Assembler({ patterns: ['perf:fdd0:*'], window: 10 });
      const socket = new WebSocket(${JSON.stringify(wsUrl)});
      socket.on('open', () => socket.send(JSON.stringify({ type: 'subscribe', patterns: ['perf:fdd0:*'], window: 10 })));
      socket.on('message', (message) => {
        if (!Buffer.isBuffer(message)) return;
        assembler.push(message);
        console.log(JSON.stringify(read(assembler)));
      });
      socket.on('close', (code, reason) => console.error('the socket closed', code, String(reason)));
    `,
  });
  const child = spawn('node', ['read.mjs'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d) => { out += d; });
  child.stderr.setEncoding('utf8').on('data', (d) => { err += d; });
  const seenInNode = async (want, what) => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const lines = out.split('\n').filter(Boolean);
      const last = lines.length ? JSON.parse(lines.at(-1)) : undefined;
      try {
        assert.deepEqual(last, want, `Node, ${what}`);
        return;
      } catch (e) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`read.mjs: ${err}\n${e.message}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  try {
    await seenInNode(expected(false), 'from the snapshot');
    await zaddLater();
    await seenInNode(expected(true), 'from the stream');
  } finally {
    child.kill();
  }
  await redis.cli('ZREM', keys.zset, later);

  // The browser: the web build's Replicast, in Chromium.
  const page = await workspace.project('fdd0-web', {
    'index.html': readme.get('index.html').replace('./main.js', './read.js'),
    'read.js': `
      import { Replicast } from 'replicast';
      window.read = ${read};
      window.client = new Replicast(${JSON.stringify(wsUrl)}, { patterns: ['perf:fdd0:*'], window: 10 });
      // A message of the client's on the console, which holds a text's code in the .wasm.
      window.tokenless = new Replicast(${JSON.stringify(wsUrl)}, {
        patterns: ['perf:fdd0:*'], window: 10, token: () => { throw new Error('no token here'); },
      });
    `,
  });
  await cp(installed, path.join(page, 'replicast'), { recursive: true });
  const served = await serveStatic(page);
  const opened = await openConsolePage(chromium.browser, served.url);
  try {
    await opened.waitForLog(([message]) => message === 'replicast: the token function failed', 10_000, 'the console');
    await opened.page.evaluate(() => window.tokenless.close());
    await opened.page.waitForFunction(() => window.client?.synced === true, null, { timeout: 30_000 });
    assert.deepEqual(await opened.page.evaluate(() => window.read(window.client)), expected(false), 'Chromium, from the snapshot');
    await zaddLater();
    await opened.page.waitForFunction(() => window.client.keys().some((key) => window.client.len(key) === 4), null,
      { timeout: 15_000 });
    assert.deepEqual(await opened.page.evaluate(() => window.read(window.client)), expected(true), 'Chromium, from the stream');
    assert.deepEqual(opened.errors, []);
  } finally {
    await opened.page.close();
    await served.stop();
    await redis.cli('DEL', ...Object.values(keys));
  }
});

/** The code the .wasm holds for `text` after U+FDD0: 4 base-32 digits of its FNV-1a hash (crates/protocol/src/text.rs). */
function textCode(text) {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  let out = '';
  for (let d = 3; d >= 0; d--) out += '0123456789abcdefghijklmnopqrstuv'[(hash >>> (5 * d)) & 31];
  return out;
}

test("the README's Node example follows a real relay, as ESM and as CommonJS", async () => {
  for (const name of ['node.mjs', 'node.cjs']) {
    const dir = await workspace.project(`node-${name.replace('.', '-')}`, { [name]: example(name) });
    const child = spawn('node', [name], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { err += d; });
    try {
      const key = `perf:node-${name.replace('.', '-')}`;
      const value = Math.round(Math.random() * 1e6) / 10;
      // Written once: landing before the subscription it comes by the snapshot, after it by the stream.
      const deadline = Date.now() + 20_000;
      const line = `${key} ${JSON.stringify({ id: `${key}-${value}`, cpu: { total: value } })}`;
      await writeSample(key, value);
      while (!out.split('\n').includes(line)) {
        assert.ok(child.exitCode === null, `${name} exited:\n${err}`);
        assert.ok(Date.now() < deadline, `${name}: no line ${line} in:\n${out}\n${err}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      child.kill();
    }
  }
});

test("tsc --strict type-checks the README's examples against the shipped types", async () => {
  const strict = { strict: true, noEmit: true, allowJs: true, checkJs: true, target: 'es2022', skipLibCheck: false };
  const dir = await workspace.project('types', {
    'main.js': readme.get('main.js'),
    'Cpu.tsx': readme.get('Cpu.tsx'),
    'node.mjs': readme.get('node.mjs'),
    'node.cjs': readme.get('node.cjs'),
    'tsconfig.browser.json': JSON.stringify({
      compilerOptions: { ...strict, module: 'esnext', moduleResolution: 'bundler', lib: ['es2022', 'dom'], jsx: 'react-jsx', types: [] },
      files: ['main.js', 'Cpu.tsx'],
    }),
    'tsconfig.node.json': JSON.stringify({
      compilerOptions: { ...strict, module: 'nodenext', moduleResolution: 'nodenext', lib: ['es2022'], types: ['node'] },
      files: ['node.mjs', 'node.cjs'],
    }),
  });
  for (const config of ['tsconfig.browser.json', 'tsconfig.node.json']) {
    const result = await workspace.tool('tsc', ['-p', config], dir).catch((err) => err);
    assert.equal(result.code ?? 0, 0, `${config}:\n${result.stdout}${result.stderr}`);
  }
  // A page that misuses the API does not compile: the check reads the shipped types, not `any`.
  await writeFile(path.join(dir, 'main.js'), `${readme.get('main.js')}\nclient.series(1, 'cpu');\n`);
  const wrong = await workspace.tool('tsc', ['-p', 'tsconfig.browser.json'], dir).catch((err) => err);
  assert.match(wrong.stdout, /main\.js.*error TS2345/);
});

const VITE_INDEX = '<!doctype html>\n<script type="module" src="/main.js"></script>\n';

test("the README's example in a Vite app with its default config: vite build, and vite dev", async () => {
  const dir = await workspace.project('vite-app', { 'index.html': VITE_INDEX, 'main.js': example('main.js') });
  await workspace.tool('vite', ['build', '--logLevel', 'warn'], dir);
  const built = await serveStatic(path.join(dir, 'dist'));
  try {
    await expectExampleLive(built.url, 'perf:vite-build');
  } finally {
    await built.stop();
  }
  const dev = await startViteDev(workspace, dir);
  try {
    await expectExampleLive(dev.url, 'perf:vite-dev');
  } finally {
    await dev.stop();
  }
});

test("the README's example in a webpack 5 app with its default config", async () => {
  const dir = await workspace.project('webpack-app', { 'src/index.js': example('main.js') });
  await workspace.tool('webpack', [], dir);
  await writeFile(path.join(dir, 'dist/index.html'), '<!doctype html>\n<script src="main.js"></script>\n');
  const built = await serveStatic(path.join(dir, 'dist'));
  try {
    await expectExampleLive(built.url, 'perf:webpack');
  } finally {
    await built.stop();
  }
});

test("the README's example in a plain page, the package's files copied beside it", async () => {
  const dir = await workspace.project('plain-page', { 'index.html': readme.get('index.html'), 'main.js': example('main.js') });
  await cp(path.join(workspace.dir, 'node_modules/replicast'), path.join(dir, 'replicast'), { recursive: true });
  const served = await serveStatic(dir);
  try {
    await expectExampleLive(served.url, 'perf:plain');
  } finally {
    await served.stop();
  }
});

test("the README's React component with useReplicast, in a React app built with Vite", async () => {
  const dir = await workspace.project('react-app', {
    'index.html': '<!doctype html>\n<div id="root"></div>\n<script type="module" src="/main.jsx"></script>\n',
    'vite.config.js': "import react from '@vitejs/plugin-react';\nexport default { plugins: [react()] };\n",
    'main.jsx': [
      "import { StrictMode } from 'react';",
      "import { createRoot } from 'react-dom/client';",
      "import { Cpu } from './Cpu.tsx';",
      "createRoot(document.getElementById('root')).render(<StrictMode><Cpu host=\"react-01\" /></StrictMode>);",
    ].join('\n'),
    'Cpu.tsx': example('Cpu.tsx'),
  });
  await workspace.tool('vite', ['build', '--logLevel', 'warn'], dir);
  const built = await serveStatic(path.join(dir, 'dist'));
  const page = await openConsolePage(chromium.browser, built.url);
  try {
    await page.page.waitForFunction(() => document.body.textContent.includes('react-01: live, exact'), null, { timeout: 30_000 });
    const value = Math.round(Math.random() * 1e6) / 10;
    await writeSample('perf:react-01', value);
    await page.page.waitForFunction((text) => document.body.textContent.includes(text),
      `react-01: live, exact, cpu ${value}`, { timeout: 15_000 });
    assert.deepEqual(page.errors, []);
  } finally {
    await page.page.close();
    await built.stop();
  }
});

test('listeners come off with the function their registration returned; onSynced fires once exact, and again after a rejoin; send rejects with a typed error', async () => {
  const dir = await workspace.project('listeners', {
    'index.html': readme.get('index.html').replace('./main.js', './listeners.js'),
    'listeners.js': `
      import { Replicast, isReplicastError } from 'replicast';
      const client = new Replicast(${JSON.stringify(wsUrl)}, { patterns: ['perf:l*'], window: 5 });
      window.client = client;
      window.seen = { kept: [], removed: [], synced: 0, statuses: [], removedStatuses: [] };
      client.onChange(({ keys }) => window.seen.kept.push(...keys));
      window.stopChange = client.onChange(({ keys }) => window.seen.removed.push(...keys));
      client.onSynced(() => { window.seen.synced += 1; });
      client.onStatus((s) => window.seen.statuses.push(s));
      window.stopStatus = client.onStatus((s) => window.seen.removedStatuses.push(s));
      window.isReplicastError = isReplicastError;
    `,
  });
  await cp(path.join(workspace.dir, 'node_modules/replicast'), path.join(dir, 'replicast'), { recursive: true });
  const served = await serveStatic(dir);
  const page = await openConsolePage(chromium.browser, served.url);
  try {
    await page.page.waitForFunction(() => window.client?.synced === true, null, { timeout: 30_000 });
    assert.equal(await page.page.evaluate(() => window.seen.synced), 1, 'onSynced fired once');
    await page.page.evaluate(() => { window.stopChange(); window.stopChange(); window.stopStatus(); });
    await writeSample('perf:l1', 1);
    await page.page.waitForFunction(() => window.seen.kept.includes('perf:l1'), null, { timeout: 15_000 });
    const seen = await page.page.evaluate(() => window.seen);
    assert.ok(!seen.removed.includes('perf:l1'), 'the removed change listener heard nothing after');
    assert.deepEqual(seen.statuses, ['connecting', 'live']);
    assert.deepEqual(seen.removedStatuses, ['connecting', 'live']);

    // The relay lets no key be written here: the refusal is a ReplicastError with its code.
    const refused = await page.page.evaluate(() => window.client.send('perf:l1', { a: 1 }).then(
      () => 'sent', (e) => ({ name: e.name, code: e.code, message: e.message, typed: window.isReplicastError(e) })));
    assert.equal(refused.code, 'refused', JSON.stringify(refused));
    assert.equal(refused.name, 'ReplicastError');
    assert.equal(refused.typed, true);
    const invalid = await page.page.evaluate(() => window.client.send('perf:l1', [1]).catch((e) => e.code));
    assert.equal(invalid, 'invalidEvent');

    // A listener registered while the view is exact hears so at once.
    assert.equal(await page.page.evaluate(() => {
      let heard = 0;
      window.client.onSynced(() => { heard += 1; });
      return heard;
    }), 1);

    // The relay restarted (a new one, with no backlog to resume from): offline, then a fresh join, and synced again.
    const { listen } = relay;
    await relay.stop();
    await page.page.waitForFunction(() => window.client.status === 'offline' && !window.client.synced, null, { timeout: 15_000 });
    relay = await startRelay({ redisUrl: redis.url, listen, args: ['--origin', '*'] });
    await page.page.waitForFunction(() => window.seen.synced === 2, null, { timeout: 30_000 });
    assert.equal(await page.page.evaluate(() => window.client.len('perf:l1')), 1, 'the window is back by the snapshot');

    // Closed, the client is no longer synced, and only the listener still registered hears it go offline.
    await page.page.evaluate(() => window.client.close());
    assert.equal(await page.page.evaluate(() => window.client.synced), false);
    const after = await page.page.evaluate(() => window.seen);
    assert.deepEqual(after.statuses.slice(0, 3), ['connecting', 'live', 'offline']);
    assert.equal(after.statuses.at(-1), 'offline');
    assert.deepEqual(after.removedStatuses, ['connecting', 'live']);
    assert.deepEqual(page.errors, []);
  } finally {
    await page.page.close();
    await served.stop();
  }
});
