// Real processes for the end-to-end suites: redis-server, the relay binary and Chromium, each on free loopback
// ports (or a given one, to restart a process where its clients look for it), each stopped by the `stop()` it
// returns. Redis and the relay also take the faults the fault suite injects: SIGKILL, SIGSTOP and SIGCONT. Nothing
// here is mocked.
import { spawn, execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const relayBinary = process.env.REPLICAST_BIN ?? path.join(repoRoot, 'target/debug/replicast');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';

// The flags this machine's Chromium needs: no sandbox as root, and no background traffic to a closed network.
const CHROMIUM_ARGS = [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
];

export async function freePort() {
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
    const timer = setTimeout(() => reject(new Error(`${what}: no line matching ${pattern} after ${ms} ms:\n${seen}`)), ms);
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
 * one again where its browsers reconnect), with more `serve` flags in `args`. */
export async function startRelay({ redisUrl, listen = '127.0.0.1:0', args = [] }) {
  const child = spawn(relayBinary, ['serve', '--redis-url', redisUrl, '--listen', listen, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  const [, url] = await waitForLine(child, /Replicast is live at (http:\/\/\S+)/, 30_000, 'relay');
  return { url, listen: new URL(url).host, stop: stopper(child), process: child, ...faults(child) };
}

export async function launchBrowser() {
  const browser = await chromium.launch({ executablePath: chromiumPath, args: CHROMIUM_ARGS });
  return { browser, stop: () => browser.close() };
}
