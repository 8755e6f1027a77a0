// `replicast rdb` writing JSON Lines (the default output) for the mixed dump of bench/rdb/make-dumps.sh, to
// /dev/null: MB/s of JSON written (the output's size over the wall time) and peak RSS (from /usr/bin/time -v), as
// median and [min, max] over RUNS runs. Several binaries given are run in turn within each round, so that a
// before/after comparison sees the same load on this shared machine.
// Usage: node bench/rdb/json-lines.mjs [replicast binary …]   (env: RUNS=5, RDB_FILE=target/rdb-bench/mixed.rdb;
// default binary: target/release/replicast, built with `cargo build --release -p replicast-server`)
// Ends with a `RESULT {json}` line, like the other benchmarks.
import { spawnSync } from 'node:child_process';
import { existsSync, openSync, closeSync } from 'node:fs';
import { resolve } from 'node:path';
import { printResult, spread } from '../support.mjs';

const root = resolve(import.meta.dirname, '../..');
const runs = Number(process.env.RUNS ?? 5);
const file = process.env.RDB_FILE ?? resolve(root, 'target/rdb-bench/mixed.rdb');
const binaries = process.argv.slice(2).length ? process.argv.slice(2) : [resolve(root, 'target/release/replicast')];

if (!existsSync(file)) {
  console.error(`missing ${file}: run bash bench/rdb/make-dumps.sh mixed first`);
  process.exit(1);
}

/// The output's size, counted once per binary (a pipe would slow the timed runs).
function outputBytes(binary) {
  const r = spawnSync('bash', ['-c', '"$0" rdb "$1" | wc -c', binary, file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${binary} failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

function timedRun(binary) {
  const devNull = openSync('/dev/null', 'w');
  const started = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-v', binary, 'rdb', file], { stdio: ['ignore', devNull, 'pipe'], encoding: 'utf8' });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  closeSync(devNull);
  if (r.status !== 0) throw new Error(`${binary} failed: ${r.stderr}`);
  const rssKb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)[1]);
  return { seconds, rssMb: rssKb / 1024 };
}

function summary(values, digits) {
  const { median, min, max } = spread(values);
  return `${median.toFixed(digits)} [${min.toFixed(digits)}, ${max.toFixed(digits)}]`;
}

const bytes = binaries.map(outputBytes);
const times = binaries.map(() => []);
for (let round = 0; round < runs; round++) {
  binaries.forEach((binary, i) => times[i].push(timedRun(binary)));
}
const results = binaries.map((binary, i) => {
  const mbps = times[i].map((t) => bytes[i] / 1e6 / t.seconds);
  const rss = times[i].map((t) => t.rssMb);
  console.log(`${binary}: ${(bytes[i] / 1e6).toFixed(0)} MB of JSON, ${runs} runs, median [min, max]:`);
  console.log(`  MB/s of JSON ${summary(mbps, 0)}`);
  console.log(`  seconds      ${summary(times[i].map((t) => t.seconds), 2)}`);
  console.log(`  peak RSS     ${summary(rss, 1)} MB`);
  return { binary: binary.split('/').pop(), json_bytes: bytes[i], runs, mbps: spread(mbps), rss_mb: spread(rss) };
});
printResult('rdb-json-lines', { file: file.split('/').pop(), results });
