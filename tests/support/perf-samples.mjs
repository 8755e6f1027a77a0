// Performance samples as the collector writes them (`ZADD perf:<host> <t_ms> <json>`, trimmed to the newest
// `keep`), for the end-to-end suites: deterministic numbers per host and time, written through `redis-cli --pipe`.
import { spawn } from 'node:child_process';
import { once } from 'node:events';

const GiB = 1024 ** 3;

/** A sample of `host` at `t` (ms), its numbers a function of both. */
export function perfSample(host, t) {
  const seed = [...host].reduce((a, c) => (a * 31 + c.charCodeAt(0)) >>> 0, 7);
  const wave = (k) => (Math.sin(t / 7000 + seed + k) + 1) / 2;
  const cores = Array.from({ length: 4 + (seed % 3) * 2 }, (_, i) => round(100 * wave(i) * (0.3 + (seed % 7) / 10)));
  const total = round(cores.reduce((a, b) => a + b, 0) / cores.length);
  const memTotal = (8 << (seed % 3)) * GiB;
  const used = Math.round(memTotal * (0.3 + 0.4 * wave(9)));
  return {
    id: `${host}:${t}`, t, host,
    cpu: { total, cores },
    mem: { total: memTotal, used, available: memTotal - used, cached: Math.round(memTotal * 0.1), swap_total: 2 * GiB, swap_used: 0 },
    load: [round(total / 25), round(total / 30), round(total / 35)],
    net: { rx: Math.round(2e6 * wave(3)), tx: Math.round(1e6 * wave(4)), ifaces: { eth0: { rx: 1, tx: 1 } } },
    disk: { read: Math.round(5e6 * wave(5)), write: Math.round(9e6 * wave(6)) },
    tcp: { ESTABLISHED: 40 + (seed % 50), LISTEN: 8, TIME_WAIT: Math.round(30 * wave(7)) },
    procs: [
      { pid: 1201, name: 'redis-server', cpu: round(total / 2), mem: 512e6 },
      { pid: 880, name: 'nginx', cpu: round(total / 5), mem: 64e6 },
      { pid: 1, name: 'systemd', cpu: 0.1, mem: 12e6 },
    ],
  };
}

const round = (v) => Math.round(v * 100) / 100;

function resp(args) {
  let out = `*${args.length}\r\n`;
  for (const a of args) out += `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`;
  return out;
}

/**
 * Writes the samples (each `{host, t}`, and `patch`: top-level fields that replace the sample's own, e.g.
 * `{cpu: {total: 95, cores: [95, 95]}}`) with one `redis-cli --pipe`, trimming each key to the newest `keep`.
 */
export async function writeSamples(port, samples, { keep = 600 } = {}) {
  let input = '';
  const hosts = new Set();
  for (const { host, t, patch } of samples) {
    input += resp(['ZADD', `perf:${host}`, t, JSON.stringify({ ...perfSample(host, t), ...patch })]);
    hosts.add(host);
  }
  for (const host of hosts) input += resp(['ZREMRANGEBYRANK', `perf:${host}`, 0, -(keep + 1)]);
  const child = spawn('redis-cli', ['-p', String(port), '--pipe'], { stdio: ['pipe', 'ignore', 'inherit'] });
  child.stdin.end(input);
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error(`redis-cli --pipe exited with ${code}`);
}
