// The hosts the page knows, one per watched key, with what the views need of each at a glance: the newest
// sample's time and numbers, when the page first saw it, and whether it is live, new or silent.

/** A host whose newest sample is older than this is silent. */
export const SILENT_MS = 5_000;
/** A host that appears after the page has loaded is marked new for this long. */
export const NEW_MS = 10_000;
const SNAPSHOT_GRACE_MS = 1_000;

/** @typedef {{key: string, name: string, seen: number, fresh: boolean, t: number, cpu: number, memUsed: number,
 *             memTotal: number, load1: number, state: string}} Host */

export class HostBook {
  constructor(nameOf) {
    this.nameOf = nameOf;
    /** @type {Map<string, Host>} */
    this.byKey = new Map();
    /** Set by `loaded()`: hosts seen after it are new. */
    this.loadedAt = null;
  }

  /** Hosts sorted by name. */
  list() {
    return [...this.byKey.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  get(key) {
    return this.byKey.get(key);
  }

  /** Makes the book hold exactly `keys`; returns whether anything was added or removed. */
  syncKeys(keys, now) {
    let changed = false;
    const present = new Set(keys);
    for (const key of keys) {
      if (this.byKey.has(key)) continue;
      this.byKey.set(key, {
        key,
        name: this.nameOf(key),
        seen: now,
        // Keys of the first snapshot can take a few messages to arrive; they are not new.
        fresh: this.loadedAt !== null && now - this.loadedAt > SNAPSHOT_GRACE_MS,
        t: NaN,
        cpu: NaN,
        memUsed: NaN,
        memTotal: NaN,
        load1: NaN,
        state: 'waiting',
      });
      changed = true;
    }
    for (const key of this.byKey.keys()) {
      if (!present.has(key)) {
        this.byKey.delete(key);
        changed = true;
      }
    }
    return changed;
  }

  /** The first snapshot is in: hosts that appear from now on are new. */
  loaded(now) {
    this.loadedAt ??= now;
  }

  /** Recomputes every host's state; returns the hosts whose state changed. */
  refreshStates(now) {
    const changed = [];
    for (const host of this.byKey.values()) {
      const state = stateOf(host, now);
      if (state !== host.state) {
        host.state = state;
        changed.push(host);
      }
    }
    return changed;
  }
}

export function stateOf(host, now) {
  if (Number.isNaN(host.t)) return 'waiting';
  if (now - host.t > SILENT_MS) return 'silent';
  if (host.fresh && now - host.seen < NEW_MS) return 'new';
  return 'live';
}

/** Memory in use, in percent of the total. */
export function memPercent(host) {
  return host.memTotal > 0 ? (100 * host.memUsed) / host.memTotal : NaN;
}
