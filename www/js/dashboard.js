// The dashboard: one client for the overview (every host, few fields), one for the hosts' notes, the views they
// feed, and the URL state they follow. Drawing happens in animation frames only: the client's onChange (already in a
// frame) and our own frames for work left over, each measured by the FrameMeter. A frame asks the client once for
// what changed (`changes`: a row of numbers per host whose window changed since the last frame, with its new
// sample), which moves those hosts' series on in place; a host whose window changed otherwise is read whole in its
// turn. It then draws only the tiles of the hosts that changed and are on screen (the only ones in the document),
// and stops after BUDGET_MS, leaving the rest to the next frame, so a burst of 1,000 hosts never blocks one frame.
// Every host read feeds the alert rules, on
// screen or not, paused or not; what depends on all hosts (the fleet strip, the heatmap, the order of the tiles) is
// redrawn once a second.
import { connect, hostNamer } from './connection.js';
import { FrameMeter, frameScheduler } from './frames.js';
import { HostBook, arrange, roleOf } from './hosts.js';
import { Overview } from './overview.js';
import { sameTimes } from './series-cache.js';
import { HostSeries } from './host-series.js';
import { FleetPanel } from './fleet.js';
import { HostDetail } from './host.js';
import { StatusView } from './status.js';
import { Controls, readHash, writeHash, filterMatcher } from './controls.js';
import { Annotations } from './annotations.js';
import { AlertBook } from './alerts.js';
import { AlertPanel } from './alert-panel.js';
import { Heatmap } from './heatmap.js';
import { Pause } from './pause.js';
import { findHistory } from './history.js';
import { observedInterval, samplesFor } from './intervals.js';
import * as fmt from './format.js';

/** What the overview's client aggregates (the fleet strip), and so keeps as series that are cheap to read again. */
export const OVERVIEW_FIELDS = ['cpu.total', 'mem.used'];
/**
 * The rules' other fields. They are not aggregated (each aggregated field costs the client work on every sample of
 * every host) but kept as series (`aggregate.series`), so the client hands them over with the aggregated ones.
 */
const RULE_FIELDS = ['disk.read', 'disk.write', 'load.0'];
/** What a host's series hold: the aggregated fields, then the rules' others. */
const HOST_FIELDS = [...OVERVIEW_FIELDS, ...RULE_FIELDS];
/** What the client keeps as series besides the aggregated fields: the rules' others and the memory total. */
const KEPT_FIELDS = [...RULE_FIELDS, 'mem.total'];
/** A row of `client.changes()`: handle, samples, samples appended, newest time, then HOST_FIELDS and `mem.total`. */
const ROW = 4 + HOST_FIELDS.length + 1;
/** Host reads per frame before the rest wait for the next one… */
const BUDGET_MS = 5;
/** …and behind the host detail, where they only feed the alert rules, so that the detail's own frames stay light. */
const BEHIND_DETAIL_BUDGET_MS = 2;
/** How many of the busiest hosts are marked. */
const BUSIEST = 5;
/** A live session that brings no change for this long has an empty snapshot. */
const SNAPSHOT_SETTLE_MS = 1500;
/**
 * Samples the overview keeps across all hosts: 1,000 hosts × 120 samples, about 100 MB of windows in the page. A
 * window that needs more per host (an hour of 1 s samples at 1,000 hosts) is cut to the newest that fit, and the
 * page says so; the host detail, one host, keeps its whole window.
 */
export const OVERVIEW_SAMPLES = 120_000;
/**
 * The first subscription's samples per host: the newest sample for the tile's numbers and one before it for the
 * host's interval. The page does not know yet how many hosts there are or how often they write, and the join's
 * snapshot is what the first frame waits for: at 10,000 hosts a first window of 121 samples was 1.2 M samples
 * (850 MB) to send, decode and apply before any tile showed. Once the snapshot is in, `resizeOverview` asks for
 * what the window needs at the fleet's interval within OVERVIEW_SAMPLES, and the sparklines fill in.
 */
const FIRST_SAMPLES = 2;
/** The overview's window is asked again when what it needs differs from what it keeps by more than this. */
const RESIZE_SLACK = 0.2;
/**
 * Tiles sorted by a measure are ordered again this often: every second they would move under the pointer before
 * it gets to one, and moving a thousand tiles costs a layout of them all.
 */
const RESORT_MS = 5000;
/** The fleet strip is redrawn at most this often between the ticks (it reads every host: about 1 ms at 1,000). */
const FLEET_EVERY_MS = 250;
/** The alert list is redrawn at most this often between the ticks. */
const PANEL_EVERY_MS = 500;

export class Dashboard {
  /**
   * Connects and starts drawing. `windowFallback`: the ?window= of the page's URL (ms); `notesKey`: its ?notes=;
   * `history`: its ?history= (null: ask the relay's config.json).
   */
  static async start({ patterns, token, windowFallback, notesKey, history = null }) {
    const state = readHash(windowFallback);
    const samples = FIRST_SAMPLES;
    const client = await connect({ patterns, window: samples, fields: OVERVIEW_FIELDS, series: KEPT_FIELDS, token });
    const notes = await Annotations.start({ key: notesKey, token });
    const dashboard = new Dashboard(client, { patterns, token, state, windowFallback, notes, samples });
    findHistory(history).then(
      (base) => dashboard.detail.charts.setHistory(base, null),
      (err) => dashboard.detail.charts.setHistory(null, err.message),
    );
    return dashboard;
  }

  constructor(client, { patterns, token, state, windowFallback, notes, samples }) {
    const $ = (id) => document.getElementById(id);
    this.client = client;
    this.patterns = patterns;
    this.windowFallback = windowFallback;
    this.samples = samples;
    this.meter = new FrameMeter();
    this.book = new HostBook(hostNamer(patterns));
    this.hosts = [];
    this.shownHosts = [];
    /** Hosts whose series moved (or must be read whole) and that are not fed to the rules and drawn yet. */
    this.dirty = new Set();
    /** Hosts whose windows changed in a way only a whole read follows. */
    this.whole = new Set();
    /** Rows of `client.changes()` left for the next frame by this one's budget (a copy: its view lasts one call). */
    this.pendingRows = null;
    /** The hosts' keys by the handle the client gave each (`client.track`), which its rows of changes name. */
    this.tracked = [];
    this.busiest = '';
    this.newestT = NaN;
    this.status = new StatusView($('status'), $('progress'));
    this.announcer = $('announce');
    const announce = (text) => {
      this.announcer.textContent = text;
    };
    this.pause = new Pause($('pause'), $('waiting'));
    this.pause.onChange((paused) => this.paused(paused));
    this.waiting = 0;
    this.overview = new Overview($('tiles'), (keys) => this.meter.measure(() => {
      for (const key of keys) this.drawTile(this.book.get(key));
    }), (key) => {
      const host = this.book.get(key);
      return host?.series ? { times: host.series.times, values: host.series.values, memTotal: host.memTotal } : null;
    });
    this.fleet = new FleetPanel($('fleet'));
    this.heatmap = new Heatmap($('heatmap'), { open: (name) => this.navigate({ host: name }) });
    this.heatmap.announce = announce;
    this.alerts = new AlertBook(state.rules);
    this.alertsVersion = 0;
    this.alertPanel = new AlertPanel($('alerts'), { onRules: (rules) => this.navigate({ rules }) });
    this.notes = notes;
    notes.onChange((hosts) => this.meter.measure(() => {
      for (const name of hosts) this.overview.setNote(this.keyOf(name), notes.latest(name));
    }));
    this.detail = new HostDetail($('detail'), {
      meter: this.meter, status: this.status, token, notes, pause: this.pause, announce,
    });
    this.controls = new Controls(
      { filter: $('filter'), window: $('window'), sort: $('sort'), group: $('group'), tz: $('tz') },
      (change) => this.navigate(change),
    );
    this.views = { overview: $('overview'), empty: $('empty'), windowNote: $('window-note') };
    this.schedule = frameScheduler(() => this.meter.measure(() => this.frame()));
    this.state = {};
    this.awaitingSnapshot = true;
    /** The overview's window was resized and its snapshot has not brought every host's key back yet. */
    this.resized = false;
    /** The most samples a host the overview asks for: lowered when a resized window's snapshot fell behind. */
    this.sampleLimit = Infinity;
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

  /** Of each frame's work, the time spent reading the overview's client (see FrameMeter.reading). */
  get readTimes() {
    return this.meter.readTimes;
  }

  onStatus(status) {
    this.status.set(status);
    document.body.dataset.connection = status;
    clearTimeout(this.settle);
    if (status !== 'live') this.awaitingSnapshot = true;
    if (status === 'resyncing' && this.resized) {
      // The resized window's snapshot took the page longer than the relay keeps of the stream (its backlog: 64 MiB
      // by default, 4 s of 10,000 hosts writing 1.7 KB a second), so it fell behind and must join again: with half
      // as many samples a host from now on, or it would fall behind the same way at every join.
      this.sampleLimit = Math.max(FIRST_SAMPLES, Math.floor(this.samples / 2));
    }
    if (status === 'live') {
      this.meter.milestone('live');
      this.status.loading('snapshot', this.book.loadedAt === null ? 'Loading snapshot…' : 'Catching up…');
      this.settle = setTimeout(() => this.snapshotIn({ settled: true }), SNAPSHOT_SETTLE_MS);
    } else {
      this.status.loading('snapshot', status === 'offline' ? null : `${status[0].toUpperCase()}${status.slice(1)}…`);
    }
  }

  /**
   * The session's windows are coming in: the loading bar goes. Hosts whose keys are gone are dropped only once the
   * session has `settled` (SNAPSHOT_SETTLE_MS after it went live), since a snapshot can take several messages and
   * a host dropped and found again would be new again; and not after the overview's window was resized until every
   * host's key is back: its snapshot brings the same keys, in parts when they are many (at 10,000 hosts the
   * relay's first part held a third of them, the rest came as top-ups over many seconds, and through a rejoin
   * when the page fell behind), and dropping the others made the page resize again for the hosts left, and again.
   */
  snapshotIn({ settled = false } = {}) {
    this.awaitingSnapshot = false;
    this.status.loading('snapshot', null);
    this.relist({ keepMissing: !settled || this.resized });
    if (settled && this.client.keys().length >= this.hosts.length) this.resized = false;
    this.book.loaded(Date.now());
    this.views.empty.hidden = this.hosts.length > 0;
  }

  onChange(change) {
    if (change.keys.length) this.meter.milestone('first-change');
    let relist = false;
    for (const key of change.keys) {
      // A key that went away is found when it is read (its window is empty); what changed in the others, by
      // `client.changes()` in frame().
      if (!this.book.get(key)) relist = true;
    }
    if (relist) this.relist();
    if (this.awaitingSnapshot && change.status === 'live') this.snapshotIn();
    this.frame();
  }

  /** Re-reads the client's keys: hosts appeared or went away (not while a new snapshot is on its way). */
  relist({ keepMissing = this.awaitingSnapshot } = {}) {
    const now = Date.now();
    const changed = this.book.syncKeys(this.client.keys(), now, { keepMissing });
    if (!changed) return;
    for (const key of changed.removed) {
      this.alerts.forget(key);
      this.overview.forget(key);
    }
    this.hosts = this.book.list();
    this.views.empty.hidden = this.hosts.length > 0;
    // New hosts get a handle from the client, once: it reports their changes by it from then on.
    for (const host of this.hosts) {
      if (host.handle !== undefined) continue;
      host.handle = this.meter.reading(() => this.client.track(host.key));
      this.tracked[host.handle] = host.key;
    }
    this.showTiles();
  }

  /** Filters, groups and orders the tiles as the state says. */
  showTiles() {
    this.sortedAt = Date.now();
    const matches = filterMatcher(this.state.filter);
    const groups = arrange(this.hosts.filter((h) => matches(h.name)), this.state);
    this.shownHosts = groups.flatMap((g) => g.hosts);
    const order = this.shownHosts.map((h) => h.key).join('\n');
    if (order !== this.order || groups.length !== this.groupCount) {
      this.order = order;
      this.groupCount = groups.length;
      this.overview.show(groups);
    }
    for (const host of this.shownHosts) this.overview.setNote(host.key, this.notes.latest(host.name));
    document.getElementById('shown').textContent =
      this.state.filter ? `${this.shownHosts.length} of ${this.hosts.length} hosts` : `${this.hosts.length} hosts`;
  }

  /**
   * Reads what changed in every host's window and moves their series on, then feeds the rules and draws what is on
   * screen for the hosts that changed, within the frame's budget.
   */
  frame() {
    const start = performance.now();
    const budget = this.state.host ? BEHIND_DETAIL_BUDGET_MS : BUDGET_MS;
    this.readChanges(start, budget);
    let tried = 0;
    let updated = 0;
    // The hosts on screen first: at 10,000 hosts a burst takes many frames to read, and what the user sees should
    // not wait behind hosts scrolled out of sight.
    const readWithin = (keys) => {
      for (const key of keys) {
        if (!this.dirty.has(key)) continue;
        if (tried > 0 && performance.now() - start > budget) {
          this.schedule();
          return false;
        }
        this.dirty.delete(key);
        tried += 1;
        if (this.read(key)) updated += 1;
      }
      return true;
    };
    if (this.state.host || readWithin(this.overview.boundKeys())) readWithin(this.dirty);
    if (!updated) return;
    const now = Date.now();
    // The list is redrawn at most twice a second: at 1,000 hosts, alerts begin and end in most frames.
    if (!(now - this.panelAt < PANEL_EVERY_MS)) {
      this.panelAt = now;
      this.alertPanel.show(this.alerts, this.alertsVersion);
    }
    if (this.pause.paused) {
      this.pause.setWaiting('overview', this.waiting);
      return;
    }
    if (this.state.host) return;
    // States go over every host: with the fleet strip, not in every frame.
    if (!(now - this.fleetAt < FLEET_EVERY_MS)) {
      for (const host of this.book.refreshStates(now)) this.overview.setState(host);
      this.updateFleet(now);
    }
  }

  updateFleet(now = Date.now()) {
    this.fleetAt = now;
    this.fleet.update(this.client, this.hosts, this.state.rules.cpu.above);
  }

  /**
   * One read of the client a frame, for every host: a row per host whose window changed since the last frame
   * (`client.changes()`, a view of wasm memory). A window that gained its newest sample (and maybe lost its oldest)
   * has it written into the host's series here; one that changed otherwise waits for a whole read in `read`. Both
   * are fed to the rules and drawn there, in turn. The rows are applied within the frame's budget: at 10,000 hosts
   * writing in step, one frame a second has 10,000 of them, and those left are copied and applied, in order, in the
   * next frames before the client is read again.
   */
  readChanges(start, budget) {
    if (this.pendingRows) {
      const rows = this.pendingRows;
      const at = this.applyRows(rows, start, budget);
      this.pendingRows = at < rows.length ? rows.subarray(at) : null;
      if (this.pendingRows) {
        this.schedule();
        return;
      }
    }
    const rows = this.meter.reading(() => this.client.changes());
    const at = this.applyRows(rows, start, budget);
    if (at < rows.length) {
      this.pendingRows = rows.slice(at);
      this.schedule();
    }
  }

  /** Applies `rows` until the frame's budget is spent (looked at every 64 rows); returns where it stopped. */
  applyRows(rows, start, budget) {
    let at = 0;
    for (let n = 1; at < rows.length; at += ROW, n += 1) {
      if (n % 64 === 0 && performance.now() - start > budget) break;
      this.applyRow(rows, at);
    }
    return at;
  }

  /** The row of `rows` at `at`: its host's series moved on in place, or the host marked for a whole read. */
  applyRow(rows, at) {
    const key = this.tracked[rows[at]];
    const host = this.book.get(key);
    if (!host) return;
    this.dirty.add(key);
    if (this.whole.has(key)) return;
    const length = rows[at + 1];
    const appended = rows[at + 2];
    const { series } = host;
    const drop = series ? series.length + appended - length : -1;
    if (!series || !(appended === 0 || appended === 1) || !(drop >= 0 && drop <= series.length) || !length) {
      this.whole.add(key);
      return;
    }
    series.advance(drop, appended ? rows[at + 3] : undefined, rows, at + 4);
    if (!appended) return;
    // The newest numbers: HOST_FIELDS, then `mem.total`.
    host.cpu = rows[at + 4];
    host.memUsed = rows[at + 5];
    host.diskRead = rows[at + 6];
    host.diskWrite = rows[at + 7];
    host.load1 = rows[at + 8];
    host.memTotal = rows[at + 9];
  }

  /**
   * Reads a host's whole window when it changed other than by a new sample (its series, newest numbers and role),
   * feeds its new samples to the rules, draws it. Returns whether there was anything new.
   */
  read(key) {
    const host = this.book.get(key);
    if (!host) return false;
    let reachedBack = false;
    // The client's reads, counted apart by the meter.
    const reading = (read) => this.meter.reading(read);
    if (this.whole.delete(key)) {
      const times = reading(() => this.client.times(key));
      if (!times.length) {
        this.relist();
        return false;
      }
      // The window changed in a way its times do not show (a trim past its oldest): nothing to read.
      if (host.series && sameTimes(times, host.series.times)) return false;
      const sample = reading(() => this.client.latest(key));
      if (!sample) return false;
      this.sampled(host, sample);
      const values = HOST_FIELDS.map((field) => reading(() => this.client.series(key, field)));
      host.series ??= new HostSeries(HOST_FIELDS.length);
      // The window deepened (the overview's first small one grown): samples older than those the rules were fed.
      reachedBack = times[0] < host.series.times[0];
      host.series.replace(times, values);
    } else if (host.sampleRole) {
      // A host whose samples name its role: followed in each new sample (the others' come from their names).
      const sample = reading(() => this.client.latest(key));
      if (sample) this.sampled(host, sample);
    }
    if (!host.series?.length) return false;
    const { times } = host.series;
    host.t = times[times.length - 1];
    host.interval = observedInterval(times);
    if (!(host.t <= this.newestT)) this.newestT = host.t;
    this.feedAlerts(host, { again: reachedBack });
    if (this.pause.paused) {
      let waiting = 0;
      for (let i = times.length - 1; i >= 0 && times[i] > host.frozenT; i -= 1) waiting += 1;
      this.waiting += waiting - (host.waiting ?? 0);
      host.waiting = waiting;
    } else if (!this.state.host && this.overview.onscreen(key)) {
      this.drawTile(host);
    }
    return true;
  }

  /** A host's newest numbers and role from its newest sample, parsed (`client.latest`). */
  sampled(host, sample) {
    host.cpu = num(sample.cpu?.total);
    host.memUsed = num(sample.mem?.used);
    host.memTotal = num(sample.mem?.total);
    host.diskRead = num(sample.disk?.read);
    host.diskWrite = num(sample.disk?.write);
    host.load1 = num(sample.load?.[0]);
    // The name's role is set when the host is; a `role` field in the sample overrides it.
    host.sampleRole = sample.role !== undefined;
    if (host.sampleRole) host.role = roleOf(host.name, sample);
  }

  /** Draws a host's tile from its series as last read (no call into the client). */
  drawTile(host) {
    if (!host?.series || this.pause.paused) return;
    const { times, values: [cpu, mem] } = host.series;
    const t1 = times[times.length - 1];
    this.overview.draw(host, times, cpu, mem, t1 - this.state.window, t1);
    this.meter.milestone('first-live-frame');
  }

  /**
   * The host's samples not fed yet go to the rules (from its series as last read); alerts that begin while the page
   * watches are notified. `again`: the window reaches further back than the samples fed (it deepened), so the
   * host's rules start over on all of it, and only what begins after the samples fed before is notified.
   */
  feedAlerts(host, { again = false } = {}) {
    const { times, values: [cpu, memUsed, diskRead, diskWrite, load1] } = host.series;
    const notifyAfter = host.fed ?? Infinity;
    if (again) {
      this.alerts.forget(host.key);
      host.fed = undefined;
    }
    const fed = host.fed ?? -Infinity;
    let from = times.length;
    while (from > 0 && times[from - 1] > fed) from -= 1;
    if (from === times.length) return;
    let changed = false;
    for (let i = from; i < times.length; i += 1) {
      // A host's memory total does not move with its samples: the newest one's serves for all.
      const point = {
        cpu: cpu[i], memUsed: memUsed[i], memTotal: host.memTotal, diskRead: diskRead[i], diskWrite: diskWrite[i],
        load1: load1[i],
      };
      for (const { kind, alert } of this.alerts.feed(host.key, host.name, times[i], point)) {
        changed = true;
        if (kind === 'began' && times[i] > notifyAfter) this.alertPanel.notify(alert);
      }
    }
    host.fed = times[times.length - 1];
    const firing = this.alerts.firing(host.key);
    if (changed) this.alertsVersion += 1;
    if (changed || firing.length) this.overview.setAlerts(host.key, firing);
  }

  /** The rules changed: every host's window is evaluated again, without notifying what is already past. */
  reevaluate(rules) {
    this.alerts.reset(rules);
    for (const host of this.hosts) {
      host.fed = undefined;
      if (host.series) this.feedAlerts(host);
      this.overview.setAlerts(host.key, this.alerts.firing(host.key));
    }
    this.alertsVersion += 1;
    this.alertPanel.show(this.alerts, this.alertsVersion);
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

  /** The page paused (the views keep what they show) or resumed (they draw what came meanwhile). */
  paused(paused) {
    this.waiting = 0;
    for (const host of this.hosts) {
      host.frozenT = host.t;
      host.waiting = 0;
    }
    if (paused) return;
    if (this.state.host) return;
    for (const host of this.shownHosts) if (this.overview.onscreen(host.key)) this.drawTile(host);
    this.tick();
  }

  /**
   * Once a second: states (a host goes silent without any change), ages, the busiest, the order of the tiles, the
   * fleet's counts, the heatmap, the overview's window.
   */
  tick() {
    const now = Date.now();
    this.book.refreshInterval();
    // Firing alerts' peaks move without beginning or ending: the list shows them, and what the frames left, each tick.
    if (this.alerts.firingCount()) this.alertsVersion += 1;
    this.panelAt = now;
    this.alertPanel.show(this.alerts, this.alertsVersion);
    this.detail.tick(now);
    // Offline, the page cannot tell a silent host from a lost connection: states wait for the stream. Behind the
    // host detail or paused, the overview is not drawn.
    if (this.state.host || this.pause.paused) return;
    // While a new snapshot is on its way (the overview's window resized), the hosts' newest samples wait for it:
    // they are not silent, and the client's aggregates are empty until it comes.
    if (this.client.status === 'live' && !this.awaitingSnapshot) {
      const changed = this.book.refreshStates(now);
      for (const host of changed) this.overview.setState(host);
      this.markBusiest();
      this.updateFleet(now);
      if ((this.state.sort !== 'name' || this.state.group) && !(now - this.sortedAt < RESORT_MS) && !this.userOnTiles()) {
        this.showTiles();
      }
    }
    if (this.client.status === 'live' || this.samples > this.sampleLimit) this.resizeOverview();
    this.overview.tickAges((key) => this.book.get(key), now);
    this.drawHeatmap();
  }

  /** Whether the pointer is over the tiles or one has the focus: they are not reordered under the user then. */
  userOnTiles() {
    const tiles = document.getElementById('tiles');
    return tiles.matches(':hover') || tiles.contains(document.activeElement);
  }

  drawHeatmap() {
    if (Number.isNaN(this.newestT)) return;
    const rows = this.shownHosts.map((h) => ({ key: h.key, name: h.name, series: h.series, interval: h.interval }));
    this.heatmap.draw(rows, this.newestT, this.state.window, this.book.fleetInterval);
  }

  /**
   * Keeps as many samples per host as the window needs at the fleet's interval, within OVERVIEW_SAMPLES, and says
   * when that cuts the window short.
   */
  resizeOverview() {
    if (!this.hosts.length) return;
    const interval = this.book.fleetInterval;
    const cap = Math.min(this.sampleLimit, Math.max(2, Math.floor(OVERVIEW_SAMPLES / this.hosts.length)));
    const needed = samplesFor(this.state.window, interval);
    const wanted = Math.min(needed, cap);
    const note = needed > cap && interval > 0
      ? `The overview keeps ${fmt.count(cap)} samples a host at ${fmt.count(this.hosts.length)} hosts: the newest `
        + `${fmt.duration((cap - 1) * interval)} of the ${fmt.duration(this.state.window)} window (a host's detail has it all).`
      : '';
    if (this.views.windowNote.textContent !== note) this.views.windowNote.textContent = note;
    this.views.windowNote.hidden = !note;
    // A window that fell behind is made smaller at once, without waiting for its next join's snapshot.
    const fellBehind = this.samples > this.sampleLimit;
    if ((this.awaitingSnapshot && !fellBehind) || Math.abs(wanted - this.samples) <= RESIZE_SLACK * this.samples) return;
    this.samples = wanted;
    this.client.setWindow(wanted);
    this.awaitingSnapshot = true;
    this.resized = true;
    this.status.loading('snapshot', 'Loading snapshot…');
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
    this.alertPanel.showRules(state.rules);
    if (state.tz !== before.tz) {
      fmt.setUtc(state.tz === 'utc');
      if (before.tz !== undefined) {
        this.detail.redrawTimes();
        this.alertPanel.redrawTimes(this.alerts);
        this.drawHeatmap();
      }
    }
    if (state.window !== before.window && before.window !== undefined) {
      this.detail.setWindow(state.window);
      for (const host of this.hosts) this.drawTile(host);
      this.resizeOverview();
      this.drawHeatmap();
    }
    if (state.filter !== before.filter || state.sort !== before.sort || state.group !== before.group) {
      this.showTiles();
      this.drawHeatmap();
    }
    if (before.rules !== undefined && JSON.stringify(state.rules) !== JSON.stringify(before.rules)) {
      this.reevaluate(state.rules);
      this.updateFleet();
    }
    if (state.host) {
      const key = this.keyOf(state.host);
      this.views.overview.hidden = true;
      document.body.dataset.view = 'host';
      document.title = `${state.host} — Replicast`;
      this.detail.open(key, state.host, state.window, this.book.get(key)?.interval);
    } else if (before.host || before.host === undefined) {
      this.detail.close();
      this.views.overview.hidden = false;
      document.body.dataset.view = 'overview';
      document.title = 'Replicast — fleet';
      for (const host of this.shownHosts) if (this.overview.onscreen(host.key)) this.drawTile(host);
      this.schedule();
      if (before.host) this.overview.focus(this.keyOf(before.host));
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
      if (typing) return;
      if (e.key === '/') {
        e.preventDefault();
        document.getElementById('filter').focus();
      } else if (e.key === 'p') {
        this.pause.set(!this.pause.paused);
      } else if (e.key === 'Escape' && this.state.host) {
        this.navigate({ host: '' });
      } else if (this.state.host && (e.key === 'ArrowLeft' || e.key === 'k')) {
        this.step(-1);
      } else if (this.state.host && (e.key === 'ArrowRight' || e.key === 'j')) {
        this.step(1);
      }
    });
  }
}

const num = (v) => (typeof v === 'number' ? v : NaN);
