// Real processes for the end-to-end suites: redis-server, the relay binary and Chromium, each on free loopback
// ports (or a given one, to restart a process where its clients look for it), each stopped by the `stop()` it
// returns; and a local Redis Cluster of such servers (`startCluster`). Redis and the relay also take the faults the
// fault suite injects: SIGKILL, SIGSTOP and SIGCONT. Nothing here is mocked.
import { spawn, execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const relayBinary = process.env.REPLICAST_BIN ?? path.join(repoRoot, 'target/debug/replicast');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';

// The flags this machine's Chromium needs: no sandbox as root, and no background traffic to a closed network.
const CHROMIUM_ARGS = [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
];

/** What a test starts and must stop after it, whatever happened: `owned(start)` starts a process (or anything with
 * `stop()`) with `start()` and keeps it, `keep(thing)` keeps one already started, and `stopAll()` stops every one
 * kept, newest first. */
export function ownership() {
  let started = [];
  const keep = (thing) => {
    started.unshift(thing);
    return thing;
  };
  return {
    keep,
    owned: async (start) => keep(await start()),
    stopAll: async () => {
      for (const thing of started) await thing.stop();
      started = [];
    },
  };
}

// Ports come from just below the kernel's ephemeral range, each handed out at most once per process: a port the
// kernel hands out for `listen(0)` can be taken by the next outgoing connection before the server binds it (a
// cluster node's bus port once landed on another node's port that way). The process ID picks where to start, so
// two test processes side by side rarely meet.
const PORT_SPAN = 10_000;
let portsHandedOut = 0;

function portRange() {
  let [low, high] = [32_768, 60_999];
  try {
    [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  } catch {
    // Not Linux: the usual range.
  }
  if (low >= 1_024 + PORT_SPAN) return [low - PORT_SPAN, PORT_SPAN];
  const above = Math.min(PORT_SPAN, 65_535 - high);
  return above >= 1_000 ? [high + 1, above] : null; // null: no room outside the ephemeral range
}

/** A loopback port nothing listens on, never handed out before by this process. */
export async function freePort() {
  const range = portRange();
  if (!range) return kernelPort();
  const [low, span] = range;
  const start = (process.pid * 7_919) % span;
  while (portsHandedOut < span) {
    const port = low + ((start + portsHandedOut++) % span);
    const server = createServer();
    const bound = await new Promise((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (bound) {
      server.close();
      await once(server, 'close');
      return port;
    }
  }
  throw new Error(`this test process has used all ${span} of its ports`);
}

/** The kernel's pick (`listen(0)`), with its race: only where there is no room outside the ephemeral range. */
async function kernelPort() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** Resolves with the first stdout line matching `pattern` (its match), or rejects after `ms` or on exit. */
function waitForLine(child, pattern, ms, what) {
  return new Promise((resolve, reject) => {
    let seen = '';
    // A process that never says it is ready is killed, so a failed start cannot keep the suite waiting on it.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what}: no line matching ${pattern} after ${ms} ms (killed):\n${seen}`));
    }, ms);
    const onData = (chunk) => {
      seen += chunk;
      const match = seen.match(pattern);
      if (match) {
        clearTimeout(timer);
        child.stdout.off('data', onData);
        resolve(match);
      }
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code ?? signal}) before printing ${pattern}:\n${seen}`));
    });
  });
}

const exited = (child) => child.exitCode !== null || child.signalCode !== null;

function stopper(child) {
  return async () => {
    if (exited(child)) return;
    const exit = once(child, 'exit');
    child.kill('SIGTERM');
    // A process frozen by `pause()` handles SIGTERM only once it runs again.
    child.kill('SIGCONT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exit;
    clearTimeout(timer);
  };
}

/** The faults a test can inject: `kill()` (SIGKILL, resolved once the process is gone), `pause()` (SIGSTOP) and
 * `resume()` (SIGCONT). */
function faults(child) {
  return {
    kill: async () => {
      if (exited(child)) return;
      const exit = once(child, 'exit');
      child.kill('SIGKILL');
      await exit;
    },
    pause: () => child.kill('SIGSTOP'),
    resume: () => child.kill('SIGCONT'),
  };
}

/** A redis-server on `port` (default: a free one) with `args` after the suites' own, in a new empty folder: a
 * server started again on the same port starts empty, with a new replication ID. */
export async function startRedis({ port, args = [] } = {}) {
  port ??= await freePort();
  // A folder of its own, so no RDB file written by a sync is ever loaded by another test's server.
  const dir = await mkdtemp(path.join(tmpdir(), 'replicast-e2e-redis-'));
  const child = spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--repl-diskless-sync-delay', '0', '--dir', dir, ...args,
  ], { stdio: ['ignore', 'pipe', 'inherit'] });
  await waitForLine(child, /Ready to accept connections/, 10_000, 'redis-server');
  const cli = (...args) => promisify(execFile)('redis-cli', ['-p', String(port), ...args]).then((r) => r.stdout.trim());
  const stop = stopper(child);
  return {
    port, url: `redis://127.0.0.1:${port}`, cli, process: child, ...faults(child),
    stop: async () => { await stop(); await rm(dir, { recursive: true, force: true }); },
  };
}

/** The relay following `redisUrl`, on `listen` (default: a free port; give a previous relay's `listen` to start
 * one again where its browsers reconnect), with more `serve` flags in `args`. Without `redisUrl`, `args` say what
 * to follow (`--cluster host:port`). `binary` and `cwd`: another copy of the relay, started in another folder. */
export async function startRelay({ redisUrl, listen = '127.0.0.1:0', args = [], binary = relayBinary, cwd }) {
  const follow = redisUrl === undefined ? [] : ['--redis-url', redisUrl];
  const child = spawn(binary, ['serve', ...follow, '--listen', listen, ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  const [, url] = await waitForLine(child, /Replicast is live at (http:\/\/\S+)/, 30_000, 'relay');
  return { url, listen: new URL(url).host, stop: stopper(child), process: child, ...faults(child) };
}

/** Opens a page on `relay` whose `Replicast` client (`new Replicast(<relay>/ws, options)`) is `window.client`;
 * each status it reports goes to `window.statuses`, each change (with `at`, the page's clock) to
 * `window.changes`, and each page error to the returned `errors`. `prepare(page)` runs before the page loads
 * (to route its WebSocket, say). */
export async function openClient(browser, relay, options, prepare = async () => {}) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err));
  await prepare(page);
  await page.goto(relay.url);
  await page.evaluate(async (options) => {
    const { default: init, Replicast } = await import('/pkg/replicast_wasm.js');
    await init();
    window.statuses = [];
    window.changes = [];
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    window.client = new Replicast(`${scheme}://${location.host}/ws`, options);
    window.client.onStatus((s) => window.statuses.push(s));
    window.client.onChange((c) => window.changes.push({ ...c, at: performance.now() }));
  }, options);
  return { page, errors };
}

/** Resident memory (MiB) of the Chromium processes this process started (through `launchBrowser`): the browser,
 * its renderers with their pages and workers, GPU and utility processes, from /proc. Other processes this one
 * started (redis-server, the relay, a static file server) are not counted. Linux only. */
export function chromiumRssMib() {
  const parents = new Map();
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      parents.set(Number(pid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch { /* gone meanwhile */ }
  }
  const ours = (pid) => {
    for (let p = parents.get(pid); p > 1; p = parents.get(p) ?? 0) if (p === process.pid) return true;
    return false;
  };
  let kib = 0;
  for (const pid of parents.keys()) {
    try {
      if (!ours(pid) || !path.basename(readlinkSync(`/proc/${pid}/exe`)).startsWith('chrom')) continue;
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) kib += Number(m[1]);
    } catch { /* gone meanwhile */ }
  }
  return kib / 1024;
}

export async function launchBrowser() {
  const browser = await chromium.launch({ executablePath: chromiumPath, args: CHROMIUM_ARGS });
  return { browser, stop: () => browser.close() };
}

/** The hash slot of `key` (a string or a Buffer) in Redis Cluster: CRC16/XMODEM of the key, or of its hash tag (the
 * bytes between the first `{` and the next `}`, when not empty), modulo 16384. */
export function clusterSlot(key) {
  let bytes = Buffer.from(key);
  const open = bytes.indexOf('{');
  if (open >= 0) {
    const close = bytes.indexOf('}', open + 1);
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

/** `CLUSTER NODES`, parsed: id, port, the primary's id (null for a primary), failing or in handshake, slot ranges. */
function parseClusterNodes(text) {
  return text.split('\n').filter(Boolean).map((line) => {
    const [id, addr, flags, primary, , , , , ...slots] = line.split(' ');
    const f = flags.split(',');
    return {
      id, port: Number(addr.split('@')[0].split(':').pop()), primaryId: primary === '-' ? null : primary,
      gone: f.some((x) => ['fail', 'fail?', 'handshake', 'noaddr'].includes(x)), slots: slots.join(' '),
    };
  });
}

/** Polls `check` every 50 ms until it resolves truthy; rejects after `ms` with `what`. A check that throws (a node
 * not answering yet) counts as not yet. */
async function waitUntil(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A local Redis Cluster: `primaries` primaries with `replicas` replicas each, every node a cluster-enabled
 * redis-server on a free port in a new empty folder, joined by `redis-cli --cluster create` (the slots split
 * evenly), resolved once every node reports `cluster_state:ok`, all agree on the slots and the roles, and every
 * replica's link is up (`settle()` waits for that again, and refreshes `primaries` and each node's `role`).
 * Writes and reads go through `redis-cli -c`, which follows MOVED and ASK. `stop()` stops every node and removes
 * the folders. */
export async function startCluster({ primaries = 3, replicas = 1 } = {}) {
  const nodes = [];
  const stops = [];
  const dirs = [];
  const stop = async () => {
    await Promise.all(stops.map((s) => s()));
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  };
  const cli = (port, ...args) => promisify(execFile)('redis-cli', ['-p', String(port), ...args]).then((r) => r.stdout.trim());
  try {
    for (let i = 0; i < primaries * (1 + replicas); i++) {
      const port = await freePort();
      // The bus on a checked free port too, not the default port + 10000.
      const busPort = await freePort();
      const dir = await mkdtemp(path.join(tmpdir(), 'replicast-e2e-cluster-'));
      dirs.push(dir);
      const child = spawn('redis-server', [
        '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
        '--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, 'nodes.conf'), '--cluster-port', String(busPort),
        '--cluster-node-timeout', '2000', '--repl-diskless-sync-delay', '0', '--cluster-allow-replica-migration', 'no',
      ], { stdio: ['ignore', 'pipe', 'inherit'] });
      stops.push(stopper(child));
      await waitForLine(child, /Ready to accept connections/, 10_000, 'redis-server (cluster node)');
      nodes.push({ port, busPort, role: 'master', process: child, ...faults(child) });
    }
    if (primaries >= 3) {
      await promisify(execFile)('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`),
        '--cluster-replicas', String(replicas), '--cluster-yes']);
    } else {
      // What `--cluster create` does, for the one or two primaries it refuses: the slots split evenly, every node
      // met, each replica attached to its primary once it knows it.
      for (const [i, node] of nodes.entries()) {
        if (i < primaries) {
          await cli(node.port, 'CLUSTER', 'ADDSLOTSRANGE', String((16384 * i) / primaries | 0), String(((16384 * (i + 1)) / primaries | 0) - 1));
        }
        if (i > 0) await cli(node.port, 'CLUSTER', 'MEET', '127.0.0.1', String(nodes[0].port), String(nodes[0].busPort));
      }
      for (const [i, node] of nodes.entries()) {
        if (i < primaries) continue;
        const id = await cli(nodes[Math.floor((i - primaries) / replicas)].port, 'CLUSTER', 'MYID');
        await waitUntil(async () => (await cli(node.port, 'CLUSTER', 'REPLICATE', id)) === 'OK', 30_000, `${node.port} to replicate`);
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }

  const running = () => nodes.filter((n) => !exited(n.process));
  const anyPort = () => running()[0].port;
  let topology = [];
  /** Every running node: state ok, the same view of the running nodes, their roles and slots; replicas linked. */
  const settle = () => waitUntil(async () => {
    const ports = running().map((n) => n.port).sort((a, b) => a - b).join();
    let first = null;
    for (const node of running()) {
      if (!(await cli(node.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return false;
      const view = parseClusterNodes(await cli(node.port, 'CLUSTER', 'NODES')).filter((e) => !e.gone);
      const portOf = (id) => view.find((e) => e.id === id)?.port;
      const roles = view.map((e) => ({ port: e.port, primary: e.primaryId && portOf(e.primaryId), slots: e.slots }))
        .sort((a, b) => a.port - b.port);
      if (roles.map((r) => r.port).join() !== ports) return false;
      const key = JSON.stringify(roles);
      if (first !== null && key !== first) return false;
      first = key;
      const me = roles.find((r) => r.port === node.port);
      if (me.primary && !(await cli(node.port, 'INFO', 'replication')).includes('master_link_status:up')) return false;
      topology = roles;
    }
    for (const node of nodes) node.role = topology.find((r) => r.port === node.port)?.primary ? 'replica' : 'master';
    return true;
  }, 30_000, 'the cluster to settle');
  await settle().catch(async (err) => { await stop(); throw err; });

  const firstSlot = (slots) => (slots ? Number(slots.split(' ')[0].split('-')[0]) : Infinity);
  return {
    nodes,
    /** The primaries' ports, in the order of the first slot each serves, as of the last settle. */
    get primaries() {
      return topology.filter((r) => !r.primary).sort((a, b) => firstSlot(a.slots) - firstSlot(b.slots) || a.port - b.port)
        .map((r) => r.port);
    },
    replicasOf: (port) => topology.filter((r) => r.primary === port).map((r) => r.port),
    slot: clusterSlot,
    settle,
    cli,
    zadd: (key, score, member) => cli(anyPort(), '-c', 'ZADD', key, String(score), member),
    /** The newest `n` members of `key` as [member, score] pairs, newest first. */
    zrangeNewest: async (key, n) =>
      JSON.parse(await cli(anyPort(), '-c', '--json', 'ZRANGE', key, String(-n), '-1', 'WITHSCORES')).reverse(),
    /** `CLUSTER FAILOVER` on the replica on `replicaPort`; resolves once it is a primary in every node's slot map
     * and the cluster settled again. */
    failover: async (replicaPort) => {
      await cli(replicaPort, 'CLUSTER', 'FAILOVER');
      await waitUntil(async () => {
        if (!(await cli(replicaPort, 'INFO', 'replication')).includes('role:master')) return false;
        for (const node of running()) {
          const view = parseClusterNodes(await cli(node.port, 'CLUSTER', 'NODES'));
          if (!view.find((e) => e.port === replicaPort && !e.primaryId && e.slots)) return false;
        }
        return true;
      }, 30_000, `${replicaPort} to become a primary`);
      await settle();
    },
    stop,
  };
}
