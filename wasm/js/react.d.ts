import type { Replicast, ReplicastOptions, ReplicastStatus } from './index.js';

/** What `useReplicast` gives a component; it re-renders whenever any of it changes. */
export interface ReplicastState {
  /** The client, to read windows with (`series`, `latest`, `window`, …); null before the first effect ran. */
  client: Replicast | null;
  status: ReplicastStatus;
  /** Whether the view is exact (see `Replicast.onSynced`). */
  synced: boolean;
  /** The keys whose windows changed in the last change. */
  keys: string[];
  /** Counts the changes seen, for memoising on. */
  version: number;
}

/** A Replicast client connected to `url` for the component's life, watching what `options` says (compared by
 * value: a new object with the same content does not reconnect). */
export function useReplicast(url: string, options: ReplicastOptions): ReplicastState;
