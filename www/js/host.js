// The host detail view (#host=<name>): CPU per core, memory, network, disk and load as line charts over the window
// (host-charts.js: crosshair, pause, zoom and pan, history), the top processes and TCP states of the newest sample,
// and the host's notes: a list, a mark on each chart, and a form to add one or to acknowledge the host
// ("investigating — Ana"). It has a client of its own, subscribed to that one key and keeping as many samples as
// the window needs at the host's own interval, so the overview's client never reads more than its tiles need;
// notes come from `Annotations`.
import d3 from './d3.js';
import { connect, exactPattern } from './connection.js';
import * as fmt from './format.js';
import { stateOf } from './hosts.js';
import { HostCharts, MAX_CORES } from './host-charts.js';
import { samplesFor } from './intervals.js';
import { noteLine } from './annotations.js';

/** What the view's client aggregates (series are read for any field). */
const FIELDS = ['cpu.total'];
/** Samples the view's client keeps at most: an hour at 250 ms, with room. */
export const MAX_DETAIL_SAMPLES = 20_000;
/** The client's window is asked again when the samples it needs differ from what it keeps by more than this. */
const RESIZE_SLACK = 0.2;

/** How long a live session may show nothing before the view says the host has no samples. */
const EMPTY_AFTER_MS = 1500;
/** Notes listed, newest first. */
const NOTES_SHOWN = 20;
/** Where the page remembers who is writing notes. */
const BY_STORAGE = 'replicast.by';

export class HostDetail {
  /**
   * @param {HTMLElement} root the view's section
   * @param {{meter: import('./frames.js').FrameMeter, status: import('./status.js').StatusView, token?: string,
   *          notes: import('./annotations.js').Annotations, pause: import('./pause.js').Pause,
   *          announce: (text: string) => void}} deps
   */
  constructor(root, { meter, status, token, notes, pause, announce }) {
    this.root = root;
    this.meter = meter;
    this.status = status;
    this.pause = pause;
    this.token = token;
    this.notes = notes;
    this.el = {
      name: root.querySelector('.host-name'),
      state: root.querySelector('.host-state'),
      meta: root.querySelector('.host-meta'),
      summary: root.querySelector('.summary'),
      empty: root.querySelector('.empty'),
      procs: d3.select(root.querySelector('.procs tbody')),
      tcp: d3.select(root.querySelector('.tcp')),
      notes: d3.select(root.querySelector('.notes')),
      form: root.querySelector('.annotate-form'),
      sendError: root.querySelector('.send-error'),
    };
    this.bindForm();
    notes.onChange((hosts) => {
      if (this.key && hosts.includes(this.name)) this.meter.measure(() => this.showNotes());
    });
    this.summary = new Map([...root.querySelectorAll('.summary [data-stat]')].map((el) => [el.dataset.stat, el]));
    this.charts = new HostCharts(root, { pause, announce });
    this.key = null;
    this.client = null;
    this.windowMs = 120_000;
    this.samples = 0;
    this.opening = 0;
    this.t = NaN;
    this.emptyTimer = 0;
  }

  /**
   * Shows host `name` (key `key`) over `windowMs`; `interval`: its sample interval if the overview knows it (else
   * the client starts as if it were 1 s and adjusts once it has seen the samples).
   */
  async open(key, name, windowMs, interval = NaN) {
    if (key === this.key && this.client) {
      if (windowMs !== this.windowMs) this.setWindow(windowMs);
      return;
    }
    this.close();
    this.root.hidden = false;
    this.key = key;
    this.name = name;
    this.windowMs = windowMs;
    this.samples = samplesFor(windowMs, interval, MAX_DETAIL_SAMPLES);
    this.t = NaN;
    this.charts.reset(key, windowMs);
    this.el.name.textContent = name;
    this.root.dataset.host = name;
    this.showState('waiting');
    this.el.meta.textContent = '';
    this.el.empty.hidden = true;
    for (const el of this.summary.values()) el.querySelector('.value').textContent = fmt.MISSING;
    this.el.procs.selectAll('tr').remove();
    this.el.tcp.selectAll('li').remove();
    this.el.sendError.textContent = '';
    this.showNotes();
    this.status.loading('detail', `Loading ${name}…`);
    const opening = ++this.opening;
    const client = await connect({ patterns: [exactPattern(key)], window: this.samples, fields: FIELDS, token: this.token });
    if (opening !== this.opening) {
      client.close();
      return;
    }
    this.client = client;
    client.onStatus((status) => {
      clearTimeout(this.emptyTimer);
      if (status !== 'live') {
        this.status.loading('detail', `Loading ${name}…`);
        return;
      }
      // A key Redis does not have gets no snapshot and no change: say so once the session has settled.
      this.emptyTimer = setTimeout(() => {
        if (this.client !== client || client.len(key) > 0) return;
        this.status.loading('detail', null);
        this.el.empty.textContent = `No samples from ${name} yet (key ${key}).`;
        this.el.empty.hidden = false;
      }, EMPTY_AFTER_MS);
    });
    client.onChange((change) => this.meter.measure(() => this.draw(change)));
  }

  /** Leaves the view and closes its client. */
  close() {
    this.opening += 1;
    clearTimeout(this.emptyTimer);
    this.client?.close();
    this.client = null;
    this.key = null;
    this.root.hidden = true;
    this.pause.setWaiting('detail', 0);
    this.status.loading('detail', null);
  }

  setWindow(windowMs) {
    this.windowMs = windowMs;
    this.charts.setWindow(windowMs);
    this.resize();
  }

  /** Asks the client for as many samples as the window needs at the host's interval, if that changed enough. */
  resize() {
    const wanted = samplesFor(this.windowMs, this.charts.interval, MAX_DETAIL_SAMPLES);
    if (!this.client || Math.abs(wanted - this.samples) <= RESIZE_SLACK * this.samples) return;
    this.samples = wanted;
    this.client.setWindow(wanted);
    this.status.loading('detail', 'Loading…');
  }

  draw(change) {
    const { client, key } = this;
    if (!client) return;
    if (!change.keys.includes(key)) return;
    this.status.loading('detail', null);
    const n = client.len(key);
    this.el.empty.hidden = n > 0;
    if (n === 0) return;

    const sample = client.latest(key) ?? {};
    const times = this.charts.read(client, key, sample);
    this.t = times[times.length - 1];
    this.resize();
    if (this.pause.paused) return;
    this.drawSample(sample, client.stats(key, 'cpu.total')?.p95);
    this.tick(Date.now());
  }

  /** The newest sample's numbers, processes and TCP states. */
  drawSample(sample, p95) {
    const { cpu = {}, mem = {}, load = [], net = {}, disk = {} } = sample;
    const coreCount = Array.isArray(cpu.cores) ? cpu.cores.length : 0;
    this.root.dataset.cpu = String(cpu.total);
    this.root.dataset.t = String(sample.t);
    const cores = coreCount > MAX_CORES ? `${MAX_CORES} of ${coreCount} cores charted` : `${coreCount} cores`;
    this.setStat('cpu', fmt.percent(cpu.total), `p95 ${fmt.percent(p95)} · ${cores}`);
    this.setStat('mem', fmt.bytes(mem.used), `of ${fmt.bytes(mem.total)} · swap ${fmt.bytes(mem.swap_used)}`);
    this.setStat('load', fmt.load(load[0]), `${fmt.load(load[1])} · ${fmt.load(load[2])}`);
    this.setStat('net', fmt.rate(net.rx), `sent ${fmt.rate(net.tx)}`);
    this.setStat('disk', fmt.rate(disk.read), `written ${fmt.rate(disk.write)}`);

    const procs = Array.isArray(sample.procs) ? sample.procs : [];
    this.el.procs.selectAll('tr')
      .data(procs, (p) => p.pid)
      .join((enter) => {
        const tr = enter.append('tr');
        tr.append('td').attr('class', 'name');
        tr.append('td').attr('class', 'num pid');
        tr.append('td').attr('class', 'num cpu');
        tr.append('td').attr('class', 'num mem');
        return tr;
      })
      .order()
      .call((tr) => {
        tr.select('.name').text((p) => p.name ?? '?').attr('title', (p) => p.name ?? '');
        tr.select('.pid').text((p) => p.pid);
        tr.select('.cpu').text((p) => fmt.percent(p.cpu));
        tr.select('.mem').text((p) => fmt.bytes(p.mem));
      });

    const tcp = Object.entries(sample.tcp ?? {}).filter(([, n]) => typeof n === 'number').sort((a, b) => b[1] - a[1]);
    const top = Math.max(1, ...tcp.map(([, n]) => n));
    this.el.tcp.selectAll('li')
      .data(tcp, (d) => d[0])
      .join((enter) => {
        const li = enter.append('li');
        li.append('span').attr('class', 'label');
        li.append('span').attr('class', 'bar').append('span');
        li.append('span').attr('class', 'num');
        return li;
      })
      .order()
      .call((li) => {
        li.attr('data-state', (d) => d[0]);
        li.select('.label').text((d) => d[0]);
        li.select('.bar span').style('width', (d) => `${(100 * d[1]) / top}%`);
        li.select('.num').text((d) => fmt.count(d[1]));
      });
  }

  /** The host's notes: the list, newest first, and a mark on every chart. */
  showNotes() {
    const notes = this.notes.notesOf(this.name);
    this.el.notes.selectAll('li')
      .data(notes.slice(-NOTES_SHOWN).reverse(), (n) => n.id)
      .join((enter) => {
        const li = enter.append('li');
        li.append('time');
        li.append('span').attr('class', 'text');
        return li;
      })
      .order()
      .attr('data-kind', (n) => n.kind)
      .call((li) => {
        li.select('time').text((n) => fmt.clock(n.t)).attr('title', (n) => fmt.dateTime(n.t))
          .attr('datetime', (n) => new Date(n.t).toISOString());
        li.select('.text').text((n) => noteLine(n));
      });
    const marks = notes.map((n) => ({ id: n.id, t: n.t, kind: n.kind, label: `${fmt.dateTime(n.t)} ${noteLine(n)}` }));
    this.charts.setMarks(marks);
  }

  /** The form under the summary: "Add note" needs a text, "Acknowledge" says "investigating" if none is given. */
  bindForm() {
    const { form, sendError } = this.el;
    const by = form.elements.by;
    by.value = localStorage.getItem(BY_STORAGE) ?? '';
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const kind = e.submitter?.value === 'ack' ? 'ack' : 'note';
      const text = form.elements.text.value.trim() || (kind === 'ack' ? 'investigating' : '');
      if (!text || !this.name) {
        sendError.textContent = 'Write a note first.';
        return;
      }
      localStorage.setItem(BY_STORAGE, by.value.trim());
      sendError.textContent = '';
      form.dataset.sending = 'true';
      try {
        await this.notes.add({ host: this.name, text, by: by.value.trim(), kind });
        form.elements.text.value = '';
      } catch (err) {
        sendError.textContent = err.message;
      } finally {
        delete form.dataset.sending;
      }
    });
  }

  setStat(stat, value, sub) {
    const el = this.summary.get(stat);
    el.querySelector('.value').textContent = value;
    el.querySelector('.sub').textContent = sub;
  }

  showState(state) {
    this.root.dataset.state = state;
    this.el.state.dataset.state = state;
    this.el.state.textContent = state;
  }

  /** Once a second: the age of the newest sample, the host's interval and its state. */
  tick(now) {
    if (!this.key) return;
    if (Number.isNaN(this.t)) return;
    const { interval } = this.charts;
    const state = stateOf({ t: this.t, interval, fresh: false, seen: 0 }, now);
    if (this.root.dataset.state !== state) this.showState(state);
    this.root.dataset.interval = String(interval);
    const every = interval > 0 ? ` · a sample every ${fmt.duration(interval)}` : '';
    const meta = `last sample ${fmt.clock(this.t)} · ${fmt.ago(this.t, now)}${every}`;
    if (this.el.meta.textContent !== meta) {
      this.el.meta.textContent = meta;
      this.el.meta.title = fmt.dateTime(this.t);
    }
  }

  /** The zone changed: everything that prints a time. */
  redrawTimes() {
    if (!this.key) return;
    this.showNotes();
    this.charts.render();
    this.tick(Date.now());
  }
}
