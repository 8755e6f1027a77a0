// The RDB inspector over RDB files of every version and encoding the reader supports: always the project's own
// written fixtures (crates/rdb/tests/fixtures: versions 1 to 12 and Valkey's, made by the test writer of
// crates/rdb), and also the shared corpus (real files of other Redis and Valkey versions, corrupt ones, not part of
// the repository) when RDB_FIXTURES names it, as .ci/run does. Each file is dropped into www/inspect.html, served as
// a static site (scripts/inspector-site.sh), and the page must show what `replicast rdb --stats` prints for it, or,
// for a file the CLI refuses, the CLI's error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { launchBrowser, freePort, relayBinary, repoRoot } from './support/processes.mjs';

const run = promisify(execFile);
const corpus = process.env.RDB_FIXTURES;

let chromium;
let site;
let server;
let port;

before(async () => {
  site = await mkdtemp(path.join(tmpdir(), 'replicast-inspect-corpus-'));
  await run('bash', [path.join(repoRoot, 'scripts/inspector-site.sh'), site]);
  port = await freePort();
  server = spawn('python3', ['-m', 'http.server', '--bind', '127.0.0.1', '-d', site, String(port)], { stdio: 'ignore' });
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.stop();
  server?.kill();
  if (site) await rm(site, { recursive: true, force: true });
});

async function rdbFiles(dir) {
  const out = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...await rdbFiles(full));
    else if (entry.name.endsWith('.rdb')) out.push(full);
  }
  return out.sort();
}

/** The summary without what depends on when it was read: a file without `ctime` measures expiries from now. */
function comparable(summary) {
  if (summary.aux.ctime === undefined) delete summary.ttl_reference_ms;
  return summary;
}

/** Drops every RDB file under `folder` (at least `least` of them) into the page and compares it with the CLI. */
async function inspectsLikeTheCli(folder, least) {
  const corpus = folder;
  const files = await rdbFiles(corpus);
  assert.ok(files.length >= least, `${files.length} files in ${corpus}`);
  const page = await chromium.browser.newPage();
  try {
    for (const file of files) {
      const cli = await run(relayBinary, ['rdb', '--stats', '--top', '50', file], { maxBuffer: 64 << 20 })
        .then(({ stdout }) => ({ summary: JSON.parse(stdout) }), (err) => ({ error: err.stderr.match(/RDB offset \d+: .*/)?.[0] ?? err.stderr }));
      for (let tries = 0; ; tries += 1) {
        try {
          await page.goto(`http://127.0.0.1:${port}/inspect.html`);
          break;
        } catch (err) {
          if (tries > 50) throw err;
          await new Promise((resolve) => { setTimeout(resolve, 100); });
        }
      }
      await page.setInputFiles('#file', file);
      await page.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.state));
      const name = path.relative(corpus, file);
      if (cli.summary) {
        assert.equal(await page.getAttribute('body', 'data-state'), 'done', `${name}: ${await page.textContent('#error')}`);
        const shown = await page.evaluate(async () => JSON.parse(await (await fetch(document.getElementById('save-json').href)).text()));
        assert.deepEqual(comparable(shown), comparable(cli.summary), name);
      } else {
        assert.equal(await page.getAttribute('body', 'data-state'), 'failed', `${name}: the CLI says ${cli.error}`);
        assert.ok((await page.textContent('#error')).includes(cli.error), `${name}: ${cli.error}`);
      }
    }
  } finally {
    await page.close();
  }
}

test('every written fixture of the project shows in the page what replicast rdb --stats says of it', async () => {
  await inspectsLikeTheCli(path.join(repoRoot, 'crates/rdb/tests/fixtures'), 14);
});

// The shared corpus only where it is (scripts/test.sh says so in one line when it is not).
if (corpus) {
  test('every file of the shared corpus shows in the page what replicast rdb --stats says of it', async () => {
    await inspectsLikeTheCli(corpus, 40);
  });
}
