// The fleet strip: aggregates across hosts, computed by the assembler over each host's newest sample (mean and
// p95 CPU, hosts above the CPU threshold, memory in use), host counts by state, and the distribution of CPU
// across hosts as a histogram with the mean and p95 marked (each bar says its range and count on hover; the table
// under it is the text alternative).
import d3 from './d3.js';
import * as fmt from './format.js';
import { DataTable } from './data-table.js';

/** What the client answers for a field without values; its statistics are null then too. */
const NONE = { count: 0, min: null, max: null, mean: null, p95: null };
const BINS = 20;
const HIST_W = 240;
const HIST_H = 56;

export class FleetPanel {
  constructor(root) {
    this.root = root;
    this.values = new Map();
    for (const el of root.querySelectorAll('[data-stat]')) {
      this.values.set(el.dataset.stat, { value: el.querySelector('.value'), sub: el.querySelector('.sub'), shown: {} });
    }
    this.aboveLabel = root.querySelector('[data-stat="above"] .label');
    const svg = d3.select(root.querySelector('svg.dist'))
      .attr('viewBox', `0 0 ${HIST_W} ${HIST_H}`)
      .attr('preserveAspectRatio', 'none');
    const bw = HIST_W / BINS;
    this.bars = svg.append('g').selectAll('rect')
      .data(d3.range(BINS))
      .join('rect')
      .attr('x', (i) => i * bw + 1)
      .attr('width', bw - 2)
      .attr('y', HIST_H)
      .attr('height', 0);
    this.bars.append('title');
    this.counts = new Array(BINS).fill(0);
    this.table = new DataTable(root.querySelector('figure.dist'), {
      caption: 'Hosts by CPU, in bands of 5 %',
      label: 'Table of hosts by CPU',
      fill: () => this.fillTable(),
    });
    this.meanMark = svg.append('line').attr('class', 'mark mean').attr('y1', 0).attr('y2', HIST_H);
    this.p95Mark = svg.append('line').attr('class', 'mark p95').attr('y1', 0).attr('y2', HIST_H);
    this.lastCounts = '';
  }

  /**
   * @param client the Replicast client
   * @param hosts the hosts (with their newest cpu and state)
   * @param threshold CPU percent for "above"
   */
  update(client, hosts, threshold) {
    const cpu = client.fleet('cpu.total') ?? NONE;
    const mem = client.fleet('mem.used') ?? NONE;
    const above = client.fleetAbove('cpu.total', threshold);
    const states = { live: 0, new: 0, silent: 0, waiting: 0 };
    for (const h of hosts) states[h.state] += 1;
    const subs = [];
    if (states.new) subs.push(`${states.new} new`);
    if (states.silent) subs.push(`${states.silent} silent`);
    this.set('hosts', fmt.count(hosts.length), subs.join(' · ') || 'all reporting');
    this.set('mean', fmt.percent(cpu.count ? cpu.mean : NaN), cpu.count ? `min ${fmt.percent(cpu.min)}` : '');
    this.set('p95', fmt.percent(cpu.count ? cpu.p95 : NaN), cpu.count ? `max ${fmt.percent(cpu.max)}` : '');
    this.set('above', fmt.count(above), cpu.count ? `${fmt.percent((100 * above) / cpu.count)} of hosts` : '');
    this.set('mem', fmt.bytes(mem.count ? mem.mean * mem.count : NaN), mem.count ? `${fmt.bytes(mem.mean)} per host` : '');
    this.root.dataset.cpuMean = String(cpu.mean);
    this.root.dataset.cpuP95 = String(cpu.p95);
    this.root.dataset.above = String(above);
    const label = `Above ${threshold}${'\u202f'}%`;
    if (this.aboveLabel.textContent !== label) this.aboveLabel.textContent = label;

    const counts = new Array(BINS).fill(0);
    for (const h of hosts) {
      if (Number.isNaN(h.cpu)) continue;
      counts[Math.min(BINS - 1, Math.max(0, Math.floor((h.cpu / 100) * BINS)))] += 1;
    }
    const key = counts.join();
    if (key !== this.lastCounts) {
      this.lastCounts = key;
      const top = Math.max(1, ...counts);
      this.counts = counts;
      this.bars
        .attr('y', (i) => HIST_H - (counts[i] / top) * (HIST_H - 2))
        .attr('height', (i) => (counts[i] / top) * (HIST_H - 2))
        .classed('hot', (i) => (i + 1) * (100 / BINS) > threshold)
        .select('title')
        .text((i) => `${band(i)}: ${fmt.count(counts[i])} ${counts[i] === 1 ? 'host' : 'hosts'}`);
      if (this.table.open) this.fillTable();
    }
    const x = (v) => (typeof v !== 'number' || !cpu.count ? -10 : (Math.min(v, 100) / 100) * HIST_W);
    this.meanMark.attr('x1', x(cpu.mean)).attr('x2', x(cpu.mean));
    this.p95Mark.attr('x1', x(cpu.p95)).attr('x2', x(cpu.p95));
  }

  fillTable() {
    this.table.show(['CPU', 'hosts'], this.counts.map((n, i) => [band(i), fmt.count(n)]));
  }

  set(stat, value, sub) {
    const el = this.values.get(stat);
    if (el.shown.value !== value) el.value.textContent = el.shown.value = value;
    if (el.sub && el.shown.sub !== sub) el.sub.textContent = el.shown.sub = sub;
  }
}

/** The CPU band of bin `i`: "40–45 %". */
function band(i) {
  const width = 100 / BINS;
  return `${i * width}–${(i + 1) * width}\u202f%`;
}
