// The overview: a tile per host, in the order and groups the user chose (hosts.js `arrange`), with CPU and memory
// sparklines (hovering one shows the sample under the pointer), the newest numbers, its state (new, silent), its
// firing alerts in words and a triangle, a mark on the busiest, and the host's newest note ("✓ investigating —
// Ana"), so a hot host that someone is on says so. Tiles are created once per host and updated in place; a tile
// scrolled out of view is not drawn until it comes back (IntersectionObserver), which is most of them at 200 hosts.
import { sparkPath, SPARK_W, SPARK_H, nearestIndex } from './charts.js';
import * as fmt from './format.js';
import { memPercent } from './hosts.js';
import { noteLine } from './annotations.js';
import { MEASURES } from './alerts.js';

const BADGES = { new: 'new', silent: 'silent', waiting: 'waiting' };
/** Past this many tiles out of place, a group's tiles are put back in order all at once. */
const MANY_MOVES = 32;

export class Overview {
  /**
   * @param {HTMLElement} grid
   * @param {(keys: string[]) => void} onReveal — tiles that need drawing came into view
   * @param {(key: string) => ({times: Float64Array, values: Float64Array[]} | null)} seriesOf — a host's CPU
   *        (values[0]) and memory used (values[1]) series as last drawn, for the sparklines' hover
   */
  constructor(grid, onReveal, seriesOf) {
    this.grid = grid;
    /** key → the tile's elements and what they show */
    this.tiles = new Map();
    /** group name → its section */
    this.groups = new Map();
    this.seriesOf = seriesOf;
    this.tip = document.createElement('div');
    this.tip.className = 'spark-tip';
    this.tip.hidden = true;
    document.body.append(this.tip);
    grid.addEventListener('pointermove', (e) => this.hover(e));
    grid.addEventListener('pointerleave', () => { this.tip.hidden = true; });
    this.observer = new IntersectionObserver((entries) => {
      const reveal = [];
      for (const entry of entries) {
        const tile = this.tiles.get(entry.target.dataset.key);
        if (!tile) continue;
        tile.onscreen = entry.isIntersecting;
        if (tile.onscreen && tile.stale) reveal.push(tile.key);
      }
      if (reveal.length) onReveal(reveal);
    }, { rootMargin: '160px 0px' });
  }

  /**
   * Shows `groups` (`[{name, hosts}]`, already filtered, grouped and sorted; one group named '' for no grouping):
   * a section per group with its tiles in order, creating, moving and removing tiles as needed and moving only
   * those out of place.
   */
  show(groups) {
    const wanted = new Set();
    for (const g of groups) for (const h of g.hosts) wanted.add(h.key);
    for (const [key, tile] of this.tiles) {
      if (!wanted.has(key)) {
        this.observer.unobserve(tile.el);
        tile.el.remove();
        this.tiles.delete(key);
      }
    }
    let previous = null;
    for (const group of groups) {
      let section = this.groups.get(group.name);
      if (!section) {
        section = this.createGroup(group.name);
        this.groups.set(group.name, section);
      }
      const next = previous ? previous.el.nextSibling : this.grid.firstChild;
      if (section.el !== next) this.grid.insertBefore(section.el, next);
      previous = section;
      const heading = group.name ? `${group.name} · ${fmt.count(group.hosts.length)} ${group.hosts.length === 1 ? 'host' : 'hosts'}` : '';
      if (section.heading.textContent !== heading) section.heading.textContent = heading;
      section.heading.hidden = !group.name;
      const box = section.box;
      const els = group.hosts.map((host) => this.tiles.get(host.key)?.el ?? this.create(host));
      const { children } = box;
      let moves = 0;
      for (let i = 0; i < els.length && moves <= MANY_MOVES; i += 1) if (children[i] !== els[i]) moves += 1;
      if (moves > MANY_MOVES) {
        // A new order for most tiles (sorted by CPU, a second later): one call instead of a move per tile.
        box.replaceChildren(...els);
      } else if (moves) {
        els.forEach((el, i) => {
          if (children[i] !== el) box.insertBefore(el, children[i] ?? null);
        });
      }
    }
    const names = new Set(groups.map((g) => g.name));
    for (const [name, section] of this.groups) {
      if (!names.has(name)) {
        section.el.remove();
        this.groups.delete(name);
      }
    }
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
    return { el, heading, box };
  }

  create(host) {
    const el = document.createElement('a');
    el.className = 'tile';
    el.href = `#host=${encodeURIComponent(host.name)}`;
    el.dataset.key = host.key;
    el.dataset.host = host.name;
    el.innerHTML = `
      <div class="tile-head"><span class="name"></span><span class="badge"></span><span class="alert" hidden></span></div>
      <div class="metric"><span class="label">CPU</span><span class="value cpu">–</span>
        <svg class="spark cpu" viewBox="0 0 ${SPARK_W} ${SPARK_H}" preserveAspectRatio="none" aria-hidden="true"><path/></svg></div>
      <div class="metric"><span class="label">MEM</span><span class="value mem">–</span>
        <svg class="spark mem" viewBox="0 0 ${SPARK_W} ${SPARK_H}" preserveAspectRatio="none" aria-hidden="true"><path/></svg></div>
      <span class="sr-only range"></span>
      <div class="tile-foot"><span class="note" hidden></span><span class="load"></span><span class="age"></span></div>`;
    el.querySelector('.name').textContent = host.name;
    el.title = host.name;
    const tile = {
      key: host.key,
      el,
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
      onscreen: false,
      stale: true,
      shown: {},
    };
    this.tiles.set(host.key, tile);
    this.observer.observe(el);
    this.setState(host);
    return el;
  }

  /** Whether the tile of `key` is on screen (so worth drawing now). */
  onscreen(key) {
    return this.tiles.get(key)?.onscreen ?? false;
  }

  /** The tile of `key` is out of date; it is drawn when it comes into view. */
  markStale(key) {
    const tile = this.tiles.get(key);
    if (tile) tile.stale = true;
  }

  /**
   * Draws a host's tile from its window: `times`, `cpu` (percent) and `mem` (bytes used) series, over [t0, t1].
   */
  draw(host, times, cpu, mem, t0, t1) {
    const tile = this.tiles.get(host.key);
    if (!tile) return;
    tile.stale = false;
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
    const tile = this.tiles.get(host.key);
    if (!tile) return;
    tile.el.dataset.state = host.state;
    set(tile, 'badge', BADGES[host.state] ?? '');
  }

  /** Shows a host's newest note on its tile (or none), in place of its load. */
  setNote(key, note) {
    const tile = this.tiles.get(key);
    if (!tile) return;
    const line = note ? noteLine(note) : '';
    if (tile.shown.note === line) return;
    set(tile, 'note', line);
    tile.note.hidden = !note;
    tile.note.title = note ? `${line} (${fmt.clock(note.t)})` : '';
    tile.el.dataset.note = note?.kind ?? '';
  }

  /** Marks the busiest hosts: `ranked` keys, busiest first (only the tiles marked before or now are touched). */
  setBusiest(ranked) {
    for (const key of this.ranked ?? []) {
      const tile = this.tiles.get(key);
      if (tile) delete tile.el.dataset.rank;
    }
    ranked.forEach((key, i) => {
      const tile = this.tiles.get(key);
      if (tile) tile.el.dataset.rank = String(i + 1);
    });
    this.ranked = ranked;
  }

  /** Shows the alerts firing on host `key` (`[{measure, alert}]`): a triangle and the measures, in words. */
  setAlerts(key, firing) {
    const tile = this.tiles.get(key);
    if (!tile) return;
    const text = firing.length ? `▲ ${firing.map((f) => MEASURES[f.measure].label).join(' · ')}` : '';
    if (tile.shown.alert === text) return;
    set(tile, 'alert', text);
    tile.alert.hidden = !text;
    tile.alert.title = firing.map((f) => `${f.alert.rule}, since ${fmt.dateTime(f.alert.began)}`).join('\n');
    tile.el.dataset.alert = firing.map((f) => f.measure).join(' ');
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

  /** Updates the "12 s ago" of the tiles on screen. */
  tickAges(hosts, now) {
    for (const host of hosts) {
      const tile = this.tiles.get(host.key);
      if (tile?.onscreen) set(tile, 'age', host.state === 'silent' ? fmt.ago(host.t, now) : '');
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
