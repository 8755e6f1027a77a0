/** What a Replicast client watches, and how. */
export interface ReplicastOptions {
  /** Redis glob patterns of keys to watch. */
  patterns?: string[];
  /** Exact keys to watch. */
  keys?: string[];
  /** The database (default 0). */
  db?: number;
  /** Newest items kept per key (default 100, at most 100,000). */
  window?: number;
  /** For a relay started with --token (the shared token), or --jwt-secret / --jwt-keys (a signed per-user token).
   *  A function is called for a token on every connect and reconnect, and again when the relay says the session's
   *  token expires soon: what it returns (or its Promise resolves to) is sent over the open socket, so the session
   *  and its windows go on past the first token's `exp`. A fixed string cannot be refreshed: the session closes at
   *  its `exp` (code 4001) and reconnects with the same, expired, token. */
  token?: string | (() => string | Promise<string>);
  /** Other relays' `/ws` URLs serving the same data: when the connection to the relay in use fails or drops, the
   *  next attempt goes to the next URL, round robin over [url, ...alternates], and resumes there where the windows
   *  are. */
  alternates?: string[];
  /** Silence after which an open socket counts as dead (default 30,000 ms). On a quiet stream the relay has
   *  something to send only when Redis pings its replicas (`repl-ping-replica-period`, 10 s by default): keep it
   *  above that. */
  idleTimeoutMs?: number;
  /** Keep the windows and stream positions in IndexedDB, so that a reloaded page shows its last view at once and
   *  resumes the relay's stream instead of waiting for a snapshot (default off: it writes what Redis holds to the
   *  browser's storage). One view per relay URL, subscription and token identity (a signed token's `sub` and
   *  `replicast` claims). Saved every `intervalMs` (default 30,000, at least 1,000), on `pagehide`, when the page is
   *  hidden, on `setWindow` and `close`, only while live and changed; restored before the first connect and after
   *  `setWindow`. `maxBytes` (default 64 MiB) bounds every saved view of the origin together: the oldest are evicted
   *  past it, and a view larger than it alone is not saved. A record that is corrupted or cannot be read is dropped
   *  with a console warning, and the client joins with a snapshot. Without IndexedDB (Node.js) it does nothing. */
  saveView?: boolean | { maxBytes?: number; intervalMs?: number };
  /** Incremental aggregates over numeric JSON fields (dotted paths such as `cpu.total`, `load.0`). */
  aggregate?: {
    fields?: string[];
    /** Counters (e.g. bytes sent so far): aggregated with a rate per second. */
    counters?: string[];
    /** A JSON field with each item's time in Unix ms, for items without one (sorted sets use the score). */
    time?: string;
    /** Rolling buckets (default [1000, 10000, 60000]). */
    bucketsMs?: number[];
    /** More numeric fields kept as series beside the aggregated ones, without statistics: `times`, `series`,
     *  `newestOf` and `changes` read them as copies instead of reading each item. */
    series?: string[];
  };
}

/** Statistics of one numeric field. Values are null when there is nothing to aggregate. */
export interface ReplicastStats {
  count: number;
  min: number | null;
  max: number | null;
  mean: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  /** Per second, for counters. */
  rate: number | null;
}

/** A field's statistics over the window, its newest value, and over the rolling buckets. */
export interface ReplicastFieldStats extends ReplicastStats {
  last: { value: number; t: number } | null;
  buckets: (ReplicastStats & { ms: number })[];
}

/** Bad input seen so far, by kind; the assembler skipped it and kept the rest of its state. */
export interface ReplicastDiagnostics {
  badMessages: number;
  badSegments: number;
  overlaps: number;
  badSnapshots: number;
  unknownCommands: number;
  badArguments: number;
  wrongType: number;
  longTransactions: number;
  topupsRequested: number;
  notices: number;
  notJson: number;
  notNumeric: number;
  missingFields: number;
  lastError: string | null;
}

/** A window as a plain object, items newest first. */
export interface ReplicastWindow {
  type: "zset" | "stream" | "list" | "hash" | "string";
  /** Whether the window holds all Redis holds for the key. */
  complete: boolean;
  /** Whether a top-up was asked for and has not arrived. */
  stale: boolean;
  expiresAt: number | null;
  items: (
    | { member: string; score: number }
    | { id: string; fields: [string, string][] }
    | { value: string; previous?: string[] }
    | { field: string; value: string; previous: string[] }
  )[];
}

/** Where a session stands. */
export type ReplicastStatus = "connecting" | "live" | "resyncing" | "offline";

/** Where one shard's stream stands (a relay following one Redis has only shard 0). */
export interface ReplicastPosition {
  shard: number;
  /** The replication ID the shard's stream follows. */
  epoch: string;
  /** Replication offset applied so far (exact below 2^53). */
  offset: number;
}

/** What changed since the previous animation frame. */
export interface ReplicastChange {
  /** Keys whose windows changed (appeared, moved or went away). */
  keys: string[];
  status: ReplicastStatus;
  /** Replication offset applied so far (shard 0's). */
  offset: number;
  /** Every shard whose stream said hello. */
  positions: ReplicastPosition[];
  /** The `/ws` URL in use (or to be tried next, while offline). */
  relay: string;
}

/** What `verify()` found: the relay's digest of this page's windows, from its own state, and the page's own digest
 *  of its windows at the same offset of the stream. */
export interface ReplicastVerification {
  /** Whether the page's windows equal those the relay's state holds for this session. */
  equal: boolean;
  /** The replication offset both digests are at (exact below 2^53). */
  offset: number;
  /** The relay's digest (16 hex digits) and the keys and items it covers. */
  relay: string;
  relayKeys: number;
  relayItems: number;
  /** The page's digest and the keys and items it covers. */
  page: string;
  pageKeys: number;
  pageItems: number;
}

/** What went wrong, for a page to branch on:
 *  - `invalidOptions`: the constructor's options (unknown field, nothing watched, a bad aggregate);
 *  - `badMessage`: a relay message that could not be decoded (`Assembler.push`);
 *  - `resync`: the relay dropped the session's stream; join again with a snapshot (`Assembler.push`);
 *  - `invalidEvent`: `send`'s fields are not an object of strings, numbers or booleans;
 *  - `tooLarge`: the event is larger than the relay reads in one message;
 *  - `notConnected`: `send` or `verify` while the socket is not open;
 *  - `refused`: the relay refused the event (the key is not writable, a limit, a read-only Redis), or has no digest
 *    to give `verify` (no state, a window deeper than its state, a watched key it does not hold);
 *  - `disconnected`: the socket closed before the relay answered;
 *  - `closed`: the client was closed before the relay answered;
 *  - `badSavedView`: bytes given to `Assembler.restoreView` that are not a whole, intact saved view of its
 *    subscription. */
export type ReplicastErrorCode =
  | "invalidOptions"
  | "badMessage"
  | "resync"
  | "invalidEvent"
  | "tooLarge"
  | "notConnected"
  | "refused"
  | "disconnected"
  | "closed"
  | "badSavedView";

/** An error the client throws or rejects with. */
export interface ReplicastError extends Error {
  name: "ReplicastError";
  code: ReplicastErrorCode;
}
