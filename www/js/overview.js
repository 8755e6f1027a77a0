// The overview: a tile per host, in name order, with CPU and memory sparklines, the newest numbers, its state
// (new, silent), a mark on the busiest, and the host's newest note ("✓ investigating — Ana"), so a hot host that
// someone is on says so. Tiles are created once per host and updated in place; a tile scrolled
// out of view is not drawn until it comes back (IntersectionObserver), which is most of them at 200 hosts.
import d3 from './d3.js';
import { sparkPath, SPARK_W, SPARK_H } from './charts.js';
import * as fmt from './format.js';
import { memPercent } from './hosts.js';
import { noteLine } from './annotations.js';

const BADGES = { new: 'new', silent: 'silent', waiting: 'waiting' };

export class Overview {
  /**
   * @param {HTMLElement} grid
   * @param {(keys: string[]) => void} onReveal — tiles that need drawing came into view
   */
  constructor(grid, onReveal) {
    this.grid = d3.select(grid);
    /** key → the tile's elements and what they show */
    this.tiles = new Map();
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

  /** Shows a tile for each of `hosts` (already filtered and sorted), creating and removing tiles as needed. */
  show(hosts) {
    this.grid
      .selectAll('a.tile')
      .data(hosts, function key(h) { return h ? h.key : this.dataset.key; })
      .join(
        (enter) => enter.append((h) => this.create(h)),
        (update) => update,
        (exit) => exit.each((_, i, nodes) => this.forget(nodes[i])).remove(),
      )
      .order();
  }

  create(host) {
    const el = document.createElement('a');
    el.className = 'tile';
    el.href = `#host=${encodeURIComponent(host.name)}`;
    el.dataset.key = host.key;
    el.dataset.host = host.name;
    el.innerHTML = `
      <div class="tile-head"><span class="name"></span><span class="badge"></span></div>
      <div class="metric"><span class="label">CPU</span><span class="value cpu">–</span>
        <svg class="spark cpu" viewBox="0 0 ${SPARK_W} ${SPARK_H}" preserveAspectRatio="none"><path/></svg></div>
      <div class="metric"><span class="label">MEM</span><span class="value mem">–</span>
        <svg class="spark mem" viewBox="0 0 ${SPARK_W} ${SPARK_H}" preserveAspectRatio="none"><path/></svg></div>
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

  forget(el) {
    this.observer.unobserve(el);
    this.tiles.delete(el.dataset.key);
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
    tile.el.dataset.cpu = String(host.cpu);
    tile.el.dataset.t = String(host.t);
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

  /** Marks the busiest hosts: `ranked` keys, busiest first. */
  setBusiest(ranked) {
    const rank = new Map(ranked.map((key, i) => [key, i + 1]));
    for (const tile of this.tiles.values()) {
      const r = rank.get(tile.key);
      if (r) tile.el.dataset.rank = String(r);
      else if (tile.el.dataset.rank) delete tile.el.dataset.rank;
    }
  }

  /** Marks hosts whose CPU is above the threshold. */
  setHot(host, hot) {
    const tile = this.tiles.get(host.key);
    if (tile) tile.el.classList.toggle('hot', hot);
  }

  /** Updates the "12 s ago" of the tiles on screen. */
  tickAges(hosts, now) {
    for (const host of hosts) {
      const tile = this.tiles.get(host.key);
      if (tile?.onscreen) set(tile, 'age', host.state === 'silent' ? fmt.ago(host.t, now) : '');
    }
  }
}

/** Writes a text only when it differs from what the tile shows. */
function set(tile, part, text) {
  if (tile.shown[part] === text) return;
  tile.shown[part] = text;
  tile[part].textContent = text;
}
