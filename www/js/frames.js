// Frame work, measured: every piece of drawing runs inside FrameMeter.measure, and the time spent in one animation
// frame (several callbacks of the same frame add up) becomes one entry of `frameTimes`, the newest last. The reads of
// the client within it (each inside FrameMeter.reading) are counted apart as well, in `readTimes`: what crossing
// into wasm costs a frame, apart from drawing.

/** How many frames of history are kept. */
export const KEEP_FRAMES = 600;

export class FrameMeter {
  constructor() {
    /** Milliseconds of work per frame that did any, oldest first. */
    this.frameTimes = [];
    /** Milliseconds of those spent reading the client, per frame that read it, oldest first. */
    this.readTimes = [];
    this.frame = NaN;
    this.readFrame = NaN;
    this.reached = new Set();
  }

  measure(work) {
    const start = performance.now();
    try {
      return work();
    } finally {
      this.frame = count(this.frameTimes, this.frame, performance.now() - start);
    }
  }

  /** Runs `read`, a read of the client inside `measure`, its time counted in `readTimes` too. */
  reading(read) {
    const start = performance.now();
    try {
      return read();
    } finally {
      this.readFrame = count(this.readTimes, this.readFrame, performance.now() - start);
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

/**
 * Adds `spent` to the newest entry of `times` if it is this animation frame's (`last`), else as a new entry;
 * returns this frame.
 */
function count(times, last, spent) {
  // Constant for every callback of one frame.
  const frame = document.timeline.currentTime;
  if (frame === last) {
    times[times.length - 1] += spent;
  } else {
    times.push(spent);
    if (times.length > KEEP_FRAMES) times.shift();
  }
  return frame;
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
