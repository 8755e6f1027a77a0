// Notes people leave on hosts ("deploy at 14:02", "investigating — Ana"), kept in one Redis stream,
// `annotations:perf` by default (the page's ?notes=): outside `perf:*`, so the overview never takes it for a host.
// A note is sent through the relay (`client.send`), which appends it with XADD and adds who sent it and when; every
// open page, the sender's too, sees it arrive through the replication stream, like any sample. The stream has a
// client of its own, so the overview's client and its aggregates see only hosts.
import { connect, exactPattern } from './connection.js';

/** The default key of the notes stream. */
export const NOTES_KEY = 'annotations:perf';
/** Newest notes kept. */
const WINDOW = 500;

/** @typedef {{id: string, t: number, host: string, text: string, by: string, kind: 'note' | 'ack'}} Note */

export class Annotations {
  /** Connects to the notes stream `key`. */
  static async start({ key = NOTES_KEY, token }) {
    const client = await connect({ patterns: [exactPattern(key)], window: WINDOW, fields: [], token });
    return new Annotations(client, key);
  }

  constructor(client, key) {
    this.client = client;
    this.key = key;
    /** @type {Map<string, Note[]>} host → its notes, oldest first */
    this.byHost = new Map();
    this.listeners = new Set();
    client.onChange((change) => {
      if (change.keys.includes(key)) this.read();
    });
  }

  /** Calls `listener(hosts)` with the hosts whose notes changed. */
  onChange(listener) {
    this.listeners.add(listener);
  }

  /** The notes of `host`, oldest first. */
  notesOf(host) {
    return this.byHost.get(host) ?? [];
  }

  /** The newest note of `host`, if any. */
  latest(host) {
    return this.notesOf(host).at(-1);
  }

  /**
   * Appends a note (`kind` 'note', or 'ack' for "someone is on it") through the relay. Resolves with the entry's
   * id; rejects with the relay's reason (e.g. the relay was started without `--writable annotations:perf`).
   */
  add({ host, text, by = '', kind = 'note' }) {
    const fields = { host, text, kind };
    if (by) fields.by = by;
    return this.client.send(this.key, fields);
  }

  /** Re-reads the stream's window (it changed: a note came, or a snapshot) and tells whose notes changed. */
  read() {
    const items = this.client.window(this.key)?.items ?? [];
    const byHost = new Map();
    // Newest first in the window: walk it backwards for oldest first.
    for (let i = items.length - 1; i >= 0; i -= 1) {
      const note = noteOf(items[i]);
      if (!note) continue;
      if (!byHost.has(note.host)) byHost.set(note.host, []);
      byHost.get(note.host).push(note);
    }
    const changed = [];
    for (const host of new Set([...byHost.keys(), ...this.byHost.keys()])) {
      if (byHost.get(host)?.at(-1)?.id !== this.byHost.get(host)?.at(-1)?.id) changed.push(host);
    }
    this.byHost = byHost;
    if (changed.length) for (const listener of this.listeners) listener(changed);
  }
}

/** A stream entry as a note, or null if it is not one. */
export function noteOf(item) {
  if (!item?.fields) return null;
  const f = Object.fromEntries(item.fields);
  if (!f.host || !f.text) return null;
  // The relay's clock when it appended; the entry id's milliseconds otherwise.
  const t = Number(f._time) || Number(String(item.id).split('-')[0]);
  return { id: item.id, t, host: f.host, text: f.text, by: f.by ?? '', kind: f.kind === 'ack' ? 'ack' : 'note' };
}

/** A note as one line: "✓ investigating — Ana". */
export function noteLine(note) {
  const mark = note.kind === 'ack' ? '✓' : '⚑';
  return `${mark} ${note.text}${note.by ? ` — ${note.by}` : ''}`;
}
