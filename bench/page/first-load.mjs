// Bytes on the wire for the page: a first load in headless Chromium (every file the page fetches, as the relay
// sent it: headers and body, compressed or not), then a reload (the browser revalidating what it keeps). Counts
// bytes, not time, so one run says it all.
//
//   bash scripts/build.sh release
//   node bench/page/first-load.mjs            # REPLICAST_BIN=<another relay> to compare with another build
//
// Prints a table by file and the totals.
import { launchBrowser, startRedis, startRelay, ownership } from '../../tests/support/processes.mjs';

const { owned, stopAll } = ownership();
try {
  const redis = await owned(() => startRedis());
  const relay = await owned(() => startRelay({ redisUrl: redis.url }));
  const chromium = await owned(() => launchBrowser());
  const page = await chromium.browser.newPage();

  const load = async (go) => {
    const files = [];
    const onResponse = (response) => files.push(response);
    page.on('response', onResponse);
    await go();
    await page.waitForLoadState('networkidle');
    page.off('response', onResponse);
    const rows = [];
    for (const response of files) {
      const sizes = await response.request().sizes();
      rows.push({
        path: new URL(response.url()).pathname,
        status: response.status(),
        encoding: response.headers()['content-encoding'] ?? '',
        headers: sizes.responseHeadersSize,
        body: sizes.responseBodySize,
      });
    }
    return rows;
  };

  const report = (name, rows) => {
    console.log(`\n${name}`);
    console.log('| file | status | encoding | body bytes | header bytes |');
    console.log('| --- | --- | --- | ---: | ---: |');
    for (const r of rows) console.log(`| ${r.path} | ${r.status} | ${r.encoding} | ${r.body} | ${r.headers} |`);
    const body = rows.reduce((n, r) => n + r.body, 0);
    const all = rows.reduce((n, r) => n + r.body + r.headers, 0);
    console.log(`| total (${rows.length} responses) | | | ${body} | ${all - body} |`);
  };

  report('first load', await load(() => page.goto(relay.url)));
  report('reload', await load(() => page.reload()));
} finally {
  await stopAll();
}
