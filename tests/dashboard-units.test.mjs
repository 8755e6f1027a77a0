// The dashboard's pure parts, in Node: number and time formats, sample intervals, sparkline and chart paths, sorting
// and grouping, alert rules, ranges, heatmap cells, what the history sink may answer, and SeriesCache keeping
// series in step with a client by appending (checked against a client that counts its whole-window reads).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fmt from '../www/js/format.js';
import { sparkPath, niceCeil, binaryTicks, nearestIndex, firstAtOrAfter, linePath } from '../www/js/charts.js';
import { SeriesCache } from '../www/js/series-cache.js';
import { HostSeries } from '../www/js/host-series.js';
import { filterMatcher } from '../www/js/controls.js';
import { observedInterval, silentAfter, samplesFor, medianInterval } from '../www/js/intervals.js';
import { arrange, roleOf } from '../www/js/hosts.js';
import { AlertBook, MEASURES, DEFAULT_RULES, MAX_ALERTS, parseRule, ruleToken } from '../www/js/alerts.js';
import { clampRange } from '../www/js/host-charts.js';
import { paintCells } from '../www/js/heatmap.js';
import { parseHistory, historyUrl, findHistory, HistoryError, MAX_HISTORY_BYTES } from '../www/js/history.js';

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

test('HostSeries takes a whole series, then moves on in place, its buffers reused as the window slides', () => {
  const series = new HostSeries(2);
  assert.equal(series.length, 0);
  series.replace(Float64Array.from([10, 20, 30]), [Float64Array.from([1, 2, 3]), Float64Array.from([100, 200, 300])]);
  assert.deepEqual([...series.times], [10, 20, 30]);
  assert.deepEqual(series.values.map((v) => [...v]), [[1, 2, 3], [100, 200, 300]]);
  const buffer = series.buffers[0];
  const view = series.times;
  // A row of `client.changes()`: handle, samples, appended, time, then the fields from `at`.
  for (let t = 40; t <= 400; t += 10) series.advance(1, t, [0, 3, 1, t, t / 10, t * 10], 4);
  assert.deepEqual([...series.times], [380, 390, 400]);
  assert.deepEqual(series.values.map((v) => [...v]), [[38, 39, 40], [3800, 3900, 4000]]);
  assert.equal(series.buffers[0], buffer, 'a window that slides keeps its buffers');
  assert.equal(series.times, view, '… and its views: nothing allocated');
  series.advance(2);
  assert.deepEqual([...series.times], [400], 'the oldest dropped, nothing appended');
  for (let t = 410; t <= 600; t += 10) series.advance(0, t, [t, 0], 0);
  assert.equal(series.length, 21, 'a window that grows moves to larger buffers');
  assert.deepEqual([...series.times.subarray(0, 3)], [400, 410, 420]);
  assert.deepEqual([...series.values[1].subarray(-2)], [0, 0]);
  assert.deepEqual([...series.values[0].subarray(-2)], [590, 600]);
  series.replace(Float64Array.from([1]), [Float64Array.from([2]), Float64Array.from([3])]);
  assert.deepEqual([series.length, series.times[0], series.values[1][0]], [1, 1, 3], 'replaced whole again');
});

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

test('SeriesCache reads a field the client does not aggregate whole only once, then keeps its values by time', () => {
  const items = [1, 2, 3].map((t) => ({ t, cpu: t * 10 }));
  const client = fakeClient(items);
  const cache = new SeriesCache(['cpu.total'], { scanned: ['cpu.total'] });
  const read = () => Array.from(cache.read(client, 'k', client.latest()).values[0]);
  assert.deepEqual(read(), [10, 20, 30]);
  // Two samples at once, the oldest gone: what it had stays, the newest comes from latest(), the one between is NaN.
  items.shift();
  items.push({ t: 4, cpu: 40 }, { t: 5, cpu: 50 });
  assert.deepEqual(read(), [20, 30, NaN, 50]);
  assert.equal(client.seriesReads, 1, 'no second scan of the window');
});

test('SeriesCache reads a field it does not aggregate whole again when the window reaches further back', () => {
  // The overview's first window is two samples; once the page knows how many hosts there are it asks for more, and
  // the deeper window's older samples are history to read, not gaps to leave NaN.
  const items = [4, 5].map((t) => ({ t, cpu: t * 10 }));
  const client = fakeClient(items);
  const cache = new SeriesCache(['cpu.total'], { scanned: ['cpu.total'] });
  const read = () => Array.from(cache.read(client, 'k', client.latest()).values[0]);
  assert.deepEqual(read(), [40, 50]);
  items.unshift(...[1, 2, 3].map((t) => ({ t, cpu: t * 10 })));
  items.push({ t: 6, cpu: 60 });
  assert.deepEqual(read(), [10, 20, 30, 40, 50, 60]);
  assert.equal(client.seriesReads, 2);
});

test('durations read as people say them and round-trip through the URL', () => {
  assert.equal(fmt.duration(250), `250${NNBSP}ms`);
  assert.equal(fmt.duration(30_000), `30${NNBSP}s`);
  assert.equal(fmt.duration(90_000), `1${NNBSP}min 30${NNBSP}s`);
  assert.equal(fmt.duration(3_600_000), `1${NNBSP}h`);
  assert.equal(fmt.duration(5_400_000), `1${NNBSP}h 30${NNBSP}min`);
  for (const ms of [250, 30_000, 600_000, 3_600_000, 86_400_000]) {
    assert.equal(fmt.parseDuration(fmt.durationToken(ms)), ms, fmt.durationToken(ms));
  }
  assert.equal(fmt.durationToken(600_000), '10m');
  // A bare number is seconds: what `window=300` meant when it counted samples of one a second.
  assert.equal(fmt.parseDuration('300'), 300_000);
  assert.equal(fmt.parseDuration('1h'), 3_600_000);
  for (const bad of ['', '-5m', 'soon', '5 weeks', null, '0']) assert.ok(Number.isNaN(fmt.parseDuration(bad)), String(bad));
});

test('times print in UTC or in the browser\'s zone, with the zone named', () => {
  const before = process.env.TZ;
  process.env.TZ = 'America/New_York';
  try {
    const t = Date.UTC(2024, 4, 1, 14, 3, 21);
    fmt.setUtc(true);
    assert.equal(fmt.clock(t), '14:03:21');
    assert.equal(fmt.dateTime(t), '2024-05-01 14:03:21 UTC');
    fmt.setUtc(false);
    assert.equal(fmt.clock(t), '10:03:21');
    assert.equal(fmt.dateTime(t), '2024-05-01 10:03:21 UTC-04:00');
    assert.equal(fmt.tick(t, 3_600_000), '10:03');
    assert.equal(fmt.dateTime(NaN), fmt.MISSING);
  } finally {
    fmt.setUtc(false);
    if (before === undefined) delete process.env.TZ;
    else process.env.TZ = before;
  }
});

test('a host\'s interval is the median gap of its newest samples; windows and silence follow from it', () => {
  assert.equal(observedInterval(Float64Array.from([0, 60_000, 120_000, 180_000])), 60_000);
  // A missed sample and a duplicate do not move the median.
  assert.equal(observedInterval([0, 1000, 2000, 4000, 5000, 5000, 6000]), 1000);
  assert.ok(Number.isNaN(observedInterval([5])));
  assert.equal(silentAfter(1000), 5000);
  assert.equal(silentAfter(60_000), 300_000);
  assert.equal(silentAfter(100), 2000, 'never sooner than the floor');
  assert.equal(silentAfter(NaN), 5000, 'an unknown interval is taken as 1 s');
  assert.equal(samplesFor(120_000, 1000), 121);
  assert.equal(samplesFor(600_000, 60_000), 11);
  assert.equal(samplesFor(3_600_000, 1000, 120), 120);
  assert.equal(samplesFor(1000, 60_000), 2);
  assert.equal(medianInterval([NaN, 1000, 60_000, 1000]), 1000);
});

/** A host for `arrange`: a name and numbers. */
const host = (name, cpu, extra = {}) => ({
  key: `perf:${name}`, name, cpu, memUsed: NaN, memTotal: NaN, load1: NaN, role: roleOf(name), ...extra,
});

test('tiles sort by CPU, memory, load or name and group by role', () => {
  const hosts = [host('web-02', 10), host('db-01', 90), host('web-01', 50), host('cache-01', NaN), host('db-02', 90)];
  const names = (groups) => groups.map((g) => [g.name, g.hosts.map((h) => h.name)]);
  assert.deepEqual(names(arrange(hosts, { sort: 'name', group: '' })),
    [['', ['cache-01', 'db-01', 'db-02', 'web-01', 'web-02']]]);
  assert.deepEqual(names(arrange(hosts, { sort: 'cpu', group: '' })),
    [['', ['db-01', 'db-02', 'web-01', 'web-02', 'cache-01']]], 'busiest first, ties by name, unknown last');
  assert.deepEqual(names(arrange(hosts, { sort: 'cpu', group: 'role' })),
    [['cache', ['cache-01']], ['db', ['db-01', 'db-02']], ['web', ['web-01', 'web-02']]]);
  const mem = [host('a', 0, { memUsed: 1, memTotal: 4 }), host('b', 0, { memUsed: 3, memTotal: 4 })];
  assert.deepEqual(names(arrange(mem, { sort: 'mem', group: '' })), [['', ['b', 'a']]]);
  assert.equal(roleOf('web-01'), 'web');
  assert.equal(roleOf('DB7'), 'db');
  assert.equal(roleOf('01-edge'), 'other');
  assert.equal(roleOf('web-01', { role: 'frontend' }), 'frontend', 'a role field in the sample wins');
});

/** Feeds `book` the CPU of one host, a sample a second from t = 0; returns what began and ended. */
function feedCpu(book, cpus, from = 0) {
  const events = [];
  cpus.forEach((cpu, i) => {
    for (const e of book.feed('perf:h', 'h', (from + i) * 1000, { cpu })) events.push([e.kind, e.alert.began, e.alert.ended]);
  });
  return events;
}

test('an alert begins once its rule has held for its duration and ends at the first sample below', () => {
  const rules = { cpu: { above: 90, forMs: 2000, on: true } };
  const book = new AlertBook(rules);
  // Above at 1 s, 2 s: held 1 s, not yet; 3 s: held 2 s, begins (at 1 s, when the run began); 5 s: ends.
  assert.deepEqual(feedCpu(book, [10, 95, 96, 97, 99, 50, 95]), [['began', 1000, null], ['ended', 1000, 5000]]);
  assert.equal(book.alerts.length, 1);
  assert.equal(book.alerts[0].peak, 99);
  assert.equal(book.alerts[0].rule, `CPU > 90${NNBSP}% for 2${NNBSP}s`);
  // At the threshold is not above it; a sample without the measure neither grows nor ends a run.
  const edge = new AlertBook({ cpu: { above: 90, forMs: 0, on: true } });
  assert.deepEqual(feedCpu(edge, [90, 91, NaN, 90]), [['began', 1000, null], ['ended', 1000, 3000]]);
  // A sample not newer than the last one is ignored.
  assert.deepEqual(edge.feed('perf:h', 'h', 2000, { cpu: 99 }), []);
  assert.equal(edge.firingCount(), 0);
});

test('alerts from a whole window at once equal those fed sample by sample', () => {
  const cpus = Array.from({ length: 200 }, (_, i) => 50 + 45 * Math.sin(i / 7));
  const rules = { cpu: { above: 80, forMs: 3000, on: true } };
  const whole = new AlertBook(rules);
  feedCpu(whole, cpus);
  const pieces = new AlertBook(rules);
  for (let i = 0; i < cpus.length; i += 13) feedCpu(pieces, cpus.slice(i, i + 13), i);
  const view = (b) => b.alerts.map((a) => [a.began, a.ended, a.peak]);
  assert.ok(whole.alerts.length > 3);
  assert.deepEqual(view(pieces), view(whole));
  assert.deepEqual(whole.firing('perf:h').map((f) => f.measure), whole.alerts[0].ended === null ? ['cpu'] : []);
});

test('the alert list keeps the newest 500, dropping ended alerts before firing ones', () => {
  const book = new AlertBook({ cpu: { above: 50, forMs: 0, on: true } });
  // Host "still" fires first and never ends; then 600 hosts each fire and end.
  book.feed('still', 'still', 1, { cpu: 99 });
  for (let i = 0; i < 600; i += 1) {
    book.feed(`k${i}`, `h${i}`, 1, { cpu: 99 });
    book.feed(`k${i}`, `h${i}`, 2, { cpu: 1 });
  }
  assert.equal(book.alerts.length, MAX_ALERTS);
  assert.equal(book.alerts.at(-1).host, 'still', 'the oldest, still firing, is kept');
  assert.equal(book.alerts[0].host, 'h599');
  assert.equal(book.firingCount(), 1);
});

test('every measure reads from the host\'s numbers, and rules round-trip through the URL', () => {
  const point = { cpu: 12, memUsed: 3, memTotal: 4, diskRead: 60e6, diskWrite: 50e6, load1: 5 };
  assert.equal(MEASURES.cpu.read(point), 12);
  assert.equal(MEASURES.mem.read(point), 75);
  assert.equal(MEASURES.disk.read(point), 110);
  assert.equal(MEASURES.load.read(point), 5);
  assert.ok(Number.isNaN(MEASURES.mem.read({ memUsed: 1, memTotal: 0 })));
  const book = new AlertBook({ disk: { above: 100, forMs: 0, on: true }, load: { above: 4, forMs: 0, on: true } });
  assert.deepEqual(book.feed('k', 'h', 1, point).map((e) => e.alert.measure), ['disk', 'load']);
  assert.equal(ruleToken('cpu', DEFAULT_RULES.cpu), null, 'defaults stay out of the URL');
  assert.equal(ruleToken('cpu', { above: 95, forMs: 60_000, on: true }), '95/1m');
  assert.equal(ruleToken('load', { ...DEFAULT_RULES.load, on: false }), 'off');
  assert.deepEqual(parseRule('cpu', '95/1m'), { above: 95, forMs: 60_000, on: true });
  assert.deepEqual(parseRule('cpu', '95/0'), { above: 95, forMs: 0, on: true });
  assert.deepEqual(parseRule('cpu', 'off'), { ...DEFAULT_RULES.cpu, on: false });
  assert.deepEqual(parseRule('cpu', 'x/y'), { ...DEFAULT_RULES.cpu }, 'malformed: the default');
  assert.deepEqual(parseRule('mem', '-3'), { ...DEFAULT_RULES.mem });
});

test('the crosshair finds the nearest sample; dense lines draw a minimum and a maximum per pixel', () => {
  const times = [0, 10, 20, 30];
  assert.equal(nearestIndex(times, -5), 0);
  assert.equal(nearestIndex(times, 14), 1);
  assert.equal(nearestIndex(times, 15), 1, 'a tie goes to the earlier sample');
  assert.equal(nearestIndex(times, 99), 3);
  assert.equal(nearestIndex([], 1), -1);
  assert.equal(firstAtOrAfter(times, 11), 2);
  assert.equal(firstAtOrAfter(times, 31), 4);
  const id = (v) => v;
  assert.equal(linePath([0, 1, 2], [5, NaN, 7], 0, 2, id, id, 100, 10), 'M0,5M2,7');
  assert.equal(linePath([0, 1], [5, 500], 0, 1, id, id, 100, 10), 'M0,5L1,100', 'clamped at the top');
  // 1,000 points over 10 pixels (rounded to columns 0 to 10): each column draws its minimum then its maximum.
  const many = Float64Array.from({ length: 1000 }, (_, i) => i);
  const values = Float64Array.from({ length: 1000 }, (_, i) => (i % 2 ? 9 : 1));
  const d = linePath(many, values, 0, 999, (t) => t / 100, id, 100, 10);
  assert.equal(d.split(/[ML]/).length - 1, 22, 'two points for each of 11 columns, not 1,000');
  assert.ok(d.startsWith('M0,1L0,9L1,1L1,9'), d.slice(0, 40));
});

test('a zoomed range stays within what the page holds and is never narrower than the minimum', () => {
  assert.deepEqual(clampRange(20, 40, 0, 100, 5), { t0: 20, t1: 40, before: false });
  assert.deepEqual(clampRange(-30, -10, 0, 100, 5), { t0: 0, t1: 20, before: true }, 'panned past the oldest');
  assert.deepEqual(clampRange(-50, 150, 0, 100, 5), { t0: 0, t1: 100, before: true }, 'zoomed out past both ends');
  assert.deepEqual(clampRange(90, 130, 0, 100, 5), { t0: 60, t1: 100, before: false }, 'past the newest');
  assert.deepEqual(clampRange(50, 51, 0, 100, 10), { t0: 45.5, t1: 55.5, before: false }, 'widened about its centre');
});

test('the heatmap paints each cell with the highest CPU sampled in it, or the sample that covers it', () => {
  const palette = Uint32Array.from({ length: 101 }, (_, i) => 1000 + i);
  const rows = [
    { times: [0, 400, 1200, 2500, 9000], cpu: [10, 30, 20, 99.6, 50], interval: 1000 },
    null,
    { times: [1500], cpu: [NaN], interval: 1000 },
    // A sample every 3 s in 1 s columns: each covers the two columns before its own.
    { times: [-1000, 2000, 5000], cpu: [40, 60, 80], interval: 3000 },
    // Silent for longer than twice its interval: only the 2 s before the next sample are covered.
    { times: [0, 5500], cpu: [40, 60], interval: 1000 },
  ];
  const pixels = paintCells(new Uint32Array(5 * 6), rows, 6, 0, 1000, palette, 7);
  assert.deepEqual([...pixels], [
    // [0, 1000) holds 10 and 30; [1000, 2000) 20; [2000, 3000) 99.6 (rounded); 9000 is past the end and covers
    // only from 7000 on.
    1030, 1020, 1100, 7, 7, 7,
    7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7,
    1060, 1060, 1060, 1080, 1080, 1080,
    1040, 7, 7, 1060, 1060, 1060,
  ]);
});

const ASKED = { key: 'perf:web-01', from: 0, to: 10_000, points: 4, fields: ['cpu.total', 'mem.used'] };

test('the history sink\'s answer becomes series of avg, min and max per field', () => {
  assert.equal(historyUrl('http://sink.example/api', { ...ASKED, from: 1.5, to: 9.2 }),
    'http://sink.example/api/history?key=perf%3Aweb-01&from=1&to=10&points=4&fields=cpu.total%2Cmem.used');
  const answer = {
    key: 'perf:web-01', from: 0, to: 10_000, step_ms: 2500,
    points: [
      [0, { 'cpu.total': { avg: 10, min: 5, max: 20 }, 'mem.used': { avg: 1, min: 1, max: 1 } }],
      [2500, { 'cpu.total': { avg: 30, min: 25, max: 35 } }],
      [5000, { 'cpu.total': null }],
    ],
  };
  const h = parseHistory(answer, ASKED);
  assert.equal(h.stepMs, 2500);
  assert.deepEqual([...h.times], [0, 2500, 5000]);
  assert.deepEqual([...h.series['cpu.total'].avg], [10, 30, NaN]);
  assert.deepEqual([...h.series['cpu.total'].min], [5, 25, NaN]);
  assert.deepEqual([...h.series['cpu.total'].max], [20, 35, NaN]);
  assert.deepEqual([...h.series['mem.used'].avg], [1, NaN, NaN], 'a field missing from a point is NaN there');
  // Not downsampled: step 0, each point one sample (min = avg = max).
  const raw = parseHistory({ step_ms: 0, points: [[7, { 'cpu.total': { avg: 3, min: 3, max: 3 } }]] }, ASKED);
  assert.equal(raw.stepMs, 0);
  assert.deepEqual([...raw.series['cpu.total'].max], [3]);
});

test('an answer out of shape is refused with what and where', () => {
  const refused = (json, pattern) => assert.throws(() => parseHistory(json, ASKED), (err) => {
    assert.ok(err instanceof HistoryError);
    assert.match(err.message, pattern);
    assert.match(err.message, /^history for perf:web-01: /);
    return true;
  });
  refused([], /expected an object, got an array of 0/);
  refused({ points: 'many' }, /"points" must be an array, got the string "many"/);
  refused({ points: [[0, {}]], step_ms: -1 }, /"step_ms" must be a number ≥ 0/);
  refused({ points: [[0]] }, /point 0 must be \[t_ms, \{fields\}\]/);
  refused({ points: [['0', {}]] }, /point 0: the time must be a number of ms, got the string "0"/);
  refused({ points: [[5, {}], [5, {}]] }, /point 1: time 5 is not after 5/);
  refused({ points: [[5, []]] }, /point 0: expected an object of fields/);
  refused({ points: [[5, { 'cpu.total': 3 }]] }, /point 0: "cpu.total" must be \{avg, min, max\}/);
  refused({ points: [[5, { 'cpu.total': { avg: 'x' } }]] }, /point 0: "cpu.total".avg must be a number/);
  const many = Array.from({ length: 11 }, (_, i) => [i, {}]);
  refused({ points: many }, /11 points where 4 were asked for/);
});

test('the page finds the sink from ?history=, else from config.json, where a 404 means none', async () => {
  const page = 'http://relay.example/dash/index.html';
  const serve = (body, status = 200) => async () => new Response(body, { status });
  assert.equal(await findHistory('https://sink.example/x', { page, fetch: serve('{}') }), 'https://sink.example/x');
  assert.equal(await findHistory('off', { page }), null);
  assert.equal(await findHistory(null, { page, fetch: serve('not found', 404) }), null);
  assert.equal(await findHistory(null, { page, fetch: serve('{"history":null}') }), null);
  assert.equal(await findHistory(null, { page, fetch: serve('{"history":"/sink/"}') }), 'http://relay.example/sink/');
  let asked;
  await findHistory(null, { page, fetch: async (url) => { asked = url; return new Response('{}'); } });
  assert.equal(asked, 'http://relay.example/dash/config.json');
  await assert.rejects(findHistory(null, { page, fetch: serve('{"history":5}') }), /"history" must be a URL or null, got number 5/);
  await assert.rejects(findHistory(null, { page, fetch: serve('{') }), /config\.json: not JSON/);
  await assert.rejects(findHistory(null, { page, fetch: serve('oops', 500) }), /config\.json: HTTP 500/);
  await assert.rejects(findHistory(null, { page, fetch: serve('"x"'.padEnd(MAX_HISTORY_BYTES + 1, ' ')) }),
    /larger than 8388608 bytes/);
});

test('a host\'s window read again (a new snapshot) does not list its alerts twice', () => {
  const rules = { cpu: { above: 90, forMs: 0, on: true } };
  const book = new AlertBook(rules);
  const cpus = [10, 95, 96, 20, 97];
  assert.deepEqual(feedCpu(book, cpus), [['began', 1000, null], ['ended', 1000, 3000], ['began', 4000, null]]);
  book.forget('perf:h');
  assert.deepEqual(feedCpu(book, cpus), [['ended', 1000, 3000]], 'nothing begins again');
  assert.deepEqual(book.alerts.map((a) => [a.began, a.ended]), [[4000, null], [1000, 3000]]);
  assert.equal(book.firingCount(), 1);
});
