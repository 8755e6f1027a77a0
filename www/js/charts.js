// Drawing primitives shared by the views: sparkline paths (one <path> per series, built as a string without d3 so
// that 200 tiles cost little) and LineChart, a d3 time-series chart whose elements are created once and updated in
// place. A LineChart names every line in its legend, shows a crosshair with the time and every line's value where
// the pointer, a finger or the keyboard points (chart-input.js), draws history from the sink before the live window,
// and has a table of its recent values as its text alternative.
import d3 from './d3.js';
import * as fmt from './format.js';
import { DataTable } from './data-table.js';
import { bindChartInput } from './chart-input.js';

/** Width and height of a sparkline's viewBox; the SVG stretches it (preserveAspectRatio="none"). */
export const SPARK_W = 120;
export const SPARK_H = 28;
/** Rows in a chart's table of recent values. */
export const TABLE_ROWS = 10;

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

/** The largest number of some series between indexes `from` and `to` (inclusive), ignoring NaN. */
export function maxOf(seriesList, from = 0, to = Infinity) {
  let m = 0;
  for (const s of seriesList) {
    const end = Math.min(to, s.length - 1);
    for (let i = from; i <= end; i += 1) if (s[i] > m) m = s[i];
  }
  return m;
}

/** The index of the time in `times` (ascending) nearest to `t`, or -1 for no times. */
export function nearestIndex(times, t) {
  const n = times.length;
  if (!n) return -1;
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (times[mid] < t) lo = mid + 1;
    else hi = mid;
  }
  return lo > 0 && t - times[lo - 1] <= times[lo] - t ? lo - 1 : lo;
}

/** The first index whose time is at least `t` (`times.length` if none). */
export function firstAtOrAfter(times, t) {
  let lo = 0;
  let hi = times.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (times[mid] < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The `d` of a line through `values[i0..=i1]` against `times`, scaled by `x` and `y`, clamped at `yTop`. NaN breaks
 * the line. With more than two points per pixel of `width`, each pixel column draws its minimum and maximum
 * instead of every point, which looks the same and keeps an hour of 1 s samples as cheap as two minutes.
 */
export function linePath(times, values, i0, i1, x, y, yTop, width) {
  let d = '';
  let pen = 'M';
  const fmtPt = (px, v) => `${pen}${Math.round(px * 10) / 10},${Math.round(y(Math.min(v, yTop)) * 10) / 10}`;
  if (i1 - i0 + 1 <= 2 * width) {
    for (let i = i0; i <= i1; i += 1) {
      const v = values[i];
      if (Number.isNaN(v) || v === undefined) {
        pen = 'M';
        continue;
      }
      d += fmtPt(x(times[i]), v);
      pen = 'L';
    }
    return d;
  }
  let column = NaN;
  let lo = Infinity;
  let hi = -Infinity;
  const flush = () => {
    if (lo <= hi) {
      d += fmtPt(column, lo);
      pen = 'L';
      if (hi !== lo) d += fmtPt(column, hi);
    } else if (!Number.isNaN(column)) {
      pen = 'M';
    }
  };
  for (let i = i0; i <= i1; i += 1) {
    const px = Math.round(x(times[i]));
    if (px !== column) {
      flush();
      column = px;
      lo = Infinity;
      hi = -Infinity;
    }
    const v = values[i];
    if (!Number.isNaN(v) && v !== undefined) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  flush();
  return d;
}

/** A colour for extra series (CPU cores), distinct for up to ten and spread over the spectrum beyond. */
export function seriesColor(i, n) {
  return n <= 10 ? d3.schemeTableau10[i % 10] : d3.interpolateTurbo(0.05 + (0.9 * i) / Math.max(1, n - 1));
}

const MARGIN = { top: 6, right: 8, bottom: 20, left: 56 };

/**
 * A line chart of a few series over a time range. Fixed height (CSS), width follows its container. The y domain is
 * `[0, yMax]` when given, else it grows with the data (rounded up to a nice number) and shrinks only when the data
 * falls below a third of it, so axes do not jump with every sample.
 */
export class LineChart {
  /**
   * @param {HTMLElement} parent
   * @param {{title: string, format: (v: number) => string, series: {label: string, cls?: string}[],
   *          tick?: (v: number) => string, yMax?: number, floor?: number, binary?: boolean,
   *          input?: import('./chart-input.js').ChartInput}} options — `binary`: y ticks at powers of two (4 GiB,
   *          8 GiB…); `format` writes values and `tick` the axis (default: `format`); `input`: where hovering,
   *          dragging and keys on the chart go (the host detail links its charts through it).
   */
  constructor(parent, options) {
    this.options = options;
    this.format = options.format;
    this.tick = options.tick ?? options.format;
    this.yTop = options.yMax ?? options.floor ?? 1;
    this.series = options.series;
    const figure = d3.select(parent).append('figure').attr('class', 'chart');
    this.figure = figure;
    const head = figure.append('figcaption');
    head.append('h3').text(options.title);
    this.legend = head.append('ul').attr('class', 'legend').attr('aria-label', `${options.title}: lines`);
    const wrap = figure.append('div').attr('class', 'plot-wrap');
    this.svg = wrap.append('svg').attr('class', 'plot').attr('tabindex', 0).attr('role', 'img')
      .attr('aria-label', `${options.title} over time. Arrow keys move through the samples, plus and minus zoom, `
        + 'shift and an arrow pan; the table below lists the recent values.');
    this.gridY = this.svg.append('g').attr('class', 'grid');
    this.axisX = this.svg.append('g').attr('class', 'axis x');
    this.axisY = this.svg.append('g').attr('class', 'axis y');
    this.bands = this.svg.append('g').attr('class', 'bands');
    this.lines = this.svg.append('g').attr('class', 'lines');
    this.markLayer = this.svg.append('g').attr('class', 'marks');
    this.cross = this.svg.append('g').attr('class', 'crosshair').attr('display', 'none');
    this.crossLine = this.cross.append('line');
    this.crossDots = this.cross.append('g');
    this.brush = this.svg.append('rect').attr('class', 'brush-area').attr('display', 'none');
    this.tooltip = wrap.append('div').attr('class', 'tooltip').attr('hidden', true);
    this.table = new DataTable(figure.node(), { caption: `${options.title}, newest first`, fill: () => this.fillTable() });
    /** Vertical marks at times: the host's notes. */
    this.marks = [];
    this.x = d3.scaleTime();
    this.y = d3.scaleLinear();
    this.width = 0;
    this.height = 0;
    this.data = null;
    /** The time the crosshair points at (null: none), and whether this chart shows the tooltip. */
    this.cursor = null;
    this.tooltipOn = false;
    this.highlighted = -1;
    this.resizer = new ResizeObserver(([entry]) => {
      const { width, height } = entry.contentRect;
      if (Math.round(width) === this.width && Math.round(height) === this.height) return;
      this.width = Math.round(width);
      this.height = Math.round(height);
      if (this.data) this.draw();
    });
    this.resizer.observe(this.svg.node());
    if (options.input) bindChartInput(this, options.input);
  }

  /** The lines: `[{label, cls?}]`, drawn from `values` in this order; lines without a class get a colour each. */
  setSeries(series) {
    this.series = series;
  }

  /**
   * New data: `values[i]` is series i against `times`; the x axis spans [t0, t1]. `history` (optional): older
   * points from the sink, `{times, avg: [], min: [], max: []}` with one array per series. Draws at once.
   */
  update(times, values, t0, t1, history = null) {
    this.data = { times, values, t0, t1, history };
    this.draw();
    if (this.table.open) this.fillTable();
  }

  /** Marks these times with vertical lines (`{t, kind, label}`), drawn with the data. */
  setMarks(marks) {
    this.marks = marks;
    if (this.data) this.draw();
  }

  /** Empties the chart (a new host). */
  clear() {
    this.data = null;
    this.cursor = null;
    this.lines.selectAll('path').attr('d', null);
    this.bands.selectAll('path').attr('d', null);
    this.markLayer.selectAll('line').remove();
    this.cross.attr('display', 'none');
    this.tooltip.attr('hidden', true);
    this.legend.selectAll('li .value').text(fmt.MISSING);
  }

  /** The plot's horizontal extent in pixels. */
  get plotLeft() {
    return MARGIN.left;
  }

  get plotRight() {
    return this.width - MARGIN.right;
  }

  /** The time at pixel `px` of the plot (NaN before the first draw). */
  timeAt(px) {
    return this.data && this.width ? +this.x.invert(px) : NaN;
  }

  /** Shows the crosshair at time `t` (null hides it); `tooltip`: this chart also shows the values beside it. */
  point(t, tooltip = false) {
    this.cursor = t;
    this.tooltipOn = tooltip && t !== null;
    if (this.data) this.drawCursor();
  }

  /** Dims every line but series `i` (-1: none). */
  highlight(i) {
    this.highlighted = i;
    this.lines.selectAll('path').classed('dim', (_, j) => i >= 0 && j !== i);
  }

  /** The times and values the crosshair can point at: the live samples, or history before them. */
  sampleAt(t) {
    const { times, values, history } = this.data;
    if (history?.times.length && (!times.length || t < times[0])) {
      const i = nearestIndex(history.times, t);
      return {
        t: history.times[i],
        values: history.avg.map((s) => s[i]),
        ranges: history.min.map((s, j) => [s[i], history.max[j][i]]),
        history: true,
      };
    }
    const i = nearestIndex(times, t);
    if (i < 0) return null;
    return { t: times[i], values: values.map((s) => s[i]), index: i, history: false };
  }

  draw() {
    const { times, values, t0, t1, history } = this.data;
    const { options, width, height } = this;
    if (!width || !height) return;
    const i0 = Math.max(0, firstAtOrAfter(times, t0) - 1);
    const i1 = Math.min(times.length - 1, firstAtOrAfter(times, t1));
    if (options.yMax === undefined) {
      let top = Math.max(maxOf(values, i0, i1), options.floor ?? 0);
      if (history) top = Math.max(top, maxOf(history.max));
      if (top > this.yTop || top < this.yTop / 3) this.yTop = niceCeil(top * 1.15);
    } else {
      this.yTop = options.yMax;
    }
    const utc = fmt.isUtc();
    if ((this.x === this.utcScale) !== utc) this.x = utc ? (this.utcScale ??= d3.scaleUtc()) : d3.scaleTime();
    this.x.domain([t0, t1]).range([MARGIN.left, width - MARGIN.right]);
    this.y.domain([0, this.yTop]).range([height - MARGIN.bottom, MARGIN.top]);
    const ticksY = Math.max(2, Math.floor(height / 40));
    const tickValues = options.binary ? binaryTicks(this.yTop, ticksY) : null;
    this.axisX
      .attr('transform', `translate(0,${height - MARGIN.bottom})`)
      .call(d3.axisBottom(this.x).ticks(Math.max(2, Math.floor(width / 110)))
        .tickFormat((d) => fmt.tick(+d, t1 - t0)).tickSizeOuter(0));
    this.axisY
      .attr('transform', `translate(${MARGIN.left},0)`)
      .call(d3.axisLeft(this.y).ticks(ticksY).tickValues(tickValues).tickFormat(this.tick).tickSizeOuter(0));
    this.gridY
      .attr('transform', `translate(${MARGIN.left},0)`)
      .call(d3.axisLeft(this.y).ticks(ticksY).tickValues(tickValues).tickSize(-(width - MARGIN.left - MARGIN.right))
        .tickFormat(''));

    const { x, y, yTop } = this;
    const plotWidth = width - MARGIN.left - MARGIN.right;
    const extra = values.length - this.series.filter((s) => s.cls).length;
    const styleOf = (i) => {
      const s = this.series[i];
      return s?.cls ? { cls: s.cls, color: null } : { cls: 'extra', color: seriesColor(i - (values.length - extra), extra) };
    };
    const paths = values.map((v, i) => ({ d: linePath(times, v, i0, i1, x, y, yTop, plotWidth), ...styleOf(i) }));
    if (history?.times.length) {
      const h = history;
      const j1 = h.times.length - 1;
      h.avg.forEach((v, i) => {
        // History ends where the live samples begin.
        paths[i].d = linePath(h.times, v, 0, j1, x, y, yTop, plotWidth) + paths[i].d.replace(/^M/, times.length ? 'L' : 'M');
      });
      this.bands.selectAll('path')
        .data(h.min.slice(0, 1))
        .join('path')
        .attr('class', styleOf(0).cls)
        .attr('d', (min) => d3.area()
          .defined((_, i) => !Number.isNaN(min[i]) && !Number.isNaN(h.max[0][i]))
          .x((_, i) => x(h.times[i]))
          .y0((v) => y(Math.min(v, yTop)))
          .y1((_, i) => y(Math.min(h.max[0][i], yTop)))(min));
    } else {
      this.bands.selectAll('path').remove();
    }
    this.lines.selectAll('path')
      .data(paths)
      .join('path')
      .attr('class', (p, i) => `${p.cls}${this.highlighted >= 0 && i !== this.highlighted ? ' dim' : ''}`)
      .style('stroke', (p) => p.color)
      .attr('d', (p) => p.d);

    // A note newer than the newest sample stands at the right edge ("now") until samples catch up with it.
    const right = width - MARGIN.right;
    this.markLayer.selectAll('line')
      .data(this.marks.filter((m) => m.t >= t0 && m.t <= t1 + 60_000), (m) => m.id)
      .join((enter) => enter.append('line').call((line) => line.append('title')))
      .attr('class', (m) => m.kind)
      .attr('x1', (m) => Math.min(x(m.t), right))
      .attr('x2', (m) => Math.min(x(m.t), right))
      .attr('y1', MARGIN.top)
      .attr('y2', height - MARGIN.bottom)
      .select('title')
      .text((m) => m.label);

    this.drawLegend(paths);
    this.drawCursor();
  }

  drawLegend(paths) {
    const { series } = this;
    this.legend.selectAll('li')
      .data(paths.map((p, i) => ({ ...p, label: series[i]?.label ?? `line ${i + 1}`, i })))
      .join((enter) => {
        const li = enter.append('li');
        li.append('span').attr('class', 'swatch');
        li.append('span').attr('class', 'label');
        li.append('span').attr('class', 'value');
        li.on('mouseenter', (_, d) => this.highlight(d.i)).on('mouseleave', () => this.highlight(-1));
        return li;
      })
      .call((li) => {
        li.select('.swatch').attr('class', (d) => `swatch ${d.cls}`).style('color', (d) => d.color);
        li.select('.label').text((d) => d.label);
      });
  }

  /** The crosshair, the legend's values (at the crosshair, else the newest) and the tooltip. */
  drawCursor() {
    const { values } = this.data;
    const at = this.cursor === null ? null : this.sampleAt(this.cursor);
    const shown = at ? at.values : values.map(last);
    this.legend.selectAll('li .value').text((_, i) => this.format(shown[i]));
    if (!at || at.t < this.data.t0 || at.t > this.data.t1) {
      this.cross.attr('display', 'none');
      this.tooltip.attr('hidden', true);
      return;
    }
    const px = this.x(at.t);
    this.cross.attr('display', null);
    this.crossLine.attr('x1', px).attr('x2', px).attr('y1', MARGIN.top).attr('y2', this.height - MARGIN.bottom);
    const colors = this.lines.selectAll('path').nodes().map((p) => p.style.stroke || null);
    this.crossDots.selectAll('circle')
      .data(at.values.map((v, i) => ({ v, i })).filter((d) => !Number.isNaN(d.v) && d.v !== undefined))
      .join('circle')
      .attr('r', 3)
      .attr('class', (d) => this.series[d.i]?.cls ?? 'extra')
      .style('fill', (d) => colors[d.i])
      .attr('cx', px)
      .attr('cy', (d) => this.y(Math.min(d.v, this.yTop)));
    if (!this.tooltipOn) {
      this.tooltip.attr('hidden', true);
      return;
    }
    const rows = at.values.map((v, i) => {
      const range = at.ranges?.[i];
      const text = range && !Number.isNaN(range[0])
        ? `${this.format(v)} (${this.format(range[0])}–${this.format(range[1])})` : this.format(v);
      return { label: this.series[i]?.label ?? `line ${i + 1}`, text, cls: this.series[i]?.cls ?? 'extra', color: colors[i] };
    });
    this.tooltip.attr('hidden', null).attr('data-t', at.t).classed('history', at.history);
    this.tooltip.selectAll('time').data([at]).join('time')
      .attr('datetime', new Date(at.t).toISOString())
      .text(`${fmt.dateTime(at.t)}${at.history ? ' · history' : ''}`);
    this.tooltip.selectAll('ul').data([rows]).join('ul')
      .selectAll('li')
      .data((d) => d)
      .join((enter) => {
        const li = enter.append('li');
        li.append('span').attr('class', 'swatch');
        li.append('span').attr('class', 'label');
        li.append('span').attr('class', 'value');
        return li;
      })
      .call((li) => {
        li.select('.swatch').attr('class', (d) => `swatch ${d.cls}`).style('color', (d) => d.color);
        li.select('.label').text((d) => d.label);
        li.select('.value').text((d) => d.text);
      });
    // Beside the crosshair, on the side with more room.
    const left = px > this.width / 2;
    this.tooltip.style('left', left ? null : `${px + 12}px`).style('right', left ? `${this.width - px + 12}px` : null);
  }

  /** The crosshair's sample as one line of text, for screen readers. */
  describeCursor() {
    const at = this.cursor === null ? null : this.sampleAt(this.cursor);
    if (!at) return '';
    const parts = at.values.map((v, i) => `${this.series[i]?.label ?? `line ${i + 1}`} ${this.format(v)}`);
    return `${this.options.title} at ${fmt.dateTime(at.t)}: ${parts.join(', ')}`;
  }

  /** The newest TABLE_ROWS samples in view, newest first. */
  fillTable() {
    if (!this.data) return;
    const { times, values, t1 } = this.data;
    const head = ['time', ...values.map((_, i) => this.series[i]?.label ?? `line ${i + 1}`)];
    const rows = [];
    for (let i = Math.min(times.length, firstAtOrAfter(times, t1 + 1)) - 1; i >= 0 && rows.length < TABLE_ROWS; i -= 1) {
      rows.push([fmt.dateTime(times[i]), ...values.map((s) => this.format(s[i]))]);
    }
    this.table.show(head, rows);
  }

  /** Shows the brush selection between pixels `a` and `b` (null hides it). */
  showBrush(a, b) {
    if (a === null) {
      this.brush.attr('display', 'none');
      return;
    }
    this.brush.attr('display', null).attr('x', Math.min(a, b)).attr('width', Math.abs(b - a))
      .attr('y', MARGIN.top).attr('height', this.height - MARGIN.top - MARGIN.bottom);
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
