// The wasm parser in Node: parses the recorded 200,000-ZADD stream (bench/resp/record.mjs) in wasm, and the plain
// JavaScript parser of js-parser.mjs on the same bytes beside it.
//
//   source scripts/lib.sh && with_wasm_env wasm-pack build wasm --release --target nodejs \
//     --out-dir ../target/bench-resp/pkg-node -- --features bench
//   node bench/resp/node.mjs [STREAM] [--runs 15] [--pkg DIR]
//
// --pkg takes a nodejs or a web package (e.g. wasm/pkg). Ends with a `RESULT {json}` line for bench/run.mjs.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { measure, format } from './measure.js';
import { JsRespBench } from './js-parser.mjs';
import { loadWasm, printResult } from '../support.mjs';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    runs: { type: 'string', default: '15' },
    pkg: { type: 'string', default: path.join(repoRoot, 'target/bench-resp/pkg-node') },
  },
});
const streamPath = positionals[0] ?? path.join(repoRoot, 'target/bench-resp/zadd-200k.resp');
const runs = Number(opts.runs);
const pkg = await loadWasm(opts.pkg);

const stream = readFileSync(streamPath);
const results = [];
console.log(`node ${process.version}, ${streamPath}`);
for (const [parser, bench] of [['wasm', new pkg.RespBench(stream)], ['js', new JsRespBench(stream)]]) {
  for (const chunk of [0, 64 * 1024]) {
    const r = measure(bench, { chunk, runs });
    console.log(format(`${parser} in Node`, r));
    results.push({ parser, ...r });
  }
}
printResult('resp-node', { engine: `Node ${process.version}`, results });
