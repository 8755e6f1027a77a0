// The RDB benchmark: parses the dumps of bench/rdb/make-dumps.sh natively (`replicast rdb --stats`, release
// build) and in wasm (Node), RUNS times each, and prints MB/s, keys/s and peak RSS (from /usr/bin/time -v) as
// median and [min, max].
// Usage: node bench/rdb/run.mjs [mixed.rdb biglist.rdb …]   (env: RUNS=5, SKIP_BUILD=1, REPLICAST_BIN, RDB_PKG,
// RDB_PEER: a command that parses a dump and prints {"keys": n} last, timed the same way beside ours; bench/run.mjs
// sets it to bench/rdb/peer.py, rdb-py)
// Ends with a `RESULT {json}` line for bench/run.mjs.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { printResult, spread } from '../support.mjs';

const root = resolve(import.meta.dirname, '../..');
const dir = process.env.RDB_BENCH_DIR ?? resolve(root, 'target/rdb-bench');
const runs = Number(process.env.RUNS ?? 5);
const files = process.argv.slice(2).length ? process.argv.slice(2) : ['mixed.rdb', 'biglist.rdb'].map((f) => resolve(dir, f));
const targetDir = process.env.CARGO_TARGET_DIR ?? resolve(root, 'target');
const native = process.env.REPLICAST_BIN ?? resolve(targetDir, 'release/replicast');
const pkg = process.env.RDB_PKG ?? resolve(dir, 'pkg');
const peer = process.env.RDB_PEER ? process.env.RDB_PEER.split(' ') : null;

if (!process.env.SKIP_BUILD) {
  execFileSync('cargo', ['build', '--release', '-p', 'replicast-server'], { cwd: root, stdio: 'inherit' });
  execFileSync('bash', ['-c', `source scripts/lib.sh && with_wasm_env wasm-pack --log-level warn build wasm --release --target nodejs --out-dir "${pkg}" -- --features bench`], { cwd: root, stdio: 'inherit' });
}

function timed(cmd, args) {
  const r = spawnSync('/usr/bin/time', ['-v', cmd, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
  const rss = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)[1]);
  return { stdout: r.stdout, stderr: r.stderr, rssMb: rss / 1024 };
}

function nativeRun(file) {
  const r = timed(native, ['rdb', '--stats', file]);
  const m = /parsed (\d+) bytes, (\d+) keys in ([\d.]+) s: ([\d.]+) MB\/s, (\d+) keys\/s/.exec(r.stderr);
  return { mbps: Number(m[4]), keysps: Number(m[5]), rss: r.rssMb };
}

function wasmRun(file) {
  const r = timed(process.execPath, [resolve(import.meta.dirname, 'wasm.mjs'), file, pkg]);
  const j = JSON.parse(r.stdout.trim().split('\n').pop());
  return { mbps: j.mb_per_s, keysps: j.keys_per_s, rss: r.rssMb };
}

function peerRun(file) {
  const started = process.hrtime.bigint();
  const r = timed(peer[0], [...peer.slice(1), file]);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const { keys } = JSON.parse(r.stdout.trim().split('\n').pop());
  return { mbps: statSync(file).size / 1e6 / seconds, keysps: keys / seconds, rss: r.rssMb };
}

function summary(values) {
  const s = [...values].sort((a, b) => a - b);
  const median = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return `${median.toFixed(1)} [${s[0].toFixed(1)}, ${s[s.length - 1].toFixed(1)}]`;
}

const all = [];
for (const file of files) {
  if (!existsSync(file)) {
    console.error(`missing ${file}: run bash bench/rdb/make-dumps.sh first`);
    process.exit(1);
  }
  const mb = statSync(file).size / 1e6;
  const readers = [['native', nativeRun], ['wasm (Node)', wasmRun]];
  if (peer) readers.push([`peer: ${peer.map((p) => p.split('/').pop()).join(' ')}`, peerRun]);
  for (const [name, run] of readers) {
    const results = Array.from({ length: runs }, () => run(file));
    console.log(`${file.split('/').pop()} (${mb.toFixed(0)} MB), ${name}, ${runs} runs, median [min, max]:`);
    console.log(`  MB/s     ${summary(results.map((r) => r.mbps))}`);
    if (results[0].keysps !== null) console.log(`  keys/s   ${summary(results.map((r) => r.keysps))}`);
    console.log(`  peak RSS ${summary(results.map((r) => r.rss))} MB`);
    all.push({
      dump: file.split('/').pop(), mb, reader: name, runs,
      mbps: spread(results.map((r) => r.mbps)),
      keysps: results[0].keysps === null ? null : spread(results.map((r) => r.keysps)),
      rss_mb: spread(results.map((r) => r.rss)),
    });
  }
}
printResult('rdb', { results: all });
