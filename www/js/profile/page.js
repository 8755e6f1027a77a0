// The write profile page: reads the relay's `/profile` (server/src/profile) once a second and shows the last whole
// window (or the one being filled, before the first ends) as rates, and the totals since the relay started. The
// relay's token, if it needs one, comes from this page's own `?token=`, as for the dashboard.

import { bytes as formatBytes } from '../format.js';

const POLL_MS = 1000;

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

const perSecond = (n, seconds) => (seconds > 0 ? n / seconds : 0);
const rate = (n) => (n >= 100 ? n.toFixed(0) : n.toFixed(1));

function table(head, rows) {
  return el('table', { class: 'figures' },
    el('thead', {}, el('tr', {}, ...head.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, ...rows));
}

function panel(id, title, ...body) {
  return el('section', { class: 'panel', id: `panel-${id}`, 'aria-labelledby': `h-${id}` }, el('h2', { id: `h-${id}` }, title), ...body);
}

function share(value, total) {
  const s = total > 0 ? Math.min(1, value / total) : 0;
  return el('td', { class: 'share' }, el('span', { class: 'bar', style: `width:${(s * 100).toFixed(2)}%` }));
}

function hitters(list, measure, seconds, unit) {
  const top = list[0]?.[measure] ?? 0;
  return table(['Name', `${unit}/s`, 'Total', ''], list.map((h) => el('tr', { 'data-name': h.name, 'data-value': String(h[measure]) },
    el('td', { class: 'key' }, h.name),
    el('td', {}, measure === 'bytes' ? `${formatBytes(perSecond(h.bytes, seconds))}/s` : rate(perSecond(h[measure], seconds))),
    el('td', { title: h.error ? `counted since it entered the summary; up to ${h.error} may be other names'` : undefined },
      `${measure === 'bytes' ? formatBytes(h[measure]) : h[measure].toLocaleString('en')}${h.error ? ' ≈' : ''}`),
    share(h[measure], top))));
}

function windowPanels(w, label) {
  const s = w.seconds;
  const commands = Object.entries(w.commands).sort((a, b) => b[1] - a[1]);
  const total = commands.reduce((t, [, n]) => t + n, 0) + w.other_commands;
  if (w.other_commands) commands.push(['(other names)', w.other_commands]);
  return [
    panel('rates', `Rates — ${label}`, el('dl', { class: 'facts' },
      el('dt', {}, 'Commands/s'), el('dd', { 'data-fact': 'commands' }, rate(perSecond(total, s))),
      el('dt', {}, 'Stream bytes/s'), el('dd', {}, `${formatBytes(perSecond(w.bytes, s))}/s`),
      el('dt', {}, 'Key writes/s'), el('dd', {}, rate(perSecond(w.key_writes, s))),
      el('dt', {}, 'Hidden key writes/s'), el('dd', { 'data-fact': 'hidden' }, rate(perSecond(w.hidden.key_writes, s))),
      el('dt', {}, 'Keys deleted/s'), el('dd', {}, rate(perSecond(Object.values(w.deleted_keys).reduce((a, b) => a + b, 0), s))))),
    panel('commands', 'Commands', table(['Command', '/s', 'Count', ''], commands.map(([name, n]) => el('tr', { 'data-command': name, 'data-value': String(n) },
      el('td', { class: 'name' }, name), el('td', {}, rate(perSecond(n, s))), el('td', {}, n.toLocaleString('en')), share(n, total))))),
    panel('keys-writes', 'Hottest keys by writes', hitters(w.keys.by_writes, 'writes', s, 'writes')),
    panel('keys-bytes', 'Hottest keys by bytes', hitters(w.keys.by_bytes, 'bytes', s, 'bytes')),
    panel('prefixes-writes', 'Hottest prefixes by writes', hitters(w.prefixes.by_writes, 'writes', s, 'writes')),
    panel('prefixes-bytes', 'Hottest prefixes by bytes', hitters(w.prefixes.by_bytes, 'bytes', s, 'bytes')),
    panel('multi', 'MULTI blocks', el('p', {}, `${w.multi.blocks.toLocaleString('en')} blocks, ${w.multi.commands.toLocaleString('en')} commands, the largest ${w.multi.largest}`),
      table(['Commands in a block', 'Blocks'], w.multi.sizes.map((b) => el('tr', {}, el('td', {}, b.to === null ? `${b.from} or more` : b.from === b.to ? `${b.from}` : `${b.from}–${b.to}`), el('td', {}, b.blocks.toLocaleString('en')))))),
    panel('deletes', 'Deleted keys', table(['Command', 'Keys', '/s'], Object.entries(w.deleted_keys).map(([name, n]) => el('tr', { 'data-delete': name, 'data-value': String(n) },
      el('td', {}, name.toUpperCase()), el('td', {}, n.toLocaleString('en')), el('td', {}, rate(perSecond(n, s)))))),
    el('p', { class: 'muted' }, 'These include the keys Redis expired or evicted: a primary sends each as a DEL (UNLINK with lazyfree-lazy-expire or lazyfree-lazy-eviction), which the stream does not tell from a client’s.')),
  ];
}

async function poll() {
  const token = new URLSearchParams(location.search).get('token');
  const url = token ? `profile?token=${encodeURIComponent(token)}` : 'profile';
  try {
    const response = await fetch(url, { cache: 'no-store' });
    if (!response.ok) throw new Error(`the relay answered ${response.status}: ${(await response.text()).trim()}`);
    const profile = await response.json();
    const [w, label] = profile.previous ? [profile.previous, `the last ${profile.window_seconds} s`] : [profile.current, `the last ${profile.current.seconds.toFixed(0)} s`];
    const all = profile.since_start;
    $('profile').replaceChildren(...windowPanels(w, label),
      panel('totals', 'Since the relay started', el('dl', { class: 'facts' },
        el('dt', {}, 'Seconds'), el('dd', {}, all.seconds.toFixed(0)),
        el('dt', {}, 'Key writes'), el('dd', { 'data-fact': 'total-writes', 'data-value': String(all.key_writes) }, all.key_writes.toLocaleString('en')),
        el('dt', {}, 'Hidden key writes'), el('dd', { 'data-fact': 'total-hidden', 'data-value': String(all.hidden.key_writes) }, all.hidden.key_writes.toLocaleString('en')),
        el('dt', {}, 'Stream bytes'), el('dd', {}, formatBytes(all.bytes)))));
    $('profile-error').hidden = true;
    $('profile-status').textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.state = 'live';
  } catch (err) {
    $('profile-error').textContent = `Cannot read the profile: ${err.message}`;
    $('profile-error').hidden = false;
    document.body.dataset.state = 'failed';
  }
  setTimeout(poll, POLL_MS);
}

poll();
