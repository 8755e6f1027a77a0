// One overview host's series (its times and a column per field, oldest first), kept in step with the client by
// what its per-frame read of changes hands over: at one sample a host a second the window only moves forward by a
// sample, which is written in place here (`advance`); the whole series is copied in only when it changed otherwise
// (`replace`). A window that keeps its length (a sample in, the oldest out: every second of every host at 10,000
// hosts) moves its numbers back by one in place, so that its views `times` and `values` stay as they are and
// nothing is allocated; one that grows or shrinks lives in buffers twice its length, and only its views are made
// again.

export class HostSeries {
  /** @param {number} fields how many fields (columns) the series holds */
  constructor(fields) {
    this.buffers = Array.from({ length: 1 + fields }, () => new Float64Array(0));
    this.start = 0;
    this.end = 0;
    this.view();
  }

  /** Samples held. */
  get length() {
    return this.end - this.start;
  }

  /** Holds `times` and a column of `values` per field (Float64Arrays as long as `times`). */
  replace(times, values) {
    const n = times.length;
    const capacity = Math.max(16, 2 * n);
    this.buffers = [times, ...values].map((column, i) => {
      const buffer = this.buffers[i];
      const next = buffer.length >= n && buffer.length <= 2 * capacity ? buffer : new Float64Array(capacity);
      next.set(column);
      return next;
    });
    this.start = 0;
    this.end = n;
    this.view();
  }

  /**
   * Drops the `drop` oldest samples, then appends the sample at `time` whose values are `row[at]`, `row[at + 1]`…
   * (none when `time` is undefined).
   */
  advance(drop, time, row, at) {
    if (drop === 1 && time !== undefined) {
      for (let f = 0; f < this.buffers.length; f += 1) {
        const buffer = this.buffers[f];
        buffer.copyWithin(this.start, this.start + 1, this.end);
        buffer[this.end - 1] = f === 0 ? time : row[at + f - 1];
      }
      return;
    }
    this.start = Math.min(this.end, this.start + drop);
    if (time !== undefined) {
      if (this.end === this.buffers[0].length) this.makeRoom();
      this.buffers[0][this.end] = time;
      for (let f = 1; f < this.buffers.length; f += 1) this.buffers[f][this.end] = row[at + f - 1];
      this.end += 1;
    }
    this.view();
  }

  /** Moves the samples to the start of the buffers, or into larger ones when they fill more than half. */
  makeRoom() {
    const n = this.length;
    const capacity = this.buffers[0].length;
    if (2 * n > capacity) {
      this.buffers = this.buffers.map((buffer) => {
        const next = new Float64Array(Math.max(16, 2 * capacity));
        next.set(buffer.subarray(this.start, this.end));
        return next;
      });
    } else {
      for (const buffer of this.buffers) buffer.copyWithin(0, this.start, this.end);
    }
    this.start = 0;
    this.end = n;
  }

  view() {
    this.times = this.buffers[0].subarray(this.start, this.end);
    /** @type {Float64Array[]} one per field, aligned with `times` */
    this.values = this.buffers.slice(1).map((buffer) => buffer.subarray(this.start, this.end));
  }
}
