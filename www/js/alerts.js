// Alert rules and their evaluation. A rule says a host is in trouble when one measure stays above a threshold for
// some time ("CPU above 90 % for 1 min"); the page evaluates every rule on every host's samples as they arrive, in
// sample time (the collector's clock), so a window read from a snapshot gives the same alerts as one watched live.
// An alert begins at the first sample of the run above the threshold (once the run has lasted long enough) and
// ends at the first sample at or below it. Pure code: the views (alert-panel.js, the tiles) show what it decides.
import * as fmt from './format.js';

/**
 * The measures rules can watch: how to read each from a host's numbers (`point`: cpu, memUsed, memTotal,
 * diskRead, diskWrite, load1), its unit in the URL and the rule editor, and how to print a value.
 */
export const MEASURES = {
  cpu: { label: 'CPU', unit: '%', read: (p) => p.cpu, format: fmt.percent },
  mem: {
    label: 'Memory', unit: '%', read: (p) => (p.memTotal > 0 ? (100 * p.memUsed) / p.memTotal : NaN), format: fmt.percent,
  },
  // The sample has no disk space figures (docs/COLLECTOR.md): the disk rule watches throughput, read and written.
  disk: {
    label: 'Disk I/O', unit: 'MB/s', read: (p) => (p.diskRead + p.diskWrite) / 1e6, format: (v) => fmt.rate(v * 1e6),
  },
  load: { label: 'Load', unit: '', read: (p) => p.load1, format: fmt.load },
};

/** The rules a page starts with: `above` in the measure's unit, `forMs` how long it must hold (0: at once). */
export const DEFAULT_RULES = Object.freeze({
  cpu: Object.freeze({ above: 80, forMs: 30_000, on: true }),
  mem: Object.freeze({ above: 90, forMs: 60_000, on: true }),
  disk: Object.freeze({ above: 100, forMs: 60_000, on: true }),
  load: Object.freeze({ above: 4, forMs: 60_000, on: true }),
});

/** Alerts kept in the list; the oldest ended ones go first past it. */
export const MAX_ALERTS = 500;

/** "CPU > 80 % for 30 s" */
export function ruleText(measure, rule) {
  const m = MEASURES[measure];
  const unit = m.unit ? `\u202f${m.unit}` : '';
  return `${m.label} > ${rule.above}${unit}${rule.forMs ? ` for ${fmt.duration(rule.forMs)}` : ''}`;
}

/** A rule in the URL: "90/1m" (threshold, then how long), "off", or null when it is the default. */
export function ruleToken(measure, rule) {
  const d = DEFAULT_RULES[measure];
  if (!rule.on) return 'off';
  if (rule.above === d.above && rule.forMs === d.forMs) return null;
  return `${rule.above}/${fmt.durationToken(rule.forMs)}`;
}

/** A rule from the URL ("90/1m", "90", "off"); the default for what is missing or malformed. */
export function parseRule(measure, token) {
  const d = DEFAULT_RULES[measure];
  if (token === null || token === undefined || token === '') return { ...d };
  if (token === 'off') return { ...d, on: false };
  const [threshold, held] = String(token).split('/');
  const above = Number.parseFloat(threshold);
  const forMs = held === undefined ? d.forMs : held === '0' ? 0 : fmt.parseDuration(held);
  return {
    above: Number.isFinite(above) && above >= 0 ? above : d.above,
    forMs: Number.isFinite(forMs) && forMs >= 0 ? forMs : d.forMs,
    on: true,
  };
}

/**
 * @typedef {{id: string, key: string, host: string, measure: string, rule: string, above: number, began: number,
 *            ended: number | null, peak: number, value: number}} Alert
 */

/** Every rule on every host: the runs above each threshold, the alerts they made, and the list of alerts. */
export class AlertBook {
  constructor(rules) {
    this.rules = rules;
    /** host key → measure → {runStart, t, alert} */
    this.state = new Map();
    /** @type {Alert[]} newest first */
    this.alerts = [];
    /** key, measure and began → the alert listed for that run, so a window read again does not list it twice */
    this.byRun = new Map();
  }

  /** New rules: every host's state starts over (the caller feeds the windows again). */
  reset(rules) {
    this.rules = rules;
    this.state.clear();
    this.alerts = [];
    this.byRun.clear();
  }

  /** The host left the page: its runs are forgotten, its alerts stay listed as they were. */
  forget(key) {
    this.state.delete(key);
  }

  /**
   * One sample of host `key` (named `host`) at `t`: its numbers `point`. Returns the alerts that began or ended
   * with it, as `{kind: 'began' | 'ended', alert}`. A sample not newer than the host's last is ignored.
   */
  feed(key, host, t, point) {
    let runs = this.state.get(key);
    if (!runs) {
      runs = new Map();
      this.state.set(key, runs);
    }
    const events = [];
    for (const [measure, rule] of Object.entries(this.rules)) {
      if (!rule.on) continue;
      let run = runs.get(measure);
      if (!run) {
        run = { runStart: NaN, t: -Infinity, alert: null };
        runs.set(measure, run);
      }
      if (!(t > run.t)) continue;
      const value = MEASURES[measure].read(point);
      // A sample without the measure says nothing about it: the run neither grows nor ends.
      if (Number.isNaN(value)) continue;
      run.t = t;
      if (value > rule.above) {
        if (Number.isNaN(run.runStart)) run.runStart = t;
        if (run.alert) {
          run.alert.value = value;
          run.alert.peak = Math.max(run.alert.peak, value);
        } else if (t - run.runStart >= rule.forMs) {
          const id = `${key}\n${measure}\n${run.runStart}`;
          const listed = this.byRun.get(id);
          if (listed) {
            // The same run read again (the host's window came again): the alert it made, not a new one.
            run.alert = listed;
            listed.ended = null;
          } else {
            run.alert = this.add({
              id, key, host, measure, rule: ruleText(measure, rule), above: rule.above, began: run.runStart,
              ended: null, peak: value, value,
            });
            events.push({ kind: 'began', alert: run.alert });
          }
        }
      } else {
        run.runStart = NaN;
        if (run.alert) {
          run.alert.ended = t;
          run.alert.value = value;
          events.push({ kind: 'ended', alert: run.alert });
          run.alert = null;
        }
      }
    }
    return events;
  }

  add(alert) {
    this.alerts.unshift(alert);
    this.byRun.set(alert.id, alert);
    if (this.alerts.length > MAX_ALERTS) {
      const oldestEnded = this.alerts.findLastIndex((a) => a.ended !== null);
      const [dropped] = this.alerts.splice(oldestEnded >= 0 ? oldestEnded : this.alerts.length - 1, 1);
      this.byRun.delete(dropped.id);
    }
    return alert;
  }

  /** The measures firing on host `key` now, with their alerts. */
  firing(key) {
    const out = [];
    for (const [measure, run] of this.state.get(key) ?? []) if (run.alert) out.push({ measure, alert: run.alert });
    return out;
  }

  /** How many alerts are firing. */
  firingCount() {
    let n = 0;
    for (const a of this.alerts) if (a.ended === null) n += 1;
    return n;
  }
}
