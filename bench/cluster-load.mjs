// The load and the lag of bench/cluster.sh: runs `redis-benchmark --cluster` against a running cluster and, from
// before the load starts until every shard's follower caught up after it ends, samples each shard every 20 ms: its
// primary's `master_repl_offset` and its follower's offset. The follower is the relay (`--relay host:port`: its
// `replicast_shard_link_offset{shard,node}` on /metrics) or, to check this script without a relay that follows a
// cluster, each primary's own replica (`--relay none`: the replica's offset from INFO replication). Prints the
// throughput per test and, per shard, the lag's max, p99 and time back to 0 after the load, then a `RESULT {json}`
// line for bench/run.mjs.
//
//   node bench/cluster-load.mjs --primaries 7000,7001,7002 --relay 127.0.0.1:8080 --requests 1000000
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { once } from 'node:events';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { printResult } from './support.mjs';

const { values: opts } = parseArgs({
  options: {
    primaries: { type: 'string' },
    relay: { type: 'string', default: 'none' },
    requests: { type: 'string', default: '1000000' },
    clients: { type: 'string', default: '50' },
    tests: { type: 'string', default: 'set,zadd' },
    'interval-ms': { type: 'string', default: '20' },
    'settle-ms': { type: 'string', default: '10000' },
  },
});
const primaries = opts.primaries.split(',').map(Number);
const interval = Number(opts['interval-ms']);

/** One RESP connection, one command at a time: enough for INFO and CLUSTER NODES every 20 ms. */
async function respClient(port) {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.setNoDelay(true);
  let buffer = Buffer.alloc(0);
  let waiting = null;
  socket.on('data', (chunk) => {
    buffer = Buffer.concat([buffer, chunk]);
    if (!waiting) return;
    const end = buffer.indexOf('\r\n');
    if (end < 0) return;
    if (buffer[0] === 0x2d) { // -ERR …
      const line = buffer.subarray(1, end).toString();
      buffer = buffer.subarray(end + 2);
      waiting.reject(new Error(`${port}: ${line}`));
      waiting = null;
      return;
    }
    const length = Number(buffer.subarray(1, end));
    if (buffer.length < end + 2 + length + 2) return;
    const text = buffer.subarray(end + 2, end + 2 + length).toString();
    buffer = buffer.subarray(end + 4 + length);
    waiting.resolve(text);
    waiting = null;
  });
  return {
    /** A command whose reply is a bulk string (INFO, CLUSTER NODES). */
    bulk: (...words) => new Promise((resolve, reject) => {
      waiting = { resolve, reject };
      socket.write(`*${words.length}\r\n${words.map((w) => `$${Buffer.byteLength(w)}\r\n${w}\r\n`).join('')}`);
    }),
    close: () => socket.destroy(),
  };
}

const field = (info, name) => Number(info.match(new RegExp(`^${name}:(\\d+)`, 'm'))?.[1]);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function metrics(addr) {
  return new Promise((resolve, reject) => {
    http.get(`http://${addr}/metrics`, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}
/** `replicast_shard_link_offset{shard="0",node="127.0.0.1:7000"} 12345` → [{ shard, node, offset }]. */
function shardOffsets(text) {
  const re = /^replicast_shard_link_offset\{([^}]*)\}\s+(\d+)/gm;
  return [...text.matchAll(re)].map(([, labels, offset]) => {
    const label = (name) => labels.match(new RegExp(`${name}="([^"]*)"`))?.[1];
    return { shard: label('shard'), node: label('node'), offset: Number(offset) };
  });
}

// Which primary each follower follows, from the cluster's own view.
const admin = await respClient(primaries[0]);
const nodes = (await admin.bulk('CLUSTER', 'NODES')).split('\n').filter(Boolean).map((line) => {
  const [id, addr, flags, primary] = line.split(' ');
  return { id, port: Number(addr.split('@')[0].split(':').pop()), primaryId: primary === '-' ? null : primary, flags };
});
admin.close();
const portOf = (id) => nodes.find((n) => n.id === id)?.port;
const primaryOf = (port) => { const n = nodes.find((e) => e.port === port); return n?.primaryId ? portOf(n.primaryId) : port; };

const primaryConns = new Map();
for (const port of primaries) primaryConns.set(port, await respClient(port));
let shards;
let followerOffsets;
const followerConns = [];
if (opts.relay === 'none') {
  const replicas = new Map();
  for (const port of primaries) {
    const replica = nodes.find((n) => n.primaryId && portOf(n.primaryId) === port);
    if (!replica) throw new Error(`primary ${port} has no replica to follow it (--relay none)`);
    replicas.set(port, await respClient(replica.port));
    followerConns.push(replicas.get(port));
  }
  shards = primaries.map((port, i) => ({ shard: String(i), node: `127.0.0.1:${nodes.find((n) => portOf(n.primaryId) === port).port}`, primary: port }));
  followerOffsets = async () => new Map(await Promise.all(primaries.map(async (port) =>
    [port, field(await replicas.get(port).bulk('INFO', 'replication'), 'master_repl_offset')])));
} else {
  const found = shardOffsets(await metrics(opts.relay));
  if (!found.length) throw new Error(`the relay at ${opts.relay} has no replicast_shard_link_offset on /metrics: it does not follow a cluster`);
  shards = found.map((s) => ({ shard: s.shard, node: s.node, primary: primaryOf(Number(s.node.split(':').pop())) }));
  const missing = primaries.filter((p) => !shards.some((s) => s.primary === p));
  if (missing.length) throw new Error(`the relay follows no shard of the primaries ${missing.join(', ')}: ${JSON.stringify(shards)}`);
  followerOffsets = async () => {
    const byShard = new Map(shardOffsets(await metrics(opts.relay)).map((s) => [s.shard, s.offset]));
    return new Map(shards.map((s) => [s.primary, byShard.get(s.shard)]));
  };
}

/** One sample: each shard's lag in bytes (its follower's offset read first, so a lag is never under-counted). */
async function sample() {
  const follower = await followerOffsets();
  const upstream = new Map(await Promise.all(primaries.map(async (port) =>
    [port, field(await primaryConns.get(port).bulk('INFO', 'replication'), 'master_repl_offset')])));
  return shards.map((s) => Math.max(0, upstream.get(s.primary) - follower.get(s.primary)));
}

const samples = []; // [ms since start, [lag per shard]]
const t0 = performance.now();
let loadEnd = null;
let sampling = true;
const sampler = (async () => {
  while (sampling) {
    const at = performance.now();
    samples.push([at - t0, await sample()]);
    const caughtUp = loadEnd !== null && at - t0 >= loadEnd && samples.at(-1)[1].every((lag) => lag === 0);
    if (caughtUp || (loadEnd !== null && at - t0 - loadEnd > Number(opts['settle-ms']))) break;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, interval - (performance.now() - at))));
  }
})();

// redis-benchmark --cluster wants two primaries or more; one primary owns every slot, so plain mode reaches it.
const args = [...(primaries.length > 1 ? ['--cluster'] : []), '-h', '127.0.0.1', '-p', String(primaries[0]), '-t', opts.tests, '-n', opts.requests,
  '-c', opts.clients, '-P', '16', '-r', '100000', '--csv'];
console.log(`$ redis-benchmark ${args.join(' ')}`);
const bench = spawn('redis-benchmark', args, { stdio: ['ignore', 'pipe', 'inherit'] });
let out = '';
bench.stdout.on('data', (d) => { out += d; });
const [code] = await once(bench, 'exit');
loadEnd = performance.now() - t0;
if (code !== 0) { sampling = false; await sampler; throw new Error(`redis-benchmark exited ${code}\n${out}`); }
await sampler;
agent.destroy();
for (const c of [...primaryConns.values(), ...followerConns]) c.close();

/** redis-benchmark --csv: `"SET","79365.08",…` after a header row and, with --cluster, the nodes it found. */
function parseCsv(text) {
  const rows = text.split('\n').filter((l) => l.startsWith('"') && !l.startsWith('"test"'));
  return Object.fromEntries(rows.map((l) => { const [test, rps] = l.split(',').map((c) => c.replace(/"/g, '')); return [test, Number(rps)]; }));
}
const throughput = parseCsv(out);
if (!Object.keys(throughput).length) throw new Error(`no result in redis-benchmark's output:\n${out}`);

const lag = shards.map((s, i) => {
  const series = samples.map(([, lags]) => lags[i]);
  const sorted = [...series].sort((a, b) => a - b);
  const zero = samples.find(([at, lags]) => at >= loadEnd && lags[i] === 0);
  return {
    shard: s.shard, node: s.node, primary: s.primary, samples: series.length, max_bytes: sorted.at(-1),
    p99_bytes: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))],
    back_to_zero_ms: zero ? Math.round(zero[0] - loadEnd) : null,
  };
});
for (const [test, rps] of Object.entries(throughput)) console.log(`${test}: ${rps} requests/s`);
for (const l of lag) {
  console.log(`shard ${l.shard} (${l.node}, primary ${l.primary}): lag max ${l.max_bytes} B, p99 ${l.p99_bytes} B, `
    + `back to 0 ${l.back_to_zero_ms ?? 'never'} ms after the load (${l.samples} samples)`);
}
printResult('cluster', {
  shards: primaries.length, follower: opts.relay === 'none' ? 'replica' : 'relay', requests: Number(opts.requests),
  clients: Number(opts.clients), throughput, lag,
});
