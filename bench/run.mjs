// Every benchmark, one after the other, with the commands docs/BENCHMARKS.md documents: records the inputs that
// are missing, runs each benchmark (repeatedly where the script itself does not), collects the `RESULT {json}`
// line each script ends with, and rewrites the tables between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`
// in docs/BENCHMARKS.md: median and spread, the targets met or not, the machine and the commands.
//
//   npm run bench                      # everything, about 25 minutes; rewrites docs/BENCHMARKS.md
//   node bench/run.mjs --only resp,rdb # some of it (names below); rewrites only their tables
//   node bench/run.mjs --smoke         # tiny inputs, in seconds: checks each result is well formed, no docs
//
// Names: resp-native, resp-node, resp-chromium, rdb, relay, cluster, assembler, frames, dashboard. --runs N repeats the
// benchmarks that are repeated here (default 3). Run it on an otherwise idle machine: one benchmark at a time.
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot, startRedis } from '../tests/support/processes.mjs';
import { render } from './report.mjs';

const { values: opts } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    only: { type: 'string' },
    runs: { type: 'string' },
  },
});
const smoke = opts.smoke;
const runs = Number(opts.runs ?? 3);
const only = opts.only ? new Set(opts.only.split(',')) : null;
const target = (...p) => path.join(repoRoot, 'target', ...p);
const work = smoke ? path.join(os.tmpdir(), `replicast-bench-smoke-${process.pid}`) : null;

/** Runs a command, echoing its output, and resolves with its stdout; rejects on a non-zero exit. */
function run(cmd, args, { env = {}, quiet = smoke } = {}) {
  console.log(`$ ${[...Object.entries(env).map(([k, v]) => `${k}=${v}`), cmd, ...args].join(' ')}`);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; if (!quiet) process.stdout.write(d); });
    child.stderr.on('data', (d) => { err += d; if (!quiet) process.stderr.write(d); });
    child.on('exit', (code) => (code === 0 ? resolve(out)
      : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}\n${out.slice(-2000)}\n${err.slice(-2000)}`))));
  });
}

/** The `RESULT {json}` lines of a script's output. */
const results = (out) => out.split('\n').filter((l) => l.startsWith('RESULT ')).map((l) => JSON.parse(l.slice(7)));
const wasm = (args) => run('bash', ['-c', `source scripts/lib.sh && with_wasm_env wasm-pack --log-level warn ${args}`]);

// Which builds the run uses. The full run builds what the documented commands build; the smoke run takes what
// `npm test` already built (the debug relay, wasm/pkg), or what is there, and builds one thing: a wasm package with
// the benchmark classes (feature `bench`), which the shipped wasm/pkg leaves out.
const profile = smoke && !existsSync(target('release/replicast')) ? 'debug'
  : smoke && existsSync(target('debug/replicast')) ? 'debug' : 'release';
const relayBin = target(profile, 'replicast');
const smokePkg = target('bench-smoke/pkg-web');
const pkg = {
  respNode: smoke ? smokePkg : target('bench-resp/pkg-node'),
  respWeb: smoke ? smokePkg : target('bench-resp/pkg-web'),
  assembler: smoke ? smokePkg : target('bench-assembler/pkg-web'),
  rdb: smoke ? smokePkg : target('rdb-bench/pkg'),
};
const streams = smoke ? {
  resp: path.join(work, 'zadd-20k.resp'), assembler: path.join(work, 'zadd-20k-20.resp'),
  frames: path.join(work, 'zadd-2k-50.resp'),
} : {
  resp: target('bench-resp/zadd-200k.resp'), assembler: target('bench-assembler/zadd-200k-20.resp'),
  frames: target('bench-assembler/zadd-100k-50.resp'),
};

async function record(stream, commands, hosts) {
  if (existsSync(stream) && existsSync(`${stream}.json`)) return;
  await run('node', ['bench/resp/record.mjs', '--commands', String(commands), '--hosts', String(hosts), '--out', stream],
    { env: { REPLICAST_BIN: relayBin } });
}

async function ensureRelay() {
  if (smoke && existsSync(relayBin)) return;
  await run('cargo', ['build', '-q', ...(profile === 'release' ? ['--release'] : []), '-p', 'replicast-server']);
}

/** Runs a script `times` times and returns its RESULT objects, one per run. */
async function repeat(times, cmd, args, env) {
  if (smoke) times = 1;
  const all = [];
  for (let i = 0; i < times; i++) all.push(...results(await run(cmd, args, { env })));
  return all;
}

/** A small dump with every common type, written by a real redis-server, for the smoke run. */
async function smokeDump() {
  const file = path.join(work, 'smoke.rdb');
  const redis = await startRedis();
  try {
    await redis.cli('DEBUG', 'POPULATE', '2000', 'str', '64');
    for (let i = 0; i < 20; i++) {
      await redis.cli('RPUSH', `list${i}`, ...Array.from({ length: 200 }, (_, j) => `item${j}`));
      await redis.cli('ZADD', `zset${i}`, ...Array.from({ length: 100 }, (_, j) => [String(j), `m${j}`]).flat());
      await redis.cli('HSET', `hash${i}`, ...Array.from({ length: 100 }, (_, j) => [`f${j}`, `v${j}`]).flat());
    }
    await redis.cli('SAVE');
    // `dir` is protected in Redis 7: copy the dump out of the server's own folder before it goes.
    const dir = (await redis.cli('CONFIG', 'GET', 'dir')).split('\n')[1];
    copyFileSync(path.join(dir, 'dump.rdb'), file);
  } finally {
    await redis.stop();
  }
  return [file];
}

/** The RDB peer (bench/rdb/peer.py: rdb-py) in a venv of its own; installed by the full run only. */
async function rdbPeer() {
  const python = target('rdb-peer/bin/python');
  if (!existsSync(python) && !smoke) {
    await run('python3', ['-m', 'venv', target('rdb-peer')]);
    await run(target('rdb-peer/bin/pip'), ['install', '-q', 'rdb-py']);
  }
  return existsSync(python) ? `${python} bench/rdb/peer.py` : null;
}

/** Criterion's estimates for the RESP group: median and its 95% interval, in ns. */
function criterionEstimates() {
  const dir = target('criterion/replication stream');
  const found = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory() && e.name === 'new') {
        const est = JSON.parse(readFileSync(path.join(p, 'estimates.json'), 'utf8')).median;
        const id = path.relative(dir, d);
        found.push({ id, ns: { median: est.point_estimate, low: est.confidence_interval.lower_bound, high: est.confidence_interval.upper_bound } });
      } else if (e.isDirectory() && e.name !== 'base' && e.name !== 'report') walk(p);
    }
  };
  walk(dir);
  return found;
}

const benches = {
  'resp-native': async () => {
    await record(streams.resp, smoke ? 20000 : 200000, 16);
    if (smoke) {
      // Criterion's test mode: each benchmark once, on the tiny stream (no timing).
      const out = await run('cargo', ['test', '-q', ...(profile === 'release' ? ['--release'] : []), '-p', 'replicast-protocol',
        '--bench', 'resp'], { env: { REPLICAST_BENCH_STREAM: streams.resp } });
      const lines = out.split('\n');
      const tested = lines.filter((l) => l.startsWith('Testing ')).map((l) => l.slice(8));
      return [{ bench: 'resp-native', tested, succeeded: lines.filter((l) => l.trim() === 'Success').length }];
    }
    await run('cargo', ['bench', '-p', 'replicast-protocol', '--bench', 'resp']);
    const meta = JSON.parse(readFileSync(`${streams.resp}.json`, 'utf8'));
    return [{ bench: 'resp-native', bytes: meta.bytes, commands: meta.zadds + 1, results: criterionEstimates() }];
  },
  'resp-node': async () => {
    await record(streams.resp, smoke ? 20000 : 200000, 16);
    if (!smoke) await wasm(`build wasm --release --target nodejs --out-dir ../target/bench-resp/pkg-node -- --features bench`);
    return repeat(runs, 'node', ['bench/resp/node.mjs', streams.resp, '--pkg', pkg.respNode, ...(smoke ? ['--runs', '3'] : [])]);
  },
  'resp-chromium': async () => {
    await record(streams.resp, smoke ? 20000 : 200000, 16);
    if (!smoke) await wasm(`build wasm --release --target web --out-dir ../target/bench-resp/pkg-web -- --features bench`);
    return repeat(runs, 'node', ['bench/resp/chromium.mjs', streams.resp, '--pkg', pkg.respWeb, ...(smoke ? ['--runs', '3'] : [])]);
  },
  rdb: async () => {
    let files = [];
    if (smoke) files = await smokeDump();
    else {
      for (const what of ['mixed', 'biglist']) {
        if (!existsSync(target(`rdb-bench/${what}.rdb`))) await run('bash', ['bench/rdb/make-dumps.sh', what]);
      }
      await ensureRelay();
      await wasm(`build wasm --release --target nodejs --out-dir ../target/rdb-bench/pkg -- --features bench`);
    }
    const peer = await rdbPeer();
    return results(await run('node', ['bench/rdb/run.mjs', ...files], {
      env: { SKIP_BUILD: '1', RUNS: smoke ? '2' : '5', REPLICAST_BIN: relayBin, RDB_PKG: pkg.rdb, ...(peer ? { RDB_PEER: peer } : {}) },
    }));
  },
  relay: async () => {
    const all = [];
    const clients = smoke ? [10] : [10, 100, 1000];
    for (const c of clients) {
      const args = smoke ? ['20000', String(c), '1000', '2'] : ['1000000', String(c), '10000', '10'];
      all.push(...(await repeat(runs, 'bash', ['bench/relay.sh', ...args], { PROFILE: profile, ...(smoke ? { SKIP_BUILD: '1' } : {}) })));
    }
    return all;
  },
  cluster: async () => {
    if (smoke) await ensureRelay();
    const all = [];
    // 50 clients per shard, so each shard's primary (and the relay's link to it) carries the same load in both runs.
    for (const shards of [1, 3]) {
      const args = [String(shards), smoke ? '20000' : '1000000', String(50 * shards)];
      all.push(...(await repeat(runs, 'bash', ['bench/cluster.sh', ...args],
        { PROFILE: profile, ...(smoke ? { SKIP_BUILD: '1' } : {}) })));
    }
    return all;
  },
  assembler: async () => {
    await record(streams.assembler, smoke ? 20000 : 200000, 20);
    if (!smoke) await wasm(`build wasm --release --target web --out-dir ../target/bench-assembler/pkg-web -- --features bench`);
    return repeat(runs, 'node', ['bench/assembler/chromium.mjs', streams.assembler, '--pkg', pkg.assembler,
      ...(smoke ? ['--runs', '3'] : [])]);
  },
  frames: async () => {
    await record(streams.frames, smoke ? 2000 : 100000, 50);
    return repeat(runs, 'node', ['bench/assembler/frames.mjs', streams.frames, '--pkg', pkg.assembler,
      ...(smoke ? ['--frames', '10', '--window', '20'] : [])]);
  },
  dashboard: async () => {
    if (!smoke) await run('bash', ['scripts/build.sh', 'release']);
    else if (!existsSync(path.join(repoRoot, 'wasm/pkg/replicast_wasm.js'))) {
      throw new Error('dashboard: the relay serves wasm/pkg, which is not built: run `npm run build` first');
    }
    const args = smoke ? ['--hosts', '20', '--seconds', '1', '--window', '3'] : ['--hosts', '20,200,1000', '--seconds', '15'];
    return results(await run('node', ['bench/dashboard/run.mjs', ...args], { env: { REPLICAST_BIN: relayBin } }));
  },
};

/** Fails unless every number a table needs is there: the smoke run's whole check. */
function check(name, list) {
  const finite = (x, what) => { if (!Number.isFinite(x)) throw new Error(`${name}: ${what} is ${x}`); };
  if (!list.length) throw new Error(`${name}: no RESULT line`);
  for (const r of list) {
    switch (r.bench) {
      case 'resp-native':
        if (r.tested) {
          if (r.tested.length < 4 || r.succeeded !== r.tested.length) {
            throw new Error(`resp-native: ${r.succeeded} of ${r.tested.length} benchmarks ran (4 expected)`);
          }
        }
        else for (const e of r.results) finite(e.ns.median, e.id);
        break;
      case 'resp-node': case 'resp-chromium':
        if (r.results.length !== 4) throw new Error(`${r.bench}: ${r.results.length} results, not 4`);
        for (const e of r.results) { finite(e['MB/s'].median, `${e.parser} MB/s`); if (e.commands < 1) throw new Error(`${r.bench}: no commands`); }
        break;
      case 'rdb': for (const e of r.results) { finite(e.mbps.median, `${e.reader} MB/s`); finite(e.rss_mb.max, `${e.reader} RSS`); } break;
      case 'relay-lag': finite(r.relay.max_bytes, 'relay lag'); finite(r.replica.max_bytes, 'replica lag'); break;
      case 'relay-fanout':
        finite(r.latency_ms.p99, 'p99'); finite(r.rss_mib.peak, 'RSS');
        if (r.delivered < 1) throw new Error('relay-fanout: nothing delivered');
        break;
      case 'cluster':
        if (r.lag.length !== r.shards) throw new Error(`cluster: ${r.lag.length} shards sampled of ${r.shards}`);
        for (const [test, rps] of Object.entries(r.throughput)) finite(rps, `${r.shards} shard(s) ${test}`);
        for (const l of r.lag) finite(l.max_bytes, `shard ${l.shard} lag`);
        break;
      case 'assembler-apply': finite(r['M commands/s'].median, 'apply rate'); break;
      case 'assembler-frames': finite(r.boundary.median, 'boundary'); finite(r.apply.median, 'apply'); break;
      case 'dashboard': for (const e of r.results) finite(e.median, `${e.hosts} hosts ${e.view}`); break;
      default: throw new Error(`${name}: unknown result ${r.bench}`);
    }
  }
}

/** Cores, memory, load and versions, for the docs. */
function machine() {
  const v = (cmd, args) => { try { return execFileSync(cmd, args, { encoding: 'utf8' }).trim(); } catch { return 'unknown'; } };
  return {
    cores: os.cpus().length, cpu: os.cpus()[0]?.model.trim(), memoryGiB: os.totalmem() / 2 ** 30,
    load: os.loadavg(), redis: v('redis-server', ['--version']).split(' ').slice(0, 3).join(' '),
    node: process.version, rustc: v('rustc', ['--version']), chromium: v(process.env.CHROMIUM ?? '/usr/bin/chromium', ['--version']),
  };
}

const names = Object.keys(benches).filter((n) => !only || only.has(n));
if (smoke) mkdirSync(work, { recursive: true });
const collected = {};
const loadBefore = os.loadavg();
const started = Date.now();
try {
  const usesBenchPkg = ['resp-node', 'resp-chromium', 'rdb', 'assembler', 'frames'];
  if (smoke && names.some((n) => usesBenchPkg.includes(n))) {
    await wasm(`build wasm --release --target web --out-dir ../target/bench-smoke/pkg-web -- --features bench`);
  }
  for (const name of names) {
    const t0 = Date.now();
    console.log(`\n== ${name}${smoke ? ' (smoke)' : ''}`);
    collected[name] = await benches[name]();
    check(name, collected[name]);
    console.log(`${name}: ${collected[name].length} result(s), well formed, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
} finally {
  if (smoke) execFileSync('rm', ['-rf', work]);
}
console.log(`\nall ${names.length} benchmark(s) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
if (!smoke) {
  const docs = path.join(repoRoot, 'docs/BENCHMARKS.md');
  const text = render(readFileSync(docs, 'utf8'), collected, { ...machine(), loadBefore, runs });
  writeFileSync(docs, text);
  console.log(`rewrote the tables of ${names.join(', ')} in docs/BENCHMARKS.md`);
}
