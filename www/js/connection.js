// The page's connections to the relay: one Replicast client (the wasm StreamAssembler and its WebSocket) per
// view, and how keys map to host names.
import init, { Replicast } from '/pkg/replicast_wasm.js';

let ready;

/**
 * A client watching `patterns`, keeping `window` items per key, aggregating `fields` (dotted JSON paths) and keeping
 * `series` (more of them) as series too, without aggregating them.
 */
export async function connect({ patterns, window, fields, series = [], token }) {
  ready ??= init();
  await ready;
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return new Replicast(`${scheme}://${location.host}/ws`, {
    patterns,
    window,
    db: 0,
    token: token ?? undefined,
    aggregate: { fields, series },
    // A reload shows the last view at once from IndexedDB and resumes the stream instead of a fresh snapshot.
    saveView: true,
  });
}

/** A Redis glob that matches exactly `key`. */
export function exactPattern(key) {
  return key.replace(/[*?[\]\\]/g, '\\$&');
}

/** What a pattern's keys all start with: `perf:` for `perf:*`. */
function literalPrefix(pattern) {
  const glob = pattern.search(/[*?[\\]/);
  return glob < 0 ? '' : pattern.slice(0, glob);
}

/** Names hosts after their keys: `perf:web-01` is `web-01` when watching `perf:*`. */
export function hostNamer(patterns) {
  const prefixes = patterns.map(literalPrefix).filter(Boolean).sort((a, b) => b.length - a.length);
  return (key) => {
    const prefix = prefixes.find((p) => key.startsWith(p) && key.length > p.length);
    return prefix ? key.slice(prefix.length) : key;
  };
}
