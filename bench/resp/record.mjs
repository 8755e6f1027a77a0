// Records the benchmark stream: the replication stream of 200,000 `ZADD perf:hostN <ms> <~130-byte JSON>`
// commands, as a real redis-server sends it to its replicas, captured by `replicast record`.
//
//   cargo build -p replicast-server && node bench/resp/record.mjs [--commands 200000] [--hosts 16] [--out FILE]
//
// Writes FILE (default target/bench-resp/zadd-200k.resp) and FILE.json: the start offset, the byte count and
// the number of ZADDs sent. REPLICAST_BIN picks the relay binary (default target/debug/replicast).
import { spawn } from 'node:child_process';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot, startRedis } from '../../tests/support/processes.mjs';

const { values: opts } = parseArgs({
  options: {
    commands: { type: 'string', default: '200000' },
    hosts: { type: 'string', default: '16' },
    out: { type: 'string', default: path.join(repoRoot, 'target/bench-resp/zadd-200k.resp') },
  },
});
const commands = Number(opts.commands);
const hosts = Number(opts.hosts);
const relayBinary = process.env.REPLICAST_BIN ?? path.join(repoRoot, 'target/debug/replicast');

/** A collector's sample: ~130 bytes of JSON, varied like real `top`/`netstat` numbers (deterministic PRNG). */
function* samples(count) {
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const start = 1_700_000_000_000;
  for (let i = 0; i < count; i++) {
    const host = `host${i % hosts}`;
    const ms = start + i * 250 + Math.floor(rand() * 100);
    const user = (rand() * 60).toFixed(2);
    const sys = (rand() * 20).toFixed(2);
    const json = JSON.stringify({
      id: `s${i}`, host, cpu: { user: Number(user), sys: Number(sys), idle: Number((100 - user - sys).toFixed(2)) },
      mem: Math.floor(rand() * 16e9), net: { rx: Math.floor(rand() * 1e7), tx: Math.floor(rand() * 1e7) }, load: Number((rand() * 8).toFixed(2)),
    });
    yield [`ZADD`, `perf:${host}`, String(ms), json];
  }
}

function resp(args) {
  let out = `*${args.length}\r\n`;
  for (const a of args) out += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
  return out;
}

async function replOffset(cli) {
  const info = await cli('INFO', 'replication');
  return Number(info.match(/master_repl_offset:(\d+)/)[1]);
}

const redis = await startRedis();
await mkdir(path.dirname(opts.out), { recursive: true });
const recorder = spawn(relayBinary, ['record', '--redis-url', redis.url, '--out', opts.out], {
  stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RUST_LOG: 'warn' },
});
try {
  recorder.stdout.setEncoding('utf8');
  let seen = '';
  const [, epoch, start] = await new Promise((resolve, reject) => {
    recorder.stdout.on('data', (d) => {
      seen += d;
      const m = seen.match(/recording epoch (\S+) from offset (\d+)/);
      if (m) resolve(m);
    });
    recorder.once('exit', (code) => reject(new Error(`replicast record exited (${code}): ${seen}`)));
  });

  // Pipe the workload through redis-cli --pipe, as a collector fleet would batch it.
  const pipe = spawn('redis-cli', ['-p', String(redis.port), '--pipe'], { stdio: ['pipe', 'inherit', 'inherit'] });
  let batch = '';
  for (const args of samples(commands)) {
    batch += resp(args);
    if (batch.length > 1 << 20) {
      if (!pipe.stdin.write(batch)) await once(pipe.stdin, 'drain');
      batch = '';
    }
  }
  pipe.stdin.end(batch);
  await once(pipe, 'exit');

  const target = await replOffset(redis.cli);
  for (;;) {
    const size = (await stat(opts.out)).size;
    if (Number(start) + size === target) break;
    if (Number(start) + size > target) throw new Error('recorded more than Redis sent');
    await new Promise((r) => setTimeout(r, 100));
  }
  recorder.kill('SIGTERM');
  await once(recorder, 'exit');
  const bytes = (await stat(opts.out)).size;
  await writeFile(`${opts.out}.json`, JSON.stringify({ epoch, start: Number(start), bytes, zadds: commands }, null, 2));
  console.log(`recorded ${bytes} bytes (${commands} ZADDs) from offset ${start} to ${opts.out}`);
} finally {
  recorder.kill('SIGTERM');
  await redis.stop();
}
