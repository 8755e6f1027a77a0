// Draws an RDB summary (the JSON of `replicast rdb --stats`, docs/RDB.md) as the inspector's panels: the file,
// types, databases, encodings, expiries, the key-prefix tree, the biggest keys, functions and modules. Every
// figure's element carries its exact number in `data-value`; names from the file only ever go in as text.

import { bytes as formatBytes, dateTime } from '../format.js';

/** Prefix-tree levels opened when the report is drawn. */
const OPEN_LEVELS = 1;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  node.append(...children.filter((c) => c !== undefined && c !== null));
  return node;
}

/** A string of the summary: text, or `{base64}` for bytes that are not UTF-8. */
const text = (s) => (typeof s === 'string' ? s : `base64:${s?.base64 ?? ''}`);
const num = (field, value) => el('td', { 'data-field': field, 'data-value': String(value) }, value.toLocaleString('en'));
const size = (field, value) => el('td', { 'data-field': field, 'data-value': String(value) }, formatBytes(value));

function shareCell(value, total) {
  const share = total > 0 ? value / total : 0;
  return el('td', { class: 'share', title: `${(share * 100).toFixed(1)} %` },
    el('span', { class: 'bar', style: `width:${(share * 100).toFixed(2)}%` }));
}

function panel(id, title, ...body) {
  return el('section', { class: `panel${id === 'prefixes' || id === 'biggest' ? ' wide' : ''}`, id: `panel-${id}`, 'aria-labelledby': `h-${id}` },
    el('h2', { id: `h-${id}` }, title), ...body);
}

function table(head, rows) {
  return el('table', { class: 'figures' },
    el('thead', {}, el('tr', {}, ...head.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, ...rows));
}

/** Keys, bytes and elements of `groups` ({name: {keys, bytes, elements}}), rows by bytes. */
function tallyRows(groups, attr, total) {
  return Object.entries(groups)
    .sort((a, b) => b[1].bytes - a[1].bytes)
    .map(([name, t]) => el('tr', { [attr]: name },
      el('td', { class: 'name' }, name), num('keys', t.keys), size('bytes', t.bytes), num('elements', t.elements),
      shareCell(t.bytes, total)));
}

function fileFacts(summary, name) {
  const facts = [
    ['File', name],
    ['Size', formatBytes(summary.bytes), summary.bytes],
    ['Format', `${summary.flavor ?? '?'} RDB ${summary.rdb_version}`, summary.rdb_version],
    ['Checksum', summary.checksum],
    ['Keys', summary.keys.toLocaleString('en'), summary.keys],
    ['Keys’ RDB bytes', formatBytes(summary.prefixes.bytes), summary.prefixes.bytes],
    ['Written by', summary.aux['redis-ver'] ? `Redis ${summary.aux['redis-ver']}` : summary.aux['valkey-ver'] ? `Valkey ${summary.aux['valkey-ver']}` : '–'],
    ['Saved', summary.aux.ctime ? dateTime(Number(summary.aux.ctime) * 1000) : '–'],
    ['Memory when saved', summary.aux['used-mem'] ? formatBytes(Number(summary.aux['used-mem'])) : '–'],
    ['Empty keys skipped', summary.skipped_empty_keys.toLocaleString('en'), summary.skipped_empty_keys],
  ];
  return el('dl', { class: 'facts' }, ...facts.flatMap(([label, shown, value]) => [
    el('dt', {}, label),
    el('dd', { 'data-fact': label, 'data-value': value === undefined ? undefined : String(value), class: label === 'Checksum' ? `checksum-${shown}` : undefined }, shown),
  ]));
}

function byType(summary) {
  const types = {};
  for (const db of Object.values(summary.dbs)) {
    for (const [type, t] of Object.entries(db)) {
      const sum = (types[type] ??= { keys: 0, bytes: 0, elements: 0 });
      sum.keys += t.keys;
      sum.bytes += t.bytes;
      sum.elements += t.elements;
    }
  }
  return types;
}

function databases(summary) {
  const total = summary.prefixes.bytes;
  const rows = Object.entries(summary.dbs).map(([db, types]) => {
    const t = Object.values(types).reduce((s, x) => ({ keys: s.keys + x.keys, bytes: s.bytes + x.bytes }), { keys: 0, bytes: 0 });
    return el('tr', { 'data-db': db }, el('td', {}, `db ${db}`), num('keys', t.keys), size('bytes', t.bytes),
      el('td', { class: 'name' }, Object.keys(types).join(', ')), shareCell(t.bytes, total));
  });
  return table(['Database', 'Keys', 'RDB bytes', 'Types', 'Share'], rows);
}

function encodings(summary) {
  const total = summary.prefixes.bytes;
  const rows = Object.entries(summary.encodings).flatMap(([type, encs]) => Object.entries(encs).map(([enc, t]) =>
    el('tr', { 'data-encoding': `${type}/${enc}` }, el('td', {}, `${type} · ${enc}`), num('keys', t.keys), size('bytes', t.bytes),
      num('elements', t.elements), shareCell(t.bytes, total))));
  return table(['Type · encoding', 'Keys', 'RDB bytes', 'Elements', 'Share'], rows);
}

const TTL_NAMES = {
  none: 'no expiry', expired: 'expired', under_1h: 'under 1 hour', under_1d: 'under 1 day', under_7d: 'under 7 days',
  under_30d: 'under 30 days', later: '30 days or more', unknown: 'has expiry (no time to measure from)',
};

function ttl(summary) {
  const total = summary.prefixes.keys;
  const rows = Object.keys(TTL_NAMES).filter((bucket) => summary.ttl[bucket]).map((bucket) => [bucket, summary.ttl[bucket]]).map(([bucket, t]) => el('tr', { 'data-ttl': bucket },
    el('td', {}, TTL_NAMES[bucket] ?? bucket), num('keys', t.keys), size('bytes', t.bytes), shareCell(t.keys, total)));
  const from = summary.ttl_reference_ms === null ? 'no time' : `${dateTime(summary.ttl_reference_ms)} (${summary.aux.ctime ? 'when the file was saved' : 'now'})`;
  return [table(['Time to expiry', 'Keys', 'RDB bytes', 'Share of keys'], rows), el('p', { class: 'muted' }, `Measured from ${from}.`)];
}

function prefixNode(node, total, depth) {
  const label = depth === 0 ? '(all keys)' : text(node.prefix);
  const details = el('details', { 'data-prefix': text(node.prefix), 'data-keys': String(node.keys), 'data-bytes': String(node.bytes) },
    el('summary', {}, el('span', { class: 'prefix' }, label), el('span', { class: 'num' }, `${node.keys.toLocaleString('en')} keys`),
      el('span', { class: 'num' }, formatBytes(node.bytes)),
      el('span', { class: 'num muted' }, `${total > 0 ? ((node.bytes / total) * 100).toFixed(1) : '0.0'} %`)));
  if (depth < OPEN_LEVELS) details.open = true;
  for (const child of node.children) details.append(prefixNode(child, total, depth + 1));
  if (node.unlisted_keys > 0 && node.children.length > 0) {
    details.append(el('div', { class: 'leaf' }, `${node.unlisted_keys.toLocaleString('en')} keys (${formatBytes(node.unlisted_bytes)}) in no listed prefix below`));
  }
  return details;
}

function biggest(summary) {
  const rows = summary.biggest_keys.map((k) => el('tr', {},
    el('td', {}, `${k.db}`), el('td', { class: 'key' }, text(k.key)), el('td', { class: 'name' }, `${k.type} · ${k.encoding}`),
    size('bytes', k.bytes), num('elements', k.elements), el('td', {}, k.expire_ms === null ? '–' : dateTime(k.expire_ms))));
  return table(['db', 'Key', 'Type · encoding', 'RDB bytes', 'Elements', 'Expires'], rows);
}

function functionsAndModules(summary) {
  const libs = Object.entries(summary.function_libraries);
  const modules = Object.entries(summary.modules);
  return [
    el('p', { 'data-fact': 'functions', 'data-value': String(summary.functions) },
      `${summary.functions} function ${summary.functions === 1 ? 'library' : 'libraries'}${libs.length ? ': ' : ''}`,
      ...libs.map(([name, n], i) => el('code', {}, `${i ? ', ' : ''}${name}${n > 1 ? ` ×${n}` : ''}`))),
    modules.length
      ? table(['Module type', 'Keys', 'Aux fields'], modules.map(([name, m]) => el('tr', { 'data-module': name },
        el('td', { class: 'name' }, name), num('keys', m.keys), num('aux', m.aux))))
      : el('p', { class: 'muted' }, 'No module data.'),
  ];
}

/** Replaces `container`'s content with the report of `summary`, read from the file `name`. */
export function renderReport(container, summary, name) {
  const json = new Blob([JSON.stringify(summary, null, 2)], { type: 'application/json' });
  const save = el('a', { id: 'save-json', href: URL.createObjectURL(json), download: `${name}.stats.json` }, 'Save the summary as JSON');
  const total = summary.prefixes.bytes;
  container.replaceChildren(
    panel('file', 'The file', fileFacts(summary, name), save),
    panel('types', 'By type', table(['Type', 'Keys', 'RDB bytes', 'Elements', 'Share'], tallyRows(byType(summary), 'data-type', total))),
    panel('dbs', 'Databases', databases(summary)),
    panel('encodings', 'Encodings', encodings(summary)),
    panel('ttl', 'Expiry', ...ttl(summary)),
    panel('functions', 'Functions and modules', ...functionsAndModules(summary)),
    panel('prefixes', 'By key prefix', el('p', { class: 'muted' },
      'RDB bytes are the size each key takes in the file: an estimate of its memory (compact encodings take about as much; hash tables and skip lists more).'),
    el('div', { class: 'tree' }, prefixNode(summary.prefixes, total, 0))),
    panel('biggest', `Biggest keys (${summary.biggest_keys.length})`, biggest(summary)),
  );
}
