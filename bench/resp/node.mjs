// The wasm parser in Node: parses the recorded 200,000-ZADD stream (bench/resp/record.mjs) in wasm.
//
//   source scripts/lib.sh && with_wasm_env wasm-pack build wasm --release --target nodejs \
//     --out-dir ../target/bench-resp/pkg-node
//   node bench/resp/node.mjs [STREAM]
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { measure, format } from './measure.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const pkg = createRequire(import.meta.url)(path.join(repoRoot, 'target/bench-resp/pkg-node/replicast_wasm.js'));
const streamPath = process.argv[2] ?? path.join(repoRoot, 'target/bench-resp/zadd-200k.resp');

const bench = new pkg.RespBench(readFileSync(streamPath));
console.log(`node ${process.version}, ${streamPath}`);
for (const chunk of [0, 64 * 1024]) {
  console.log(format('wasm in Node', measure(bench, { chunk })));
}
