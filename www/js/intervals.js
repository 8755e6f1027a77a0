// Time as the samples tell it. Collectors write at whatever interval they were given (`collect --interval 1m`),
// so the page never assumes one sample a second: it observes each host's interval from the times of its newest
// samples, and derives from it how many samples a window of some duration needs and when a host that has stopped
// writing counts as silent.

/** Gaps between the newest samples that the interval is the median of. */
const OBSERVED_GAPS = 16;
/** The interval assumed before a host has two samples. */
export const DEFAULT_INTERVAL_MS = 1000;
/** A host is silent after this many of its intervals without a sample… */
export const SILENT_INTERVALS = 5;
/** …and never sooner than this, so a fast collector's jitter does not make it flicker. */
export const SILENT_FLOOR_MS = 2000;

/**
 * A host's sample interval in ms: the median gap between its newest samples (`times`, oldest first), so a missed
 * sample or a burst does not change it. NaN with fewer than two samples.
 */
export function observedInterval(times) {
  const n = times.length;
  if (n < 2) return NaN;
  const from = Math.max(1, n - OBSERVED_GAPS);
  const gaps = [];
  for (let i = from; i < n; i += 1) {
    const gap = times[i] - times[i - 1];
    if (gap > 0) gaps.push(gap);
  }
  if (!gaps.length) return NaN;
  gaps.sort((a, b) => a - b);
  return gaps[(gaps.length - 1) >> 1];
}

/** How old a host's newest sample may be before the host is silent, for its interval (ms). */
export function silentAfter(intervalMs) {
  const interval = intervalMs > 0 ? intervalMs : DEFAULT_INTERVAL_MS;
  return Math.max(SILENT_FLOOR_MS, SILENT_INTERVALS * interval);
}

/**
 * How many samples cover `durationMs` at `intervalMs` (one more than the intervals in it, so the oldest sample is
 * at the window's left edge), between 2 and `cap`.
 */
export function samplesFor(durationMs, intervalMs, cap = Infinity) {
  const interval = intervalMs > 0 ? intervalMs : DEFAULT_INTERVAL_MS;
  return Math.max(2, Math.min(cap, Math.ceil(durationMs / interval) + 1));
}

/** The median of some intervals (NaN ones left out): the fleet's typical interval. */
export function medianInterval(intervals) {
  const known = intervals.filter((v) => v > 0).sort((a, b) => a - b);
  return known.length ? known[(known.length - 1) >> 1] : NaN;
}
