// Frame work, measured: every piece of drawing runs inside FrameMeter.measure, and the time spent in one animation
// frame (several callbacks of the same frame add up) becomes one entry of `frameTimes`, the newest last.

/** How many frames of history are kept. */
export const KEEP_FRAMES = 600;

export class FrameMeter {
  constructor() {
    /** Milliseconds of work per frame that did any, oldest first. */
    this.frameTimes = [];
    this.frame = NaN;
    this.reached = new Set();
  }

  measure(work) {
    const start = performance.now();
    try {
      return work();
    } finally {
      const spent = performance.now() - start;
      // Constant for every callback of one frame.
      const frame = document.timeline.currentTime;
      if (frame === this.frame) {
        this.frameTimes[this.frameTimes.length - 1] += spent;
      } else {
        this.frame = frame;
        this.frameTimes.push(spent);
        if (this.frameTimes.length > KEEP_FRAMES) this.frameTimes.shift();
      }
    }
  }

  /**
   * Marks the first time the page reaches `name` (a `replicast:` performance mark, its time from the page's
   * navigation), for the benchmarks that say how long a load takes and where it goes.
   */
  milestone(name) {
    if (this.reached.has(name)) return;
    this.reached.add(name);
    performance.mark(`replicast:${name}`);
  }

  /** Median, p95 and max of the kept frame times, in ms. */
  summary() {
    const sorted = [...this.frameTimes].sort((a, b) => a - b);
    const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
    return { frames: sorted.length, median: at(0.5), p95: at(0.95), max: sorted[sorted.length - 1] };
  }
}

/** Runs `draw` in the next animation frame, once however often it is asked for before then. */
export function frameScheduler(draw) {
  let pending = 0;
  return () => {
    if (!pending) {
      pending = requestAnimationFrame(() => {
        pending = 0;
        draw();
      });
    }
  };
}
