// The overview: a tile per host, in the order and groups the user chose (hosts.js `arrange`), with CPU and memory
// sparklines (hovering one shows the sample under the pointer), the newest numbers, its state (new, silent), its
// firing alerts in words and a triangle, a mark on the busiest, and the host's newest note ("✓ investigating —
// Ana"), so a hot host that someone is on says so. Only the tiles on screen (and a few rows around them) are in
// the document: each group's box is as tall as all of its tiles would be, and the rows the window shows are bound
// to tile elements, reused as they scroll out and in. At 10,000 hosts the page holds about a hundred tiles instead
// of 10,000 (a document of 200,000 elements took seconds to build and every reorder relaid it all). What the page
// says of each host off screen (its state, alerts, note, rank) is kept here and shown when its tile is bound.
import { sparkPath, SPARK_W, SPARK_H, nearestIndex } from './charts.js';
import * as fmt from './format.js';
import { memPercent } from './hosts.js';
import { noteLine } from './annotations.js';
import { MEASURES } from './alerts.js';

const BADGES = { new: 'new', silent: 'silent', waiting: 'waiting' };
/**
 * How far above and below the window tiles are kept in the document, in window heights: scrolling by a screen, or
 * moving the focus to the next tile with Tab, finds them there.
 */
const OVERSCAN_SCREENS = 1;

/** What the page says of a host on its tile besides its numbers; kept for hosts without a tile too. */
function newMarks() {
  return { state: 'waiting', alert: '', alertTitle: '', alertMeasures: '', note: '', noteTitle: '', noteKind: '', rank: '' };
}

export class Overview {
  /**
   * @param {HTMLElement} grid
   * @param {(keys: string[]) => void} onReveal — hosts whose tiles came into view, to be drawn
   * @param {(key: string) => ({times: Float64Array, values: Float64Array[]} | null)} seriesOf — a host's CPU
   *        (values[0]) and memory used (values[1]) series as last drawn, for the sparklines' hover
   */
  constructor(grid, onReveal, seriesOf) {
    this.grid = grid;
    this.onReveal = onReveal;
    /** key → the tile bound to it: its elements and what they show (only hosts on screen have one) */
    this.tiles = new Map();
    /** Tile elements scrolled out, to be bound to the next hosts scrolled in. */
    this.spare = [];
    /** key → newMarks() */
    this.marks = new Map();
    /** group name → its section, its hosts and the rows bound */
    this.groups = new Map();
    /** The groups in order, as last shown. */
    this.order = [];
    this.seriesOf = seriesOf;
    this.tip = document.createElement('div');
    this.tip.className = 'spark-tip';
    this.tip.hidden = true;
    document.body.append(this.tip);
    grid.addEventListener('pointermove', (e) => this.hover(e));
    grid.addEventListener('pointerleave', () => { this.tip.hidden = true; });
    let pending = 0;
    this.scheduleLayout = () => {
      pending ||= requestAnimationFrame(() => {
        pending = 0;
        this.layout();
      });
    };
    window.addEventListener('scroll', this.scheduleLayout, { passive: true });
    window.addEventListener('resize', this.scheduleLayout);
    // The grid's width decides how many tiles a row holds (the panels above it can change its place too).
    new ResizeObserver(this.scheduleLayout).observe(grid);
  }

  /**
   * Shows `groups` (`[{name, hosts}]`, already filtered, grouped and sorted; one group named '' for no grouping):
   * a section per group, as tall as its tiles, with the tiles on screen bound in order.
   */
  show(groups) {
    let previous = null;
    for (const group of groups) {
      let section = this.groups.get(group.name);
      if (!section) {
        section = this.createGroup(group.name);
        this.groups.set(group.name, section);
      }
      section.hosts = group.hosts;
      const next = previous ? previous.el.nextSibling : this.grid.firstChild;
      if (section.el !== next) this.grid.insertBefore(section.el, next);
      previous = section;
      const heading = group.name ? `${group.name} · ${fmt.count(group.hosts.length)} ${group.hosts.length === 1 ? 'host' : 'hosts'}` : '';
      if (section.heading.textContent !== heading) section.heading.textContent = heading;
      section.heading.hidden = !group.name;
    }
    const names = new Set(groups.map((g) => g.name));
    for (const [name, section] of this.groups) {
      if (!names.has(name)) {
        section.el.remove();
        this.groups.delete(name);
      }
    }
    this.order = groups.map((g) => this.groups.get(g.name));
    this.layout();
  }

  createGroup(name) {
    const el = document.createElement('section');
    el.className = 'group';
    el.dataset.group = name;
    const heading = document.createElement('h3');
    heading.className = 'group-name';
    const box = document.createElement('div');
    box.className = 'tiles';
    el.append(heading, box);
    if (name) el.setAttribute('aria-label', `Role ${name}`);
    return { el, heading, box, hosts: [], from: 0, to: 0 };
  }

  /**
   * Sizes each group's box for all of its tiles and binds the tiles of the rows on screen (and OVERSCAN_ROWS
   * around them); tiles newly bound are drawn through `onReveal`. Reads the layout once per group: it runs on
   * scrolls, resizes and new orders, never in the frames that bring samples.
   */
  layout() {
    const revealed = [];
    const bound = new Set();
    const viewport = window.innerHeight;
    const overscan = OVERSCAN_SCREENS * viewport;
    for (const section of this.order) {
      const { box, hosts } = section;
      const grid = this.geometry(box);
      // Not laid out (the host detail is open): the tiles bound stay until it is, when the observer calls again.
      if (!grid) return;
      const rows = Math.ceil(hosts.length / grid.columns);
      const top = box.getBoundingClientRect().top;
      const first = Math.max(0, Math.floor((-top - overscan) / grid.pitch));
      const last = Math.max(first, Math.min(rows, Math.ceil((viewport + overscan - top) / grid.pitch)));
      section.from = Math.min(hosts.length, first * grid.columns);
      section.to = Math.min(hosts.length, last * grid.columns);
      // The rows above those bound are the box's padding; its height is all of its rows'.
      const padding = `${first * grid.pitch}px`;
      const height = `${rows ? rows * grid.pitch - grid.gap : 0}px`;
      if (box.style.paddingTop !== padding) box.style.paddingTop = padding;
      if (box.style.height !== height) box.style.height = height;
      for (let i = section.from; i < section.to; i += 1) bound.add(hosts[i].key);
    }
    for (const [key, tile] of this.tiles) {
      if (bound.has(key)) continue;
      this.tiles.delete(key);
      tile.el.remove();
      this.spare.push(tile);
    }
    for (const section of this.order) {
      const els = [];
      for (let i = section.from; i < section.to; i += 1) {
        const host = section.hosts[i];
        let tile = this.tiles.get(host.key);
        if (!tile) {
          tile = this.bind(this.spare.pop() ?? this.create(), host);
          revealed.push(host.key);
        }
        els.push(tile.el);
      }
      const { children } = section.box;
      if (els.length !== children.length || els.some((el, i) => children[i] !== el)) section.box.replaceChildren(...els);
    }
    this.spare.length = Math.min(this.spare.length, this.tiles.size);
    if (revealed.length) this.onReveal(revealed);
  }

  /**
   * The box's grid as the style sheet lays it out at its width: columns, row pitch and gap, in CSS pixels; null
   * while it is not laid out.
   */
  geometry(box) {
    const style = getComputedStyle(box);
    // Laid out, the columns resolve to one width each ("215px 215px …"); not laid out, to the rule's own text.
    const columns = style.gridTemplateColumns.split(' ').filter((c) => c.endsWith('px')).length;
    const row = parseFloat(style.gridAutoRows);
    if (!columns || !(row > 0) || style.gridTemplateColumns.includes('(')) return null;
    const gap = parseFloat(style.rowGap) || 0;
    return { columns, gap, pitch: row + gap };
  }

  /** A tile element, bound to no host yet. */
  create() {
    const el = document.createElement('a');
    el.className = 'tile';
    el.innerHTML = `
      <div class="tile-head"><span class="name"></span><span class="badge"></span><span class="alert" hidden></span></div>
      <div class="metric"><span class="label">CPU</span><span class="value cpu">–</span>
        <svg class="spark cpu" viewBox="0 0 ${SPARK_W} ${SPARK_H}" preserveAspectRatio="none" aria-hidden="true"><path/></svg></div>
      <div class="metric"><span class="label">MEM</span><span class="value mem">–</span>
        <svg class="spark mem" viewBox="0 0 ${SPARK_W} ${SPARK_H}" preserveAspectRatio="none" aria-hidden="true"><path/></svg></div>
      <span class="sr-only range"></span>
      <div class="tile-foot"><span class="note" hidden></span><span class="load"></span><span class="age"></span></div>`;
    return {
      key: '',
      el,
      name: el.querySelector('.name'),
      cpu: el.querySelector('.value.cpu'),
      mem: el.querySelector('.value.mem'),
      cpuPath: el.querySelector('.spark.cpu path'),
      memPath: el.querySelector('.spark.mem path'),
      load: el.querySelector('.load'),
      age: el.querySelector('.age'),
      badge: el.querySelector('.badge'),
      alert: el.querySelector('.alert'),
      range: el.querySelector('.range'),
      note: el.querySelector('.note'),
      shown: {},
    };
  }

  /** Makes `tile` show `host`: its name and marks now, its numbers when it is drawn. */
  bind(tile, host) {
    const { el } = tile;
    tile.key = host.key;
    tile.span = null;
    tile.shown = {};
    el.href = `#host=${encodeURIComponent(host.name)}`;
    el.dataset.key = host.key;
    el.dataset.host = host.name;
    el.title = host.name;
    delete el.dataset.cpu;
    delete el.dataset.t;
    for (const part of ['name', 'cpu', 'mem', 'load', 'age', 'range']) set(tile, part, part === 'name' ? host.name : part === 'cpu' || part === 'mem' ? '–' : '');
    tile.cpuPath.removeAttribute('d');
    tile.memPath.removeAttribute('d');
    this.tiles.set(host.key, tile);
    let marks = this.marks.get(host.key);
    if (!marks) {
      marks = { ...newMarks(), state: host.state };
      this.marks.set(host.key, marks);
    }
    this.apply(tile, marks);
    return tile;
  }

  /** Shows a host's marks on its tile. */
  apply(tile, marks) {
    const { el } = tile;
    el.dataset.state = marks.state;
    set(tile, 'badge', BADGES[marks.state] ?? '');
    set(tile, 'alert', marks.alert);
    tile.alert.hidden = !marks.alert;
    tile.alert.title = marks.alertTitle;
    el.dataset.alert = marks.alertMeasures;
    set(tile, 'note', marks.note);
    tile.note.hidden = !marks.note;
    tile.note.title = marks.noteTitle;
    el.dataset.note = marks.noteKind;
    if (marks.rank) el.dataset.rank = marks.rank;
    else delete el.dataset.rank;
  }

  /** Changes some of a host's marks, and its tile if it has one. */
  mark(key, change) {
    let marks = this.marks.get(key);
    if (!marks) {
      marks = newMarks();
      this.marks.set(key, marks);
    }
    Object.assign(marks, change);
    const tile = this.tiles.get(key);
    if (tile) this.apply(tile, marks);
  }

  /** The host left the page: what was said of it goes. */
  forget(key) {
    this.marks.delete(key);
  }

  /** The keys of the hosts with a tile. */
  boundKeys() {
    return [...this.tiles.keys()];
  }

  /** Whether `key` has a tile in the document (so is worth drawing now). */
  onscreen(key) {
    return this.tiles.has(key);
  }

  /** Scrolls to the tile of `key` (within its group's rows) and gives it the focus. */
  focus(key) {
    for (const section of this.order) {
      const at = section.hosts.findIndex((h) => h.key === key);
      if (at < 0) continue;
      const grid = this.geometry(section.box);
      if (!grid) return;
      const y = section.box.getBoundingClientRect().top + Math.floor(at / grid.columns) * grid.pitch;
      if (y < 0 || y + grid.pitch > window.innerHeight) window.scrollBy(0, y - (window.innerHeight - grid.pitch) / 2);
      this.layout();
      this.tiles.get(key)?.el.focus({ preventScroll: true });
      return;
    }
  }

  /**
   * Draws a host's tile from its window: `times`, `cpu` (percent) and `mem` (bytes used) series, over [t0, t1].
   */
  draw(host, times, cpu, mem, t0, t1) {
    const tile = this.tiles.get(host.key);
    if (!tile) return;
    tile.cpuPath.setAttribute('d', sparkPath(times, cpu, t0, t1, 100));
    const total = host.memTotal > 0 ? host.memTotal : 1;
    tile.memPath.setAttribute('d', sparkPath(times, mem, t0, t1, total));
    set(tile, 'cpu', fmt.percent(host.cpu));
    set(tile, 'mem', fmt.percent(memPercent(host)));
    set(tile, 'load', `load ${fmt.load(host.load1)}`);
    // The sparklines' text alternative: what they span, in words.
    const [cpuLo, cpuHi] = extent(cpu, times, t0);
    const [memLo, memHi] = extent(mem, times, t0);
    set(tile, 'range', `Over ${fmt.duration(t1 - t0)}: CPU ${fmt.percent(cpuLo)} to ${fmt.percent(cpuHi)}, memory `
      + `${fmt.percent((100 * memLo) / total)} to ${fmt.percent((100 * memHi) / total)}.`);
    tile.el.dataset.cpu = String(host.cpu);
    tile.el.dataset.t = String(host.t);
    tile.span = [t0, t1];
  }

  setState(host) {
    if (this.marks.get(host.key)?.state !== host.state) this.mark(host.key, { state: host.state });
  }

  /** Shows a host's newest note on its tile (or none), in place of its load. */
  setNote(key, note) {
    const line = note ? noteLine(note) : '';
    if (this.marks.get(key)?.note === line) return;
    this.mark(key, { note: line, noteTitle: note ? `${line} (${fmt.clock(note.t)})` : '', noteKind: note?.kind ?? '' });
  }

  /** Marks the busiest hosts: `ranked` keys, busiest first (only the hosts marked before or now are touched). */
  setBusiest(ranked) {
    for (const key of this.ranked ?? []) this.mark(key, { rank: '' });
    ranked.forEach((key, i) => this.mark(key, { rank: String(i + 1) }));
    this.ranked = ranked;
  }

  /** Shows the alerts firing on host `key` (`[{measure, alert}]`): a triangle and the measures, in words. */
  setAlerts(key, firing) {
    const text = firing.length ? `▲ ${firing.map((f) => MEASURES[f.measure].label).join(' · ')}` : '';
    if ((this.marks.get(key)?.alert ?? '') === text) return;
    this.mark(key, {
      alert: text,
      alertTitle: firing.map((f) => `${f.alert.rule}, since ${fmt.dateTime(f.alert.began)}`).join('\n'),
      alertMeasures: firing.map((f) => f.measure).join(' '),
    });
  }

  /** The tooltip of a sparkline under the pointer: the sample nearest to it, with its absolute time. */
  hover(e) {
    const svg = e.target.closest?.('svg.spark');
    const tile = svg && this.tiles.get(svg.closest('a.tile')?.dataset.key);
    const series = tile && this.seriesOf(tile.key);
    if (!series?.times.length || !tile.span) {
      this.tip.hidden = true;
      return;
    }
    const box = svg.getBoundingClientRect();
    const t = tile.span[0] + ((e.clientX - box.left) / box.width) * (tile.span[1] - tile.span[0]);
    const i = nearestIndex(series.times, t);
    const [cpu, mem] = series.values;
    const total = series.memTotal > 0 ? series.memTotal : NaN;
    this.tip.textContent = `${tile.el.dataset.host} · ${fmt.dateTime(series.times[i])} · CPU ${fmt.percent(cpu[i])}`
      + ` · memory ${fmt.percent((100 * mem[i]) / total)}`;
    this.tip.hidden = false;
    this.tip.style.left = `${Math.min(e.clientX + 12, window.innerWidth - 320)}px`;
    this.tip.style.top = `${e.clientY + 16}px`;
  }

  /** Updates the "12 s ago" of the tiles on screen; `hostOf` finds a tile's host by its key. */
  tickAges(hostOf, now) {
    for (const tile of this.tiles.values()) {
      const host = hostOf(tile.key);
      if (host) set(tile, 'age', host.state === 'silent' ? fmt.ago(host.t, now) : '');
    }
  }
}

/** The smallest and largest of `values` from the first time at or after `t0`, ignoring NaN. */
function extent(values, times, t0) {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = values.length - 1; i >= 0 && times[i] >= t0; i -= 1) {
    const v = values[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : [NaN, NaN];
}

/** Writes a text only when it differs from what the tile shows. */
function set(tile, part, text) {
  if (tile.shown[part] === text) return;
  tile.shown[part] = text;
  tile[part].textContent = text;
}
