// The dashboard's pure parts, in Node: number formats, sparkline paths, and SeriesCache keeping series in step
// with a client by appending (checked against a client that counts its whole-window reads).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fmt from '../www/js/format.js';
import { sparkPath, niceCeil, binaryTicks } from '../www/js/charts.js';
import { SeriesCache } from '../www/js/series-cache.js';
import { filterMatcher } from '../www/js/controls.js';

const NNBSP = '\u202f';

test('numbers read with units, fixed decimals and a dash when missing', () => {
  assert.equal(fmt.percent(12.345), `12.3${NNBSP}%`);
  assert.equal(fmt.percent(NaN), fmt.MISSING);
  assert.equal(fmt.bytes(3.5 * 1024 ** 3), `3.50${NNBSP}GiB`);
  assert.equal(fmt.bytes(512), `512${NNBSP}B`);
  assert.equal(fmt.rate(12_345_678), `12.3${NNBSP}MB/s`);
  assert.equal(fmt.short(fmt.rate)(50e6), `50${NNBSP}MB/s`);
  assert.equal(fmt.load(1.234), '1.23');
  assert.equal(fmt.ago(10_000, 22_000), `12${NNBSP}s ago`);
  assert.equal(fmt.ago(0, 3 * 60_000), `3${NNBSP}min ago`);
});

test('sparkline paths scale into the box and break at missing values', () => {
  const d = sparkPath([0, 500, 1000, 1500], [0, 100, NaN, 50], 0, 1500, 100);
  assert.equal(d, 'M0 27L40 1M120 14');
  assert.equal(sparkPath([], [], 0, 1, 100), '');
  assert.equal(niceCeil(7.3), 10);
  assert.equal(niceCeil(230), 250);
  assert.deepEqual(binaryTicks(16, 4), [0, 4, 8, 12, 16]);
});

test('the host filter wants every word, in any case', () => {
  const match = filterMatcher('WEB 0');
  assert.equal(match('web-01'), true);
  assert.equal(match('db-01'), false);
  assert.equal(filterMatcher('')('anything'), true);
});

/** A client over one key's items `{t, cpu}`, counting whole-window reads. */
function fakeClient(items) {
  return {
    items,
    seriesReads: 0,
    times: () => Float64Array.from(items, (i) => i.t),
    series(_key, field) {
      this.seriesReads += 1;
      return Float64Array.from(items, (i) => (field === 'cpu.total' ? i.cpu : NaN));
    },
    latest: () => ({ t: items.at(-1).t, cpu: { total: items.at(-1).cpu } }),
  };
}

test('SeriesCache appends the newest sample and reads the whole window only when it changed otherwise', () => {
  const items = [1, 2, 3].map((t) => ({ t, cpu: t * 10 }));
  const client = fakeClient(items);
  const cache = new SeriesCache(['cpu.total']);
  const read = () => {
    const { times, values: [cpu] } = cache.read(client, 'k', client.latest());
    return [Array.from(times), Array.from(cpu)];
  };
  assert.deepEqual(read(), [[1, 2, 3], [10, 20, 30]]);
  assert.equal(client.seriesReads, 1, 'the first read is whole');

  items.push({ t: 4, cpu: 40 });
  items.shift();
  assert.deepEqual(read(), [[2, 3, 4], [20, 30, 40]]);
  items.push({ t: 5, cpu: 50 });
  assert.deepEqual(read(), [[2, 3, 4, 5], [20, 30, 40, 50]]);
  assert.deepEqual(read(), [[2, 3, 4, 5], [20, 30, 40, 50]], 'nothing moved');
  assert.equal(client.seriesReads, 1, 'appends and no-ops read nothing whole');

  // Two samples at once, or a removal in the middle: the window is read again.
  items.push({ t: 6, cpu: 60 }, { t: 7, cpu: 70 });
  assert.deepEqual(read(), [[2, 3, 4, 5, 6, 7], [20, 30, 40, 50, 60, 70]]);
  items.splice(2, 1);
  items.push({ t: 8, cpu: 80 });
  assert.deepEqual(read(), [[2, 3, 5, 6, 7, 8], [20, 30, 50, 60, 70, 80]]);
  assert.equal(client.seriesReads, 3);
});
