// PostgreSQL and `replicast sink` for the end-to-end suites: a real PostgreSQL (`initdb` into a scratch folder,
// `postgres` on a free loopback port, as the `postgres` user when the tests run as root, since PostgreSQL refuses to
// run as root) with a database `replicast`, and the sink binary following a relay into it. Each is stopped, and its
// folder removed, by the `stop()` it returns.
import { spawn, execFile, execFileSync } from 'node:child_process';
import { chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { once } from 'node:events';
import { promisify } from 'node:util';
import path from 'node:path';
import { freePort, relayBinary } from './processes.mjs';

const run = promisify(execFile);

/** The `postgres` user's ids when this process is root (PostgreSQL will not run as root), else null. */
function postgresOwner() {
  if (process.getuid?.() !== 0) return null;
  const id = (flag) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

/** Resolves once `stream` has printed a line matching `pattern` (its match); rejects after `ms` or when `child`
 * exits first. */
function waitFor(child, stream, pattern, ms, what) {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`${what}: nothing matching ${pattern} after ${ms} ms:\n${seen}`)), ms);
    stream.setEncoding('utf8');
    const onData = (chunk) => {
      seen += chunk;
      const match = seen.match(pattern);
      if (match) {
        clearTimeout(timer);
        stream.off('data', onData);
        stream.resume();
        resolve(match);
      }
    };
    stream.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code ?? signal}):\n${seen}`));
    });
  });
}

/** A new PostgreSQL cluster, started, with an empty database `replicast`; `url` and `sql(text)` (psql's unaligned
 * output) reach it. */
export async function startPostgres() {
  const dir = await mkdtemp(path.join(tmpdir(), 'replicast-e2e-postgres-'));
  const owner = postgresOwner();
  const as = owner ? { uid: owner.uid, gid: owner.gid } : {};
  if (owner) {
    await chown(dir, owner.uid, owner.gid);
    await chmod(dir, 0o700);
  }
  const data = path.join(dir, 'data');
  await run('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C'], as);
  const port = await freePort();
  const child = spawn('postgres', [
    '-D', data, '-p', String(port), '-k', dir,
    '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'full_page_writes=off',
  ], { stdio: ['ignore', 'ignore', 'pipe'], ...as });
  await waitFor(child, child.stderr, /ready to accept connections/, 30_000, 'postgres');
  const sql = (text, database = 'replicast') => run('psql', [
    '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', database, '-qAtc', text,
  ]).then((r) => r.stdout.trim());
  await sql('CREATE DATABASE replicast', 'postgres');
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/replicast`,
    sql,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exit = once(child, 'exit');
        child.kill('SIGINT');
        await exit;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** `replicast sink` following the relay at `relay` (its `ws://…/ws`) into `database`, with more flags in `args`;
 * with `--listen` in them, `url` is its history endpoint's base. */
export async function startSink({ relay, database, args = [] }) {
  const child = spawn(relayBinary, ['sink', '--relay', relay, '--database', database, '--create-schema', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  // The endpoint's address comes first, when there is one.
  const [, url] = await waitFor(child, child.stdout,
    /(?:History endpoint at (http:\/\/\S+)\/history[\s\S]*)?Sink following/, 30_000, 'sink');
  return {
    url,
    process: child,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exit = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exit;
      clearTimeout(timer);
    },
  };
}
