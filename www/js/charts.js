// Drawing primitives shared by the views: sparkline paths (one <path> per series, built as a string without d3 so
// that 200 tiles cost little) and LineChart, a d3 time-series chart whose elements are created once and updated
// in place.
import d3 from './d3.js';

/** Width and height of a sparkline's viewBox; the SVG stretches it (preserveAspectRatio="none"). */
export const SPARK_W = 120;
export const SPARK_H = 28;

/**
 * The `d` of a sparkline: `values` against `times`, x over [t0, t1], y over [0, yMax] (clamped), in the
 * SPARK_W × SPARK_H box. NaN values break the line.
 */
export function sparkPath(times, values, t0, t1, yMax) {
  const n = Math.min(times.length, values.length);
  const kx = SPARK_W / (t1 - t0 || 1);
  const ky = (SPARK_H - 2) / (yMax || 1);
  let d = '';
  let pen = 'M';
  for (let i = 0; i < n; i += 1) {
    const t = times[i];
    const v = values[i];
    if (t < t0 || Number.isNaN(v)) {
      pen = 'M';
      continue;
    }
    const x = Math.round((t - t0) * kx * 10) / 10;
    const y = Math.round((SPARK_H - 1 - Math.min(Math.max(v, 0), yMax) * ky) * 10) / 10;
    d += `${pen}${x} ${y}`;
    pen = 'L';
  }
  return d;
}

/** The newest number of a series (skipping NaN), or NaN. */
export function last(values) {
  for (let i = values.length - 1; i >= 0; i -= 1) if (!Number.isNaN(values[i])) return values[i];
  return NaN;
}

/** The largest number of some series, ignoring NaN. */
export function maxOf(seriesList) {
  let m = 0;
  for (const s of seriesList) for (const v of s) if (v > m) m = v;
  return m;
}

const MARGIN = { top: 6, right: 8, bottom: 20, left: 56 };

/**
 * A line chart of a few series over a time window. Fixed height (CSS), width follows its container. The y domain
 * is `[0, yMax]` when given, else it grows with the data (rounded up to a nice number) and shrinks only when the
 * data falls below a third of it, so axes do not jump with every sample.
 */
export class LineChart {
  /**
   * @param {HTMLElement} parent
   * @param {{title: string, format: (v: number) => string, series: {label: string, cls: string}[],
   *          tick?: (v: number) => string, yMax?: number, floor?: number, extraCls?: string,
   *          extraLabel?: (n: number) => string, binary?: boolean}}
   *          options — `binary`: y ticks at powers of two (bytes: 4 GiB, 8 GiB…);
   *          `format` writes the legend's values and `tick` the axis (default: `format`); series beyond
   *          `series` (e.g. CPU cores) are drawn with the class `extraCls` and share one legend entry,
   *          `extraLabel(count)`.
   */
  constructor(parent, options) {
    this.options = options;
    this.format = options.format;
    this.tick = options.tick ?? options.format;
    this.yTop = options.yMax ?? options.floor ?? 1;
    const figure = d3.select(parent).append('figure').attr('class', 'chart');
    const head = figure.append('figcaption');
    head.append('h3').text(options.title);
    this.legend = head.append('ul').attr('class', 'legend');
    this.svg = figure.append('svg').attr('class', 'plot');
    this.gridY = this.svg.append('g').attr('class', 'grid');
    this.axisX = this.svg.append('g').attr('class', 'axis x');
    this.axisY = this.svg.append('g').attr('class', 'axis y');
    this.lines = this.svg.append('g').attr('class', 'lines');
    this.markLayer = this.svg.append('g').attr('class', 'marks');
    /** Vertical marks at times: the host's notes. */
    this.marks = [];
    this.timeTick = d3.timeFormat('%H:%M:%S');
    this.x = d3.scaleTime();
    this.y = d3.scaleLinear();
    this.width = 0;
    this.height = 0;
    this.data = null;
    this.resizer = new ResizeObserver(([entry]) => {
      const { width, height } = entry.contentRect;
      if (Math.round(width) === this.width && Math.round(height) === this.height) return;
      this.width = Math.round(width);
      this.height = Math.round(height);
      if (this.data) this.draw();
    });
    this.resizer.observe(this.svg.node());
  }

  /** New data: `values[i]` is series i against `times`; the x axis spans [t0, t1]. Draws at once. */
  update(times, values, t0, t1) {
    this.data = { times, values, t0, t1 };
    this.draw();
  }

  /** Marks these times with vertical lines (`{t, kind, label}`), drawn with the data. */
  setMarks(marks) {
    this.marks = marks;
    if (this.data) this.draw();
  }

  /** Empties the chart (a new host). */
  clear() {
    this.data = null;
    this.lines.selectAll('path').attr('d', null);
    this.markLayer.selectAll('line').remove();
    this.legend.selectAll('li.series .value').text('–');
  }

  draw() {
    const { times, values, t0, t1 } = this.data;
    const { options, width, height } = this;
    if (!width || !height) return;
    if (options.yMax === undefined) {
      const top = Math.max(maxOf(values), options.floor ?? 0);
      if (top > this.yTop || top < this.yTop / 3) this.yTop = niceCeil(top * 1.15);
    } else {
      this.yTop = options.yMax;
    }
    this.x.domain([t0, t1]).range([MARGIN.left, width - MARGIN.right]);
    this.y.domain([0, this.yTop]).range([height - MARGIN.bottom, MARGIN.top]);
    const ticksY = Math.max(2, Math.floor(height / 40));
    const tickValues = options.binary ? binaryTicks(this.yTop, ticksY) : null;
    this.axisX
      .attr('transform', `translate(0,${height - MARGIN.bottom})`)
      .call(d3.axisBottom(this.x).ticks(Math.max(2, Math.floor(width / 110))).tickFormat(this.timeTick).tickSizeOuter(0));
    this.axisY
      .attr('transform', `translate(${MARGIN.left},0)`)
      .call(d3.axisLeft(this.y).ticks(ticksY).tickValues(tickValues).tickFormat(this.tick).tickSizeOuter(0));
    this.gridY
      .attr('transform', `translate(${MARGIN.left},0)`)
      .call(d3.axisLeft(this.y).ticks(ticksY).tickValues(tickValues).tickSize(-(width - MARGIN.left - MARGIN.right))
        .tickFormat(''));

    const { x, y } = this;
    const line = d3.line()
      .defined((v, i) => !Number.isNaN(v) && times[i] >= t0)
      .x((_, i) => x(times[i]))
      .y((v) => y(Math.min(v, this.yTop)));
    this.lines.selectAll('path')
      .data(values)
      .join('path')
      .attr('class', (_, i) => options.series[i]?.cls ?? options.extraCls ?? '')
      .attr('d', (v) => line(v));

    // A note newer than the newest sample stands at the right edge ("now") until samples catch up with it.
    const right = width - MARGIN.right;
    this.markLayer.selectAll('line')
      .data(this.marks.filter((m) => m.t >= t0), (m) => m.id)
      .join((enter) => enter.append('line').call((line) => line.append('title')))
      .attr('class', (m) => m.kind)
      .attr('x1', (m) => Math.min(x(m.t), right))
      .attr('x2', (m) => Math.min(x(m.t), right))
      .attr('y1', MARGIN.top)
      .attr('y2', height - MARGIN.bottom)
      .select('title')
      .text((m) => m.label);

    const extra = values.length - options.series.length;
    this.legend.selectAll('li.extra')
      .data(extra > 0 && options.extraLabel ? [extra] : [])
      .join((enter) => {
        const li = enter.append('li').attr('class', 'extra');
        li.append('span').attr('class', `swatch ${options.extraCls}`);
        li.append('span').attr('class', 'label');
        return li;
      })
      .select('.label')
      .text((n) => options.extraLabel(n));
    this.legend.selectAll('li.series')
      .data(options.series)
      .join((enter) => {
        const li = enter.insert('li', 'li.extra').attr('class', 'series');
        li.append('span').attr('class', (s) => `swatch ${s.cls}`);
        li.append('span').attr('class', 'label').text((s) => s.label);
        li.append('span').attr('class', 'value');
        return li;
      })
      .select('.value')
      .text((_, i) => this.format(last(values[i] ?? [])));
  }

  destroy() {
    this.resizer.disconnect();
  }
}

/** Ticks from 0 to `top` at a power-of-two step, at most `count` + 1 of them. */
export function binaryTicks(top, count) {
  let step = 2 ** Math.ceil(Math.log2(top / count || 1));
  if (!(step > 0)) step = 1;
  const ticks = [];
  for (let v = 0; v <= top; v += step) ticks.push(v);
  return ticks;
}

/** 1, 2, 2.5, 5 × 10^k at or above v. */
export function niceCeil(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
