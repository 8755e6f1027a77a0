// The npm package as its users get it: built for web, bundler and nodejs by scripts/package.sh, packed with
// `npm pack`, installed into an empty project, and used from Node.js with no browser — a recorded replication
// stream decoded into windows that equal what the stream's ZADDs leave in Redis.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, readFile, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from './support/processes.mjs';

const run = promisify(execFile);
const npmDir = path.join(repoRoot, 'target/npm');

before(async () => {
  await run('bash', [path.join(repoRoot, 'scripts/package.sh')], { cwd: repoRoot, maxBuffer: 1 << 24 });
});

test('each target packs a clean file list: code, types, README and license only', async () => {
  for (const target of ['web', 'bundler', 'nodejs']) {
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json'], { cwd: path.join(npmDir, target) });
    const [pack] = JSON.parse(stdout);
    const files = pack.files.map((f) => f.path).sort();
    assert.equal(pack.name, 'replicast-wasm');
    assert.ok(files.includes('README.md') && files.includes('LICENSE'), `${target}: ${files}`);
    assert.ok(files.includes('replicast_wasm.d.ts') && files.includes('replicast_wasm_bg.wasm'), `${target}: ${files}`);
    for (const f of files) {
      assert.match(f, /^(README\.md|LICENSE|package\.json|replicast_wasm(_bg)?\.(js|wasm|d\.ts|wasm\.d\.ts))$/, `${target}: ${f}`);
    }
    const types = await readFile(path.join(npmDir, target, 'replicast_wasm.d.ts'), 'utf8');
    assert.match(types, /export interface ReplicastOptions/);
    assert.match(types, /series\(key: string, path: string\): Float64Array/);
  }
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
  const reads = ['offset', 'epoch', 'positions', 'keys', 'len', 'times', 'series', 'seriesView', 'latest', 'window',
    'kind', 'complete', 'stale', 'expiresAt', 'stats', 'fleet', 'fleetAbove', 'diagnostics'];
  for (const target of ['web', 'bundler', 'nodejs']) {
    const classes = declaredClasses(await readFile(path.join(npmDir, target, 'replicast_wasm.d.ts'), 'utf8'));
    assert.deepEqual([...classes.keys()].sort(), ['Assembler', 'Replicast'],
      `${target}: no benchmark classes and no RDB reader in the package`);
    for (const read of reads) {
      const ours = classes.get('Replicast').get(read);
      assert.ok(ours, `${target}: Replicast.${read}`);
      assert.equal(classes.get('Assembler').get(read), ours, `${target}: Assembler.${read} reads as Replicast's`);
    }
  }
});

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

/** The relay's hello and commands messages (docs/PROTOCOL.md), built by hand. */
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

test('installed from its tarball, the nodejs build decodes a recorded stream into exact windows', async () => {
  const work = await mkdtemp(path.join(tmpdir(), 'replicast-npm-'));
  try {
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: path.join(npmDir, 'nodejs') });
    const tarball = path.join(work, JSON.parse(stdout)[0].filename);
    const consumer = path.join(work, 'consumer');
    await run('mkdir', ['-p', consumer]);
    await writeFile(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
    await run('npm', ['install', '--offline', '--no-audit', '--no-fund', tarball], { cwd: consumer });

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

    // The consumer's script, run from its own folder so `replicast-wasm` resolves to the installed package.
    const script = path.join(consumer, 'read.cjs');
    await writeFile(script, `
      const { Assembler } = require('replicast-wasm');
      const fs = require('node:fs');
      const [hello, commands] = JSON.parse(fs.readFileSync(0, 'utf8')).map((b) => Buffer.from(b, 'base64'));
      const assembler = new Assembler({ patterns: ['perf:*'], window: ${window} });
      assembler.push(hello);
      assembler.push(commands);
      const out = {};
      for (const key of assembler.keys()) {
        out[key] = { window: assembler.window(key), cpu: Array.from(assembler.series(key, 'cpu.user')) };
      }
      console.log(JSON.stringify({ offset: assembler.offset, windows: out }));
    `);
    const input = JSON.stringify([hello('rec', start), commands(start, stream)].map((b) => b.toString('base64')));
    const child = execFile('node', [script], { cwd: consumer, maxBuffer: 1 << 24 });
    child.stdin.end(input);
    const output = await new Promise((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d) => { out += d; });
      child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`consumer exited ${code}`))));
    });
    const seen = JSON.parse(output);
    assert.equal(seen.offset, start + stream.length);
    assert.deepEqual(Object.keys(seen.windows).sort(), [...expected.keys()].sort());
    for (const key of expected.keys()) {
      const items = seen.windows[key].window.items.map((i) => [i.member, i.score]);
      assert.deepEqual(items, newest(key), key);
      assert.deepEqual(seen.windows[key].cpu, newest(key).reverse().map(([m]) => JSON.parse(m).cpu.user), key);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
