// Numeric series of one key's window, kept in step with the client cheaply. `client.series()` scans every item of
// the window in wasm (about 4 µs an item: 0.5 ms for 120 samples) unless the client aggregates the field, which
// keeps its series ready; at 1 Hz per host the window only moves forward by one sample, so when `client.times()`
// (cheap) shows exactly that, the newest sample (`client.latest()`, cheap) is appended here instead, and the whole
// window is read again only when it changed otherwise (a snapshot, a resync, a gap, a removal in the middle).
// Fields the client does not aggregate (`scanned`) are read whole only the first time: after that a window that
// changed otherwise keeps their values by time, the newest from `latest()`, and NaN for samples it never saw, so a
// page that falls behind at 1,000 hosts does not pay a scan of every window to catch up. A window that reaches
// further back than the kept times (the overview's first small window deepened) is read whole again: its older
// samples are history the page has never seen, not gaps.

export class SeriesCache {
  /**
   * @param {string[]} fields dotted JSON paths (`cpu.total`, `load.0`)
   * @param {{scanned?: string[]}} options — `scanned`: those of `fields` the client does not aggregate
   */
  constructor(fields, { scanned = [] } = {}) {
    this.fields = fields;
    this.scanned = fields.map((f) => scanned.includes(f));
    this.paths = fields.map((f) => f.split('.'));
    this.times = new Float64Array(0);
    /** @type {Float64Array[]} one per field, aligned with `times` */
    this.values = fields.map(() => new Float64Array(0));
    /** Whole-window reads, for the curious (and the benchmarks). */
    this.fullReads = 0;
  }

  /**
   * Brings the series up to date with `key`'s window in `client`; `sample` is `client.latest(key)`, and `times`
   * `client.times(key)` if the caller has read it already. Returns the times and the values, one Float64Array per
   * field, valid until the next call.
   */
  read(client, key, sample, times = client.times(key)) {
    const n = times.length;
    const from = this.appendedFrom(times, sample);
    if (sameTimes(times, this.times)) {
      // Nothing moved (another key changed, or a redraw): the kept values stand.
    } else if (from >= 0) {
      for (let f = 0; f < this.fields.length; f += 1) {
        const next = new Float64Array(n);
        next.set(this.values[f].subarray(from, from + n - 1));
        next[n - 1] = pick(sample, this.paths[f]);
        this.values[f] = next;
      }
    } else {
      this.fullReads += 1;
      const deepened = !(times[0] >= this.times[0]);
      this.values = this.fields.map((field, f) => (this.scanned[f] && !deepened
        ? realign(this.times, this.values[f], times, pick(sample, this.paths[f]))
        : client.series(key, field)));
    }
    this.times = times;
    return { times, values: this.values };
  }

  /**
   * Where the kept times start to equal the new window without its newest item, if the window only gained that
   * newest item (and maybe lost its oldest ones); else -1.
   */
  appendedFrom(times, sample) {
    const n = times.length;
    const old = this.times;
    // `latest()` is the item at the window's newest time, so only the times need comparing.
    if (n < 2 || !sample) return -1;
    const from = old.length - (n - 1);
    if (from < 0 || old[old.length - 1] >= times[n - 1]) return -1;
    for (let i = 0; i < n - 1; i += 1) if (old[from + i] !== times[i]) return -1;
    return from;
  }
}

/** `oldValues` (against `oldTimes`) against `times`, both ascending: the same time's value, `newest` last, else NaN. */
function realign(oldTimes, oldValues, times, newest) {
  const n = times.length;
  const out = new Float64Array(n).fill(NaN);
  let j = 0;
  for (let i = 0; i < n; i += 1) {
    while (j < oldTimes.length && oldTimes[j] < times[i]) j += 1;
    if (j < oldTimes.length && oldTimes[j] === times[i]) out[i] = oldValues[j];
  }
  if (n) out[n - 1] = newest;
  return out;
}

/** Whether two windows' times are the same (and not empty). */
export function sameTimes(a, b) {
  if (a.length !== b.length || a.length === 0) return false;
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
  return true;
}

/** The number at `path` in `obj`, or NaN. */
function pick(obj, path) {
  let v = obj;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return NaN;
    v = v[p];
  }
  return typeof v === 'number' ? v : NaN;
}
