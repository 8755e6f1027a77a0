// Parses an RDB file with the wasm build of the reader in Node, 256 KiB at a time, and prints one JSON line:
// bytes, keys, elements, seconds, MB/s, keys/s and the process's peak RSS.
// PKG_DIR is a nodejs or web package with `RdbScan` (feature `rdb` or `bench`; the shipped package has neither). Build
// it first (bench/rdb/run.mjs does): wasm-pack build wasm --release --target nodejs --out-dir target/rdb-bench/pkg
// -- --features bench
// Usage: node bench/rdb/wasm.mjs FILE [PKG_DIR]
import { openSync, readSync, closeSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadWasm } from '../support.mjs';

const [file, pkgDir = resolve(import.meta.dirname, '../../target/rdb-bench/pkg')] = process.argv.slice(2);
if (!file) {
  console.error('usage: node bench/rdb/wasm.mjs FILE [PKG_DIR]');
  process.exit(2);
}
const { RdbScan } = await loadWasm(pkgDir);

const CHUNK = 1 << 18;
const buf = Buffer.allocUnsafe(CHUNK);
const fd = openSync(file, 'r');
const scan = new RdbScan();
const start = process.hrtime.bigint();
for (;;) {
  const n = readSync(fd, buf, 0, CHUNK, null);
  if (n === 0) break;
  scan.push(buf.subarray(0, n));
}
scan.finish();
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
closeSync(fd);
console.log(JSON.stringify({
  bytes: scan.bytes,
  keys: scan.keys,
  elements: scan.elements,
  seconds,
  mb_per_s: scan.bytes / 1e6 / seconds,
  keys_per_s: scan.keys / seconds,
  max_rss_kb: process.resourceUsage().maxRSS,
}));
