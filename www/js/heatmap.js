// The fleet over time: a heatmap of CPU, a row per host (in the tiles' order) and a column per slice of the window,
// each cell the highest CPU sampled in it. Drawn on a canvas one pixel per cell, which CSS stretches: at 1,000
// hosts that is one ImageData of a few hundred thousand pixels a second instead of as many SVG elements. Hovering a
// cell (or moving over it with the arrow keys) says whose, when and how much; a click opens the host; the text
// alternative is a table of every host's recent values, filled only while it is open.
import d3 from './d3.js';
import * as fmt from './format.js';
import { DataTable } from './data-table.js';
import { firstAtOrAfter } from './charts.js';

/** Columns at most, whatever the window: cells of about a sample each at 2 min of 1 s samples. */
export const MAX_COLUMNS = 240;
/** Height of a host's row in CSS pixels, between these, so a few hosts are not huge and 1,000 still show. */
const ROW_MIN = 2;
const ROW_MAX = 14;
/** The height the rows aim to fill before each is ROW_MIN (then the panel scrolls). */
const ROWS_HEIGHT = 260;
/** Columns in the table of recent values (the newest). */
const TABLE_COLUMNS = 5;

/**
 * Fills `pixels` (RGBA as Uint32, `columns` × rows) for `rows` (`{times, cpu, interval}`, times ascending), column
 * c covering [t0 + c × step, t0 + (c + 1) × step): the highest CPU sampled in it, coloured by `palette` (101
 * entries, one per percent); `empty` where a host has nothing. A sample tells the CPU since the one before it, so
 * columns between two samples (a host writing once a minute, in columns of a second) take the later sample's
 * colour, as far back as twice the host's `interval` (a longer silence stays empty). Returns `pixels`.
 */
export function paintCells(pixels, rows, columns, t0, step, palette, empty) {
  pixels.fill(empty);
  rows.forEach((row, r) => {
    if (!row) return;
    const { times, cpu } = row;
    const reach = row.interval > 0 ? 2 * row.interval : 0;
    const base = r * columns;
    const colour = (v) => palette[Math.min(100, Math.max(0, Math.round(v)))];
    let peak = -1;
    let column = -Infinity;
    for (let i = 0; i < times.length; i += 1) {
      const v = cpu[i];
      if (Number.isNaN(v)) continue;
      const c = Math.floor((times[i] - t0) / step);
      if (c !== column) {
        if (column >= 0 && column < columns && peak >= 0) pixels[base + column] = colour(peak);
        // The columns since the previous sample's, within reach, had no sample of their own: this one covers them.
        const from = Math.max(column + 1, Math.floor((times[i] - reach - t0) / step), 0);
        for (let g = from; g < Math.min(c, columns); g += 1) pixels[base + g] = colour(v);
        if (c >= columns) return;
        column = c;
        peak = -1;
      }
      if (v > peak) peak = v;
    }
    if (column >= 0 && column < columns && peak >= 0) pixels[base + column] = colour(peak);
  });
  return pixels;
}

/** The 101 colours of 0–100 % as RGBA words in the platform's byte order (little-endian: ABGR). */
function palette(interpolate) {
  return Uint32Array.from({ length: 101 }, (_, p) => {
    const { r, g, b } = d3.rgb(interpolate(p / 100));
    return (255 << 24) | (b << 16) | (g << 8) | r;
  });
}

export class Heatmap {
  /**
   * @param {HTMLElement} root the panel (a `.heat-body` with the canvas is made inside it)
   * @param {{open: (name: string) => void}} actions
   */
  constructor(root, { open }) {
    this.root = root;
    this.canvas = root.querySelector('canvas');
    this.ctx = this.canvas.getContext('2d');
    this.axisSvg = d3.select(root.querySelector('svg.heat-axis'));
    this.axis = this.axisSvg.append('g').attr('class', 'axis x');
    this.tip = root.querySelector('.heat-tip');
    this.palette = palette(d3.interpolateInferno);
    this.empty = 0;
    /** @type {{key: string, name: string, interval: number, series: {times: Float64Array, values: Float64Array[]} | null}[]} */
    this.rows = [];
    this.t0 = 0;
    this.step = 1000;
    this.columns = 0;
    this.cursor = null;
    this.table = new DataTable(root, {
      caption: 'CPU of every host, newest samples last',
      label: 'Table of every host\u2019s recent CPU',
      fill: () => this.fillTable(),
    });
    // The canvas's width, kept by an observer: reading it while drawing would force a layout of the whole page.
    this.width = 0;
    new ResizeObserver(([entry]) => {
      this.width = Math.round(entry.contentRect.width);
      if (this.columns) this.drawAxis(this.t0, this.t0 + this.columns * this.step);
    }).observe(this.canvas);
    this.canvas.addEventListener('pointermove', (e) => this.pointAt(e));
    this.canvas.addEventListener('pointerleave', () => this.point(null));
    this.canvas.addEventListener('click', (e) => {
      const cell = this.cellAt(e);
      if (cell) open(this.rows[cell.row].name);
    });
    this.canvas.addEventListener('keydown', (e) => this.key(e, open));
    this.canvas.addEventListener('blur', () => this.point(null));
  }

  /**
   * Draws `rows` (the tiles' order: `{key, name, series, interval}`, series' values[0] the CPU) over
   * [t1 − windowMs, t1] in columns of about `interval` (the fleet's).
   */
  draw(rows, t1, windowMs, interval) {
    this.rows = rows;
    const columns = Math.max(1, Math.min(MAX_COLUMNS, Math.round(windowMs / Math.max(interval || 1000, 1))));
    const step = windowMs / columns;
    // Columns keep to multiples of their width, so the picture moves a whole column at a time instead of shimmering.
    const t0 = Math.floor((t1 - windowMs) / step) * step + step;
    this.t0 = t0;
    this.step = step;
    this.columns = columns;
    const height = Math.max(1, rows.length);
    if (this.canvas.width !== columns || this.canvas.height !== height) {
      this.canvas.width = columns;
      this.canvas.height = height;
      this.image = this.ctx.createImageData(columns, height);
      this.pixels = new Uint32Array(this.image.data.buffer);
    }
    const rowHeight = Math.max(ROW_MIN, Math.min(ROW_MAX, Math.floor(ROWS_HEIGHT / height)));
    this.rowHeight = rowHeight;
    const cssHeight = `${height * rowHeight}px`;
    if (this.canvas.style.height !== cssHeight) this.canvas.style.height = cssHeight;
    const cells = rows.map((r) => (r.series ? { times: r.series.times, cpu: r.series.values[0], interval: r.interval } : null));
    paintCells(this.pixels, cells, columns, t0, step, this.palette, this.empty);
    this.ctx.putImageData(this.image, 0, 0);
    this.root.dataset.rows = String(rows.length);
    this.root.dataset.columns = String(columns);
    this.root.dataset.t0 = String(t0);
    this.root.dataset.step = String(step);
    this.drawAxis(t0, t0 + columns * step);
    if (this.cursor) this.point(this.cursor);
    if (this.table.open) this.fillTable();
  }

  drawAxis(t0, t1) {
    const { width } = this;
    if (!width) return;
    const x = (fmt.isUtc() ? d3.scaleUtc() : d3.scaleTime()).domain([t0, t1]).range([0, width]);
    this.axisSvg.attr('width', width);
    this.axis.call(d3.axisBottom(x).ticks(Math.max(2, Math.floor(width / 110))).tickFormat((d) => fmt.tick(+d, t1 - t0))
        .tickSizeOuter(0));
  }

  /** The cell under a pointer event: `{row, column}`, or null. */
  cellAt(e) {
    const box = this.canvas.getBoundingClientRect();
    if (!box.width || !box.height || !this.rows.length) return null;
    const column = Math.floor(((e.clientX - box.left) / box.width) * this.columns);
    const row = Math.floor(((e.clientY - box.top) / box.height) * this.rows.length);
    if (row < 0 || row >= this.rows.length || column < 0 || column >= this.columns) return null;
    return { row, column };
  }

  pointAt(e) {
    this.point(this.cellAt(e));
  }

  /** Says what the cell at `cell` holds (null hides it): the host, the column's time and its highest CPU. */
  point(cell) {
    this.cursor = cell;
    if (!cell || !this.rows[cell.row]) {
      this.tip.hidden = true;
      delete this.root.dataset.cell;
      return;
    }
    const { name, series, interval } = this.rows[cell.row];
    const from = this.t0 + cell.column * this.step;
    const to = from + this.step;
    let peak = NaN;
    let at = NaN;
    if (series) {
      const [times, cpu] = [series.times, series.values[0]];
      let i = firstAtOrAfter(times, from);
      for (; i < times.length && times[i] < to; i += 1) {
        if (!Number.isNaN(cpu[i]) && !(cpu[i] <= peak)) {
          peak = cpu[i];
          at = times[i];
        }
      }
      // No sample in the column: the next one covers it if it is close enough (see paintCells).
      if (Number.isNaN(at) && i < times.length && interval > 0 && times[i] - 2 * interval < to) {
        peak = cpu[i];
        at = times[i];
      }
    }
    const text = Number.isNaN(at)
      ? `${name} · ${fmt.dateTime(from)} · no sample`
      : `${name} · ${fmt.dateTime(at)} · CPU ${fmt.percent(peak)}`;
    this.tip.textContent = text;
    this.tip.hidden = false;
    this.tip.dataset.host = name;
    this.tip.dataset.t = String(at);
    this.tip.dataset.cpu = String(peak);
    // From the sizes the page already knows: measuring the canvas here would force a layout.
    const x = ((cell.column + 0.5) / this.columns) * this.width;
    const y = (cell.row + 1) * this.rowHeight;
    this.tip.style.left = `${Math.min(x + 8, Math.max(0, this.width - 300))}px`;
    this.tip.style.top = `${y + 6}px`;
    this.root.dataset.cell = `${cell.row},${cell.column}`;
    return text;
  }

  /** Arrow keys move the cell pointed at; Enter opens its host. */
  key(e, open) {
    if (!this.rows.length) return;
    const cell = this.cursor ?? { row: 0, column: this.columns - 1 };
    const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    if (e.key === 'Enter' && this.cursor) {
      open(this.rows[cell.row].name);
    } else if (moves[e.key]) {
      const [dr, dc] = moves[e.key];
      const next = this.cursor ? {
        row: Math.max(0, Math.min(this.rows.length - 1, cell.row + dr)),
        column: Math.max(0, Math.min(this.columns - 1, cell.column + dc)),
      } : cell;
      const text = this.point(next);
      this.announce?.(text);
    } else {
      return;
    }
    e.preventDefault();
    e.stopPropagation();
  }

  /** Every host's newest TABLE_COLUMNS samples of CPU. */
  fillTable() {
    const rows = this.rows.map(({ name, series }) => {
      const cells = [name];
      const n = series?.times.length ?? 0;
      for (let i = Math.max(0, n - TABLE_COLUMNS); i < n; i += 1) {
        cells.push(`${fmt.clock(series.times[i])} ${fmt.percent(series.values[0][i])}`);
      }
      while (cells.length < TABLE_COLUMNS + 1) cells.splice(1, 0, fmt.MISSING);
      return cells;
    });
    const head = ['host', ...Array.from({ length: TABLE_COLUMNS }, (_, i) => (i === TABLE_COLUMNS - 1 ? 'newest' : `${TABLE_COLUMNS - 1 - i} before`))];
    this.table.show(head, rows);
  }
}
