// What the benchmark scripts share: loading the wasm package in Node whichever target built it, a benchmark page
// in headless Chromium, and the one machine-readable line each script ends with (`RESULT {json}`), which
// bench/run.mjs collects.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/** Prints the script's result for bench/run.mjs, after its human-readable lines. */
export function printResult(bench, data) {
  console.log(`RESULT ${JSON.stringify({ bench, ...data })}`);
}

/**
 * Loads a wasm-pack package in Node: a `--target nodejs` one as it is, a `--target web` one (the package
 * `npm run build` writes into wasm/pkg) with its bytes compiled synchronously, so the smoke run needs no
 * second build.
 */
export async function loadWasm(pkgDir) {
  const js = path.resolve(pkgDir, 'replicast_wasm.js');
  const source = readFileSync(js, 'utf8');
  if (!/\binitSync\b/.test(source)) return createRequire(import.meta.url)(js);
  const pkg = await import(pathToFileURL(js).href);
  pkg.initSync({ module: readFileSync(path.resolve(pkgDir, 'replicast_wasm_bg.wasm')) });
  return pkg;
}

/** Median and extremes of a list of numbers. */
export function spread(values) {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { median, min: s[0], max: s[s.length - 1], n: s.length };
}

/**
 * Serves `files` (URL path → [file, content type]) on a free loopback port and opens `/` in headless Chromium,
 * with the page's console echoed. Resolves with the page and the browser; `close()` stops both.
 */
export async function openBenchPage(files) {
  const server = createServer(async (req, res) => {
    const file = files[req.url];
    if (!file) {
      res.writeHead(req.url === '/favicon.ico' ? 204 : 404).end();
      return;
    }
    res.writeHead(200, { 'content-type': file[1] }).end(await readFile(file[0]));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  // Imported here, not at the top: playwright-core alone adds ~85 MB to a Node process's RSS, which the RDB
  // benchmark's wasm reader (in Node, no browser) would otherwise report as its own.
  const { launchBrowser } = await import('../tests/support/processes.mjs');
  const { browser, stop } = await launchBrowser();
  const close = async () => {
    await stop();
    server.close();
  };
  try {
    const page = await browser.newPage();
    page.on('console', (m) => console.log(`page: ${m.text()}`));
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    return { page, browser, close };
  } catch (err) {
    await close();
    throw err;
  }
}
