// The hosts the page knows, one per watched key, with what the views need of each at a glance: the newest
// sample's time and numbers, its sample interval, its role, when the page first saw it, and whether it is live, new
// or silent (its newest sample older than a few of its intervals: see intervals.js); and the orders and groups
// the overview shows them in.
import { silentAfter, medianInterval } from './intervals.js';

/** A host that appears after the page has loaded is marked new for this long. */
export const NEW_MS = 10_000;
const SNAPSHOT_GRACE_MS = 1_000;

/** @typedef {{key: string, name: string, seen: number, fresh: boolean, t: number, interval: number, role: string,
 *             cpu: number, memUsed: number, memTotal: number, diskRead: number, diskWrite: number, load1: number,
 *             state: string}} Host */

export class HostBook {
  constructor(nameOf) {
    this.nameOf = nameOf;
    /** @type {Map<string, Host>} */
    this.byKey = new Map();
    /** Set by `loaded()`: hosts seen after it are new. */
    this.loadedAt = null;
    /** The median of the hosts' intervals: what a host with one sample so far is assumed to have. */
    this.fleetInterval = NaN;
  }

  /** Hosts sorted by name. */
  list() {
    return [...this.byKey.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  get(key) {
    return this.byKey.get(key);
  }

  /**
   * Makes the book hold exactly `keys` (`keepMissing`: only add, while a new snapshot is on its way and the
   * client's keys are not all back yet). Returns the keys added and removed, or null if none were.
   */
  syncKeys(keys, now, { keepMissing = false } = {}) {
    const added = [];
    const removed = [];
    const present = new Set(keys);
    for (const key of keys) {
      if (this.byKey.has(key)) continue;
      const name = this.nameOf(key);
      this.byKey.set(key, {
        key,
        name,
        seen: now,
        // Keys of the first snapshot can take a few messages to arrive; they are not new.
        fresh: this.loadedAt !== null && now - this.loadedAt > SNAPSHOT_GRACE_MS,
        t: NaN,
        interval: NaN,
        role: roleOf(name),
        cpu: NaN,
        memUsed: NaN,
        memTotal: NaN,
        diskRead: NaN,
        diskWrite: NaN,
        load1: NaN,
        state: 'waiting',
      });
      added.push(key);
    }
    if (!keepMissing) {
      for (const key of this.byKey.keys()) {
        if (!present.has(key)) {
          this.byKey.delete(key);
          removed.push(key);
        }
      }
    }
    return added.length || removed.length ? { added, removed } : null;
  }

  /** The first snapshot is in: hosts that appear from now on are new. */
  loaded(now) {
    this.loadedAt ??= now;
  }

  /** The fleet's interval from every host's (once a second is plenty: intervals hardly move). */
  refreshInterval() {
    this.fleetInterval = medianInterval([...this.byKey.values()].map((h) => h.interval));
  }

  /** Recomputes every host's state; returns the hosts whose state changed. */
  refreshStates(now) {
    const changed = [];
    for (const host of this.byKey.values()) {
      const state = stateOf(host, now, this.fleetInterval);
      if (state !== host.state) {
        host.state = state;
        changed.push(host);
      }
    }
    return changed;
  }
}

/** A host's state at `now`; `fleetInterval` stands in for its own interval until it has one. */
export function stateOf(host, now, fleetInterval = NaN) {
  if (Number.isNaN(host.t)) return 'waiting';
  if (now - host.t > silentAfter(host.interval > 0 ? host.interval : fleetInterval)) return 'silent';
  if (host.fresh && now - host.seen < NEW_MS) return 'new';
  return 'live';
}

/** Memory in use, in percent of the total. */
export function memPercent(host) {
  return host.memTotal > 0 ? (100 * host.memUsed) / host.memTotal : NaN;
}

/** A host's role: its sample's `role` field when it has one, else its name's leading letters (`web-01` → `web`). */
export function roleOf(name, sample) {
  if (typeof sample?.role === 'string' && sample.role) return sample.role;
  return /^[A-Za-z]+/.exec(name)?.[0].toLowerCase() ?? 'other';
}

const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
/** Busiest first by a measure; hosts without it last, then by name, so the order is total and stable. */
const busiest = (measure) => (a, b) => {
  const x = measure(a);
  const y = measure(b);
  const nx = Number.isNaN(x);
  const ny = Number.isNaN(y);
  if (nx !== ny) return nx ? 1 : -1;
  return (nx || x === y) ? byName(a, b) : y - x;
};

/** How tiles can be ordered (the `sort=` of the URL). */
export const ORDERS = {
  name: byName,
  cpu: busiest((h) => h.cpu),
  mem: busiest(memPercent),
  load: busiest((h) => h.load1),
};

/**
 * `hosts` in groups (`group`: '' for one group of all, 'role' by role, groups by name), each sorted by `sort`:
 * `[{name, hosts}]`.
 */
export function arrange(hosts, { sort, group }) {
  const order = ORDERS[sort] ?? byName;
  if (group !== 'role') return [{ name: '', hosts: [...hosts].sort(order) }];
  const groups = new Map();
  for (const host of hosts) {
    if (!groups.has(host.role)) groups.set(host.role, []);
    groups.get(host.role).push(host);
  }
  return [...groups.keys()].sort().map((name) => ({ name, hosts: groups.get(name).sort(order) }));
}
