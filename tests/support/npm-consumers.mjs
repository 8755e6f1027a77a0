// The npm package as its users get it: `scripts/package.sh` builds it, `npm pack` packs it, and one workspace in a
// temp folder installs the tarball beside the tools of the consumer projects (Vite, webpack, React, TypeScript,
// ws), each at a pinned version, from an npm cache kept in target/npm-cache so that a second run is fast. Each
// consumer project is a folder of that workspace; its code is the package README's examples, taken verbatim.
import { execFile, spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { mkdtemp, mkdir, readFile, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import path from 'node:path';
import { repoRoot, freePort } from './processes.mjs';

const run = promisify(execFile);

/** The consumers' tools, pinned: a run installs exactly these. */
export const TOOLS = {
  vite: '8.4.1',
  webpack: '5.113.0',
  'webpack-cli': '7.3.1',
  react: '19.3.1',
  'react-dom': '19.3.1',
  '@vitejs/plugin-react': '6.3.1',
  typescript: '5.9.3',
  '@types/node': '20.19.8',
  '@types/react': '19.3.3',
  ws: '8.23.1',
  '@types/ws': '8.18.2',
};

/** The URL the README's examples connect to; the tests put the relay's in its place, and change nothing else. */
export const README_URL = 'ws://127.0.0.1:8080/ws';

/**
 * The README's code blocks by the file they belong to: a block's info string is its language and then the files
 * it goes into (```` ```js main.js ````); blocks of one file are joined in their order.
 */
export async function readmeFiles() {
  const text = await readFile(path.join(repoRoot, 'wasm/README.md'), 'utf8');
  const files = new Map();
  for (const [, info, code] of text.matchAll(/^```([^\n]*)\n([\s\S]*?)^```$/gm)) {
    for (const file of info.trim().split(/\s+/).slice(1)) files.set(file, (files.get(file) ?? '') + code);
  }
  return files;
}

/** Builds the package, packs it into a new temp folder and installs it there with the tools. */
export async function makeWorkspace() {
  await run('bash', [path.join(repoRoot, 'scripts/package.sh')], { cwd: repoRoot, maxBuffer: 1 << 24 });
  const packageDir = path.join(repoRoot, 'target/npm/replicast');
  const dir = await mkdtemp(path.join(tmpdir(), 'replicast-npm-'));
  let pack;
  try {
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: packageDir });
    [pack] = JSON.parse(stdout);
    await writeFile(path.join(dir, 'package.json'), JSON.stringify({
      name: 'replicast-consumers',
      private: true,
      // Installed under its own name, as `npm install <name>` would.
      dependencies: { [pack.name]: `file:./${pack.filename}` },
      devDependencies: TOOLS,
    }, null, 2));
    await run('npm', [
      'install', '--cache', path.join(repoRoot, 'target/npm-cache'), '--prefer-offline', '--no-audit', '--no-fund',
      '--loglevel', 'error',
    ], { cwd: dir, maxBuffer: 1 << 24 });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    dir,
    pack,
    packageDir,
    /** A consumer project: a new folder of the workspace with `files` ({ relative path: text }) written in it. */
    async project(name, files) {
      const root = path.join(dir, name);
      for (const [file, text] of Object.entries(files)) {
        await mkdir(path.dirname(path.join(root, file)), { recursive: true });
        await writeFile(path.join(root, file), text);
      }
      return root;
    },
    /** Runs one of the workspace's tools (`vite`, `webpack`, `tsc`) in `cwd`. */
    tool: (name, args, cwd) => run(path.join(dir, 'node_modules/.bin', name), args, { cwd, maxBuffer: 1 << 24 }),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

const TYPES = {
  '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css',
  '.wasm': 'application/wasm', '.json': 'application/json',
};

/** Serves the files of `root` on a free loopback port, as any static web server would (no SPA fallback). */
export async function serveStatic(root) {
  const server = createServer(async (req, res) => {
    const file = path.join(root, path.normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)));
    const target = file.endsWith(path.sep) ? path.join(file, 'index.html') : file;
    try {
      const body = await readFile(target);
      res.writeHead(200, { 'content-type': TYPES[path.extname(target)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${server.address().port}/`, stop: () => new Promise((r) => server.close(r)) };
}

/** `vite` (the dev server) in `cwd` on a free port; resolves once it prints its URL. */
export async function startViteDev(workspace, cwd) {
  const port = String(await freePort());
  const child = spawn(path.join(workspace.dir, 'node_modules/.bin/vite'), ['--host', '127.0.0.1', '--port', port, '--strictPort'], {
    cwd, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NO_COLOR: '1' },
  });
  const url = await new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`vite dev printed no URL in 60 s:\n${seen}`)), 60_000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      seen += chunk;
      const match = seen.match(/Local:\s+(http:\/\/127\.0\.0\.1:\d+\/)/);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.once('exit', (code) => reject(new Error(`vite dev exited (${code}):\n${seen}`)));
  });
  return {
    url,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exit = once(child, 'exit');
      child.kill('SIGTERM');
      await exit;
    },
  };
}

/** Opens `url` in a new page and collects its console messages, each as the list of its arguments' values. */
export async function openConsolePage(browser, url) {
  const page = await browser.newPage();
  const logs = [];
  const errors = [];
  page.on('console', async (message) => {
    logs.push(await Promise.all(message.args().map((arg) => arg.jsonValue().catch(() => undefined))));
  });
  page.on('pageerror', (err) => errors.push(err));
  await page.goto(url);
  return {
    page,
    logs,
    errors,
    /** Resolves with the first console message for which `match(args)` is true; rejects after `ms`. */
    async waitForLog(match, ms, what) {
      const deadline = Date.now() + ms;
      for (;;) {
        const found = logs.find((args) => { try { return match(args); } catch { return false; } });
        if (found) return found;
        if (errors.length) throw new Error(`${what}: the page threw: ${errors.map((e) => e.stack ?? e).join('\n')}`);
        if (Date.now() > deadline) throw new Error(`${what}: no such console message in ${ms} ms; seen: ${JSON.stringify(logs)}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
  };
}
