// The host detail's charts and the time range they show. Live, they follow the newest sample over the window. The
// page's Pause (or a drag, a brush, a zoom key on a chart) freezes them on the samples they had, which the user can
// zoom into and pan across while new samples wait; a double-click or Live returns to the newest. Before the oldest
// sample the page holds, the charts draw what the history sink answers (history.js); without a sink the window is
// as far back as they go, and the toolbar says so. The charts share one crosshair: pointing at one shows the same
// time on all, with the values in each legend and a tooltip on the one pointed at.
import { LineChart } from './charts.js';
import * as fmt from './format.js';
import { SeriesCache } from './series-cache.js';
import { loadHistory, MAX_HISTORY_POINTS } from './history.js';
import { observedInterval } from './intervals.js';

/** Cores charted, at most. */
export const MAX_CORES = 64;
/** The fields charted, besides each core's `cpu.cores.<i>`. */
export const CHARTED = [
  'cpu.total', 'mem.used', 'mem.cached', 'mem.swap_used', 'net.rx', 'net.tx', 'disk.read', 'disk.write',
  'load.0', 'load.1', 'load.2',
];
/** Each chart's lines, by field. */
const LINES = {
  cpu: ['cpu.total'],
  mem: ['mem.used', 'mem.cached', 'mem.swap_used'],
  net: ['net.rx', 'net.tx'],
  disk: ['disk.read', 'disk.write'],
  load: ['load.0', 'load.1', 'load.2'],
};
/** The narrowest range a zoom reaches: this many samples, and never under MIN_SPAN_MS. */
const MIN_SPAN_SAMPLES = 5;
const MIN_SPAN_MS = 5_000;
/** With a history sink, how far back the charts can go. */
export const MAX_HISTORY_SPAN_MS = 30 * 86_400_000;
/** A pause in panning or zooming this long before history is asked for. */
const HISTORY_DELAY_MS = 150;
const percentTick = (v) => `${Math.round(v)}\u202f%`;

/**
 * [t0, t1] moved into [lo, hi] (keeping its span where it fits, its centre otherwise) and at least `minSpan` wide.
 * `before`: the request reached before `lo`.
 */
export function clampRange(t0, t1, lo, hi, minSpan) {
  const room = Math.max(0, hi - lo);
  const span = Math.min(room, Math.max(minSpan, t1 - t0));
  const centre = (t0 + t1) / 2;
  let a = t1 - t0 < minSpan ? centre - span / 2 : t0;
  if (t1 - t0 > room) a = lo;
  a = Math.max(lo, Math.min(a, hi - span));
  return { t0: a, t1: a + span, before: t0 < lo };
}

export class HostCharts {
  /**
   * @param {HTMLElement} root the detail view (its `.charts` and `.range-bar` are used)
   * @param {{pause: import('./pause.js').Pause, announce: (text: string) => void}} deps
   */
  constructor(root, { pause, announce }) {
    this.pause = pause;
    this.announce = announce;
    this.historyBase = null;
    this.historyProblem = null;
    const container = root.querySelector('.charts');
    this.bar = {
      range: root.querySelector('.range-bar .range'),
      note: root.querySelector('.range-bar .range-note'),
      zoomOut: root.querySelector('.range-bar [data-action="zoom-out"]'),
      live: root.querySelector('.range-bar [data-action="live"]'),
    };
    this.bar.zoomOut.addEventListener('click', () => {
      const [t0, t1] = this.shownRange();
      const span = t1 - t0;
      this.range(t0 - span / 2, t1 + span / 2);
    });
    this.bar.live.addEventListener('click', () => this.live());
    const input = this;
    this.charts = {
      cpu: new LineChart(container, {
        title: 'CPU', format: fmt.percent, tick: percentTick, yMax: 100, input,
        series: [{ label: 'total', cls: 's-total' }],
      }),
      mem: new LineChart(container, {
        title: 'Memory', format: fmt.bytes, tick: fmt.short(fmt.bytes), binary: true, input,
        series: [{ label: 'used', cls: 's1' }, { label: 'cached', cls: 's2' }, { label: 'swap used', cls: 's3' }],
      }),
      net: new LineChart(container, {
        title: 'Network', format: fmt.rate, tick: fmt.short(fmt.rate), floor: 1000, input,
        series: [{ label: 'received', cls: 's1' }, { label: 'sent', cls: 's2' }],
      }),
      disk: new LineChart(container, {
        title: 'Disk', format: fmt.rate, tick: fmt.short(fmt.rate), floor: 1000, input,
        series: [{ label: 'read', cls: 's1' }, { label: 'written', cls: 's2' }],
      }),
      load: new LineChart(container, {
        title: 'Load average', format: fmt.load, tick: (v) => String(+v.toFixed(2)), floor: 1, input,
        series: [{ label: '1 min', cls: 's1' }, { label: '5 min', cls: 's2' }, { label: '15 min', cls: 's3' }],
      }),
    };
    pause.onChange((paused) => (paused ? this.freeze() : this.follow()));
    this.reset('', 120_000);
  }

  /** A new host (`key`), shown over `windowMs`. */
  reset(key, windowMs) {
    this.key = key;
    this.windowMs = windowMs;
    this.series = null;
    this.coreCount = -1;
    /** What the client holds now: `{times, values, sample}`; and what the view froze on. */
    this.current = null;
    this.frozen = null;
    /** The range shown while frozen. */
    this.view = null;
    this.interval = NaN;
    this.history = null;
    this.historyWanted = null;
    clearTimeout(this.historyTimer);
    this.historyAbort?.abort();
    this.setNote('');
    this.pause.setWaiting('detail', 0);
    for (const chart of Object.values(this.charts)) chart.clear();
    this.showBar();
  }

  setWindow(windowMs) {
    this.windowMs = windowMs;
    this.render();
  }

  /** Where the history sink is (null: none), and why there is none when the configuration was broken. */
  setHistory(base, problem) {
    this.historyBase = base;
    this.historyProblem = problem;
  }

  /** Brings the series up to date with `key`'s window in `client` (`sample`: its newest); draws if live. */
  read(client, key, sample) {
    const coreCount = Math.min(MAX_CORES, Array.isArray(sample.cpu?.cores) ? sample.cpu.cores.length : 0);
    if (!this.series || this.coreCount !== coreCount) {
      this.series = new SeriesCache([...CHARTED, ...Array.from({ length: coreCount }, (_, i) => `cpu.cores.${i}`)]);
      this.coreCount = coreCount;
      this.charts.cpu.setSeries([
        { label: 'total', cls: 's-total' },
        ...Array.from({ length: coreCount }, (_, i) => ({ label: `core ${i}` })),
      ]);
    }
    const { times, values } = this.series.read(client, key, sample);
    this.current = { times, values, sample, coreCount };
    this.interval = observedInterval(times);
    // A host opened while the page is paused shows what it had when it came, frozen like the rest.
    if (this.pause.paused && !this.frozen) this.freeze();
    else if (this.frozen) {
      const newest = this.frozen.times[this.frozen.times.length - 1] ?? -Infinity;
      let waiting = 0;
      for (let i = times.length - 1; i >= 0 && times[i] > newest; i -= 1) waiting += 1;
      this.pause.setWaiting('detail', waiting);
    } else {
      this.render();
    }
    return times;
  }

  /** The data the charts show: frozen while paused, else the newest. */
  get shown() {
    return this.frozen ?? this.current;
  }

  /** The range shown: the frozen view's, else the window up to the newest sample. */
  shownRange() {
    if (this.view) return [this.view.t0, this.view.t1];
    const times = this.shown?.times;
    const t1 = times?.length ? times[times.length - 1] : Date.now();
    return [t1 - this.windowMs, t1];
  }

  /** How far the view can reach: [lo, hi] in time; without a history sink, the window before the newest sample. */
  limits() {
    const { times } = this.shown;
    const newest = times[times.length - 1];
    return [newest - (this.historyBase ? MAX_HISTORY_SPAN_MS : this.windowMs), newest];
  }

  freeze() {
    if (!this.current || this.frozen) return;
    this.frozen = this.current;
    const [t0, t1] = this.shownRange();
    this.view = { t0, t1 };
    this.pause.setWaiting('detail', 0);
    this.render();
  }

  /** Back to the newest samples (the page resumed). */
  follow() {
    this.frozen = null;
    this.view = null;
    this.history = null;
    this.historyAbort?.abort();
    clearTimeout(this.historyTimer);
    this.setNote('');
    this.render();
  }

  /** Live again: the page resumes. */
  live() {
    if (this.pause.paused) this.pause.set(false);
    else this.follow();
  }

  // ChartInput: what the charts ask for.

  hover(source, t, tooltip) {
    for (const chart of Object.values(this.charts)) chart.point(t, chart === source && tooltip);
  }

  /** Shows [t0, t1] (pausing the page if it was live), kept within what the page holds or the sink can answer. */
  range(t0, t1) {
    if (!this.current) return;
    if (!this.pause.paused) this.pause.set(true);
    if (!this.frozen) return;
    const [lo, hi] = this.limits();
    const minSpan = Math.max(MIN_SPAN_MS, MIN_SPAN_SAMPLES * (this.interval > 0 ? this.interval : 1000));
    const next = clampRange(t0, t1, lo, hi, minSpan);
    this.view = { t0: next.t0, t1: next.t1 };
    if (next.before && !this.historyBase) {
      const why = this.historyProblem ? `History is unavailable (${this.historyProblem})` : 'No history sink is configured';
      this.setNote(`${why}: the charts go back as far as the window (${fmt.duration(this.windowMs)}).`);
    } else if (!this.historyBase) {
      this.setNote('');
    }
    this.render();
  }

  setMarks(marks) {
    for (const chart of Object.values(this.charts)) chart.setMarks(marks);
  }

  setNote(text) {
    if (this.bar.note.textContent !== text) this.bar.note.textContent = text;
    this.bar.note.hidden = !text;
  }

  showBar() {
    const [t0, t1] = this.shownRange();
    const text = this.shown?.times.length
      ? `${fmt.clock(t0)} – ${fmt.clock(t1)} ${fmt.zoneName(t1)} · ${fmt.duration(t1 - t0)}${this.frozen ? '' : ' · live'}`
      : '';
    if (this.bar.range.textContent !== text) this.bar.range.textContent = text;
    this.bar.live.hidden = !this.frozen;
    document.getElementById('detail').dataset.range = this.frozen ? `${Math.round(t0)}-${Math.round(t1)}` : 'live';
  }

  render() {
    const data = this.shown;
    this.showBar();
    if (!data?.times.length) return;
    const { times, values, sample } = data;
    const [t0, t1] = this.shownRange();
    const column = (field) => values[this.fieldIndex(field)];
    const history = this.historyFor(t0, t1, times[0]);
    const historyOf = (fields) => (history ? {
      times: history.times,
      avg: fields.map((f) => history.series[f]?.avg ?? new Float64Array(history.times.length).fill(NaN)),
      min: fields.map((f) => history.series[f]?.min ?? new Float64Array(history.times.length).fill(NaN)),
      max: fields.map((f) => history.series[f]?.max ?? new Float64Array(history.times.length).fill(NaN)),
    } : null);
    const cpuFields = ['cpu.total', ...Array.from({ length: data.coreCount }, (_, i) => `cpu.cores.${i}`)];
    this.charts.cpu.update(times, cpuFields.map(column), t0, t1, historyOf(cpuFields));
    this.charts.mem.options.yMax = sample.mem?.total > 0 ? sample.mem.total : undefined;
    for (const name of ['mem', 'net', 'disk', 'load']) {
      this.charts[name].update(times, LINES[name].map(column), t0, t1, historyOf(LINES[name]));
    }
  }

  fieldIndex(field) {
    const i = CHARTED.indexOf(field);
    return i >= 0 ? i : CHARTED.length + Number(field.slice('cpu.cores.'.length));
  }

  /** History to draw before `oldest` in [t0, t1]: what is loaded, after asking for it if it is not. */
  historyFor(t0, t1, oldest) {
    if (!this.frozen || !this.historyBase || t0 >= oldest) return null;
    const to = Math.min(t1, oldest);
    const { width } = this.charts.cpu;
    const points = Math.max(10, Math.min(MAX_HISTORY_POINTS, Math.round((width || 600) * ((to - t0) / (t1 - t0)))));
    const wanted = { from: Math.floor(t0), to: Math.ceil(to), points };
    const had = this.history;
    if (!had || had.from > wanted.from || had.to < wanted.to - 1 || had.points < wanted.points / 2) {
      const key = `${wanted.from}-${wanted.to}-${wanted.points}`;
      if (this.historyWanted !== key) {
        this.historyWanted = key;
        clearTimeout(this.historyTimer);
        this.historyTimer = setTimeout(() => this.loadHistory(wanted), HISTORY_DELAY_MS);
      }
    }
    return had?.parsed ?? null;
  }

  async loadHistory(wanted) {
    this.historyAbort?.abort();
    const abort = new AbortController();
    this.historyAbort = abort;
    const fields = [...CHARTED, ...Array.from({ length: Math.max(0, this.coreCount) }, (_, i) => `cpu.cores.${i}`)];
    this.setNote('Loading history…');
    try {
      const parsed = await loadHistory(this.historyBase, { key: this.key, fields, ...wanted }, { signal: abort.signal });
      if (abort.signal.aborted) return;
      this.history = { ...wanted, parsed };
      this.setNote('');
      this.render();
    } catch (err) {
      if (abort.signal.aborted) return;
      this.setNote(`History could not be loaded: ${err.message}`);
    }
  }
}

