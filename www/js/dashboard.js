// The dashboard: one client for the overview (every host, few fields), one for the hosts' notes, the views they
// feed, and the URL state they follow. Drawing happens in animation frames only: the client's onChange (already in a frame) and our own frames
// for work left over, each measured by the FrameMeter. A frame draws only the tiles whose windows changed and that
// are on screen, and stops after BUDGET_MS, leaving the rest to the next frame, so a burst of 200 hosts never
// blocks one frame.
import { connect, hostNamer } from './connection.js';
import { FrameMeter, frameScheduler } from './frames.js';
import { HostBook, memPercent } from './hosts.js';
import { Overview } from './overview.js';
import { SeriesCache } from './series-cache.js';
import { FleetPanel } from './fleet.js';
import { HostDetail } from './host.js';
import { StatusView } from './status.js';
import { Controls, readHash, writeHash, filterMatcher } from './controls.js';
import { Annotations } from './annotations.js';

/** What the overview's client aggregates: the fleet strip's fields. */
export const OVERVIEW_FIELDS = ['cpu.total', 'mem.used'];
/** Tile work per frame before the rest waits for the next one. */
const BUDGET_MS = 5;
/** How many of the busiest hosts are marked. */
const BUSIEST = 5;
/** A live session that brings no change for this long has an empty snapshot. */
const SNAPSHOT_SETTLE_MS = 1500;

export class Dashboard {
  /** Connects and starts drawing. `windowFallback`: the ?window= of the page's URL; `notesKey`: its ?notes=. */
  static async start({ patterns, token, windowFallback, notesKey }) {
    const state = readHash(windowFallback);
    const client = await connect({ patterns, window: state.window, fields: OVERVIEW_FIELDS, token });
    const notes = await Annotations.start({ key: notesKey, token });
    return new Dashboard(client, { patterns, token, state, windowFallback, notes });
  }

  constructor(client, { patterns, token, state, windowFallback, notes }) {
    const $ = (id) => document.getElementById(id);
    this.client = client;
    this.patterns = patterns;
    this.windowFallback = windowFallback;
    this.meter = new FrameMeter();
    this.book = new HostBook(hostNamer(patterns));
    this.hosts = [];
    this.shownHosts = [];
    this.dirty = new Set();
    this.busiest = '';
    this.status = new StatusView($('status'), $('progress'));
    this.overview = new Overview($('tiles'), (keys) => {
      for (const key of keys) this.dirty.add(key);
      this.schedule();
    });
    this.fleet = new FleetPanel($('fleet'));
    this.notes = notes;
    notes.onChange((hosts) => this.meter.measure(() => {
      for (const name of hosts) this.overview.setNote(this.keyOf(name), notes.latest(name));
    }));
    this.detail = new HostDetail($('detail'), { meter: this.meter, status: this.status, token, notes });
    this.controls = new Controls(
      { filter: $('filter'), window: $('window'), above: $('above') },
      (change) => this.navigate(change),
    );
    this.views = { overview: $('overview'), empty: $('empty') };
    this.schedule = frameScheduler(() => this.meter.measure(() => this.frame()));
    this.state = {};
    this.awaitingSnapshot = true;
    this.apply(state);

    this.status.set(client.status);
    this.status.loading('snapshot', 'Connecting…');
    client.onStatus((status) => this.onStatus(status));
    client.onChange((change) => this.meter.measure(() => this.onChange(change)));
    setInterval(() => requestAnimationFrame(() => this.meter.measure(() => this.tick())), 1000);
    window.addEventListener('hashchange', () => this.apply(readHash(this.windowFallback)));
    this.bindKeys();
    document.body.addEventListener('click', (e) => this.onClick(e));
  }

  get frameTimes() {
    return this.meter.frameTimes;
  }

  onStatus(status) {
    this.status.set(status);
    document.body.dataset.connection = status;
    clearTimeout(this.settle);
    if (status !== 'live') this.awaitingSnapshot = true;
    if (status === 'live') {
      this.status.loading('snapshot', this.book.loadedAt === null ? 'Loading snapshot…' : 'Catching up…');
      this.settle = setTimeout(() => this.snapshotIn(), SNAPSHOT_SETTLE_MS);
    } else {
      this.status.loading('snapshot', status === 'offline' ? null : `${status[0].toUpperCase()}${status.slice(1)}…`);
    }
  }

  /** The session's first windows are in (or it has settled empty). */
  snapshotIn() {
    clearTimeout(this.settle);
    this.awaitingSnapshot = false;
    this.status.loading('snapshot', null);
    this.relist();
    this.book.loaded(Date.now());
    this.views.empty.hidden = this.hosts.length > 0;
  }

  onChange(change) {
    let relist = false;
    for (const key of change.keys) {
      this.dirty.add(key);
      if (!this.book.get(key) || this.client.len(key) === 0) relist = true;
    }
    if (relist) this.relist();
    if (this.awaitingSnapshot && change.status === 'live') this.snapshotIn();
    this.frame();
  }

  /** Re-reads the client's keys: hosts appeared or went away. */
  relist() {
    const now = Date.now();
    if (!this.book.syncKeys(this.client.keys(), now)) return;
    this.hosts = this.book.list();
    this.views.empty.hidden = this.hosts.length > 0;
    this.showTiles();
  }

  showTiles() {
    const matches = filterMatcher(this.state.filter);
    this.shownHosts = this.hosts.filter((h) => matches(h.name));
    this.overview.show(this.shownHosts);
    for (const host of this.shownHosts) this.overview.setNote(host.key, this.notes.latest(host.name));
    document.getElementById('shown').textContent =
      this.state.filter ? `${this.shownHosts.length} of ${this.hosts.length} hosts` : `${this.hosts.length} hosts`;
  }

  /** Updates the hosts whose windows changed, within the frame's budget, then what depends on all of them. */
  frame() {
    // Behind the host detail the overview waits: its hosts stay dirty until it shows again.
    if (this.state.host) return;
    const start = performance.now();
    const now = Date.now();
    let updated = 0;
    for (const key of this.dirty) {
      if (updated > 0 && performance.now() - start > BUDGET_MS) {
        this.schedule();
        break;
      }
      this.dirty.delete(key);
      if (this.update(key)) updated += 1;
    }
    if (!updated) return;
    for (const host of this.book.refreshStates(now)) this.overview.setState(host);
    this.markBusiest();
    this.fleet.update(this.client, this.hosts, this.state.above);
  }

  /** Reads a host's newest numbers and, if its tile is on screen, draws it. */
  update(key) {
    const host = this.book.get(key);
    if (!host) return false;
    const { client } = this;
    const sample = client.latest(key);
    if (!sample) return false;
    host.t = sample.t ?? NaN;
    host.cpu = num(sample.cpu?.total);
    host.memUsed = num(sample.mem?.used);
    host.memTotal = num(sample.mem?.total);
    host.load1 = num(sample.load?.[0]);
    this.overview.setHot(host, host.cpu > this.state.above);
    if (this.overview.onscreen(key)) {
      host.series ??= new SeriesCache(['cpu.total', 'mem.used']);
      const { times, values: [cpu, mem] } = host.series.read(client, key, sample);
      host.t = times[times.length - 1];
      const t0 = host.t - this.state.window * 1000;
      this.overview.draw(host, times, cpu, mem, t0, host.t);
    } else {
      this.overview.markStale(key);
    }
    return true;
  }

  markBusiest() {
    const ranked = this.hosts
      .filter((h) => (h.state === 'live' || h.state === 'new') && h.cpu > 0)
      .sort((a, b) => b.cpu - a.cpu)
      .slice(0, BUSIEST)
      .map((h) => h.key);
    const id = ranked.join('\n');
    if (id === this.busiest) return;
    this.busiest = id;
    this.overview.setBusiest(ranked);
  }

  /** Once a second: states (a host goes silent without any change), ages, the fleet's counts. */
  tick() {
    const now = Date.now();
    // Offline, the page cannot tell a silent host from a lost connection: states wait for the stream. Behind the
    // host detail, hosts are not read (see frame), so their states wait too.
    if (this.client.status === 'live' && !this.state.host) {
      const changed = this.book.refreshStates(now);
      for (const host of changed) this.overview.setState(host);
      if (changed.length) {
        this.markBusiest();
        this.fleet.update(this.client, this.hosts, this.state.above);
      }
    }
    this.overview.tickAges(this.shownHosts, now);
    this.detail.tick(now);
  }

  /** A change the user made: a new history entry when it opens or leaves a host, else the same one. */
  navigate(change) {
    const state = { ...this.state, ...change };
    writeHash(state, { push: state.host !== this.state.host });
    this.apply(state);
  }

  /** Makes the page show `state` (from the URL or the controls). */
  apply(state) {
    const before = this.state;
    this.state = state;
    this.controls.show(state);
    if (state.window !== before.window && before.window !== undefined) {
      this.client.setWindow(state.window);
      this.awaitingSnapshot = true;
      this.status.loading('snapshot', 'Loading snapshot…');
    }
    if (state.filter !== before.filter) this.showTiles();
    if (state.above !== before.above && before.above !== undefined) {
      for (const host of this.hosts) this.overview.setHot(host, host.cpu > state.above);
      this.fleet.update(this.client, this.hosts, state.above);
    }
    if (state.host) {
      const key = this.keyOf(state.host);
      this.views.overview.hidden = true;
      document.body.dataset.view = 'host';
      document.title = `${state.host} — Replicast`;
      this.detail.open(key, state.host, state.window);
    } else if (before.host || before.host === undefined) {
      this.detail.close();
      this.views.overview.hidden = false;
      document.body.dataset.view = 'overview';
      document.title = 'Replicast — fleet';
      this.schedule();
      if (before.host) this.overview.tiles.get(this.keyOf(before.host))?.el.focus({ preventScroll: false });
    }
  }

  /** The key of a host name: the known host's, else the first pattern's prefix and the name. */
  keyOf(name) {
    const known = this.hosts.find((h) => h.name === name);
    if (known) return known.key;
    const prefix = this.patterns[0].slice(0, Math.max(0, this.patterns[0].search(/[*?[\\]/)));
    return `${prefix}${name}`;
  }

  onClick(e) {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const link = e.target.closest('a[data-host], a[data-nav]');
    if (!link) return;
    e.preventDefault();
    if (link.dataset.nav === 'overview') this.navigate({ host: '' });
    else if (link.dataset.nav === 'prev') this.step(-1);
    else if (link.dataset.nav === 'next') this.step(1);
    else this.navigate({ host: link.dataset.host });
  }

  /** The previous or next host of the (filtered) overview, from the detail view. */
  step(by) {
    const list = this.shownHosts.length ? this.shownHosts : this.hosts;
    if (!list.length) return;
    const at = list.findIndex((h) => h.name === this.state.host);
    const next = list[(at + by + list.length) % list.length];
    this.navigate({ host: next.name });
  }

  bindKeys() {
    document.addEventListener('keydown', (e) => {
      if (e.metaKey || e.ctrlKey || e.altKey) return;
      const typing = e.target.closest('input, select, textarea');
      if (e.key === '/' && !typing) {
        e.preventDefault();
        document.getElementById('filter').focus();
      } else if (e.key === 'Escape' && !typing && this.state.host) {
        this.navigate({ host: '' });
      } else if (this.state.host && !typing && (e.key === 'ArrowLeft' || e.key === 'k')) {
        this.step(-1);
      } else if (this.state.host && !typing && (e.key === 'ArrowRight' || e.key === 'j')) {
        this.step(1);
      }
    });
  }
}

const num = (v) => (typeof v === 'number' ? v : NaN);
