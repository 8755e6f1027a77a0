// What the user chose, kept in the URL's fragment so that every view is a link and survives a reload:
// `#host=web-01&filter=web&window=10m&sort=cpu&group=role&tz=utc&cpu=90/1m&load=off`. The header's controls and the
// alert rules write it; the page follows it.
import * as fmt from './format.js';
import { DEFAULT_RULES, parseRule, ruleToken } from './alerts.js';

/** Window durations offered, in ms. */
export const WINDOWS = [60_000, 120_000, 300_000, 600_000, 1_800_000, 3_600_000];
/** How tiles can be ordered: by name, or busiest first by a measure. */
export const SORTS = { name: 'name', cpu: 'CPU', mem: 'memory', load: 'load' };
/** How tiles can be grouped: not at all, or by role. */
export const GROUPS = { '': 'none', role: 'role' };
/** Zones times are shown in. */
export const ZONES = { local: 'local', utc: 'UTC' };

export const DEFAULTS = Object.freeze({
  host: '', filter: '', window: 120_000, sort: 'name', group: '', tz: 'local', rules: DEFAULT_RULES,
});

const oneOf = (choices, value, fallback) => (value !== null && Object.hasOwn(choices, value) ? value : fallback);

/** The state in `location.hash`, with defaults for what it lacks (`fallbackWindow`: from ?window=, in ms). */
export function readHash(fallbackWindow = DEFAULTS.window) {
  const params = new URLSearchParams(location.hash.slice(1));
  const window = fmt.parseDuration(params.get('window'));
  const rules = {};
  for (const measure of Object.keys(DEFAULT_RULES)) rules[measure] = parseRule(measure, params.get(measure));
  // `above=N`, from before the rules: the CPU threshold.
  if (!params.has('cpu') && params.has('above')) rules.cpu = parseRule('cpu', params.get('above'));
  return {
    host: params.get('host') ?? '',
    filter: params.get('filter') ?? '',
    window: window > 0 ? window : fallbackWindow,
    sort: oneOf(SORTS, params.get('sort'), DEFAULTS.sort),
    group: oneOf(GROUPS, params.get('group'), DEFAULTS.group),
    tz: oneOf(ZONES, params.get('tz'), DEFAULTS.tz),
    rules,
  };
}

/** Writes `state` to the fragment, leaving out defaults. `push`: a new history entry (opening a host). */
export function writeHash(state, { push = false } = {}) {
  const params = new URLSearchParams();
  if (state.host) params.set('host', state.host);
  if (state.filter) params.set('filter', state.filter);
  if (state.window !== DEFAULTS.window) params.set('window', fmt.durationToken(state.window));
  if (state.sort !== DEFAULTS.sort) params.set('sort', state.sort);
  if (state.group !== DEFAULTS.group) params.set('group', state.group);
  if (state.tz !== DEFAULTS.tz) params.set('tz', state.tz);
  for (const [measure, rule] of Object.entries(state.rules)) {
    const token = ruleToken(measure, rule);
    if (token !== null) params.set(measure, token);
  }
  const hash = params.toString().replaceAll('%2F', '/');
  const url = `${location.pathname}${location.search}${hash ? `#${hash}` : ''}`;
  if (url === `${location.pathname}${location.search}${location.hash}`) return;
  if (push) history.pushState(null, '', url);
  else history.replaceState(null, '', url);
}

/** Binds the header's controls: `onInput(partialState)` when the user changes one. */
export class Controls {
  constructor({ filter, window, sort, group, tz }, onInput) {
    this.filter = filter;
    this.window = window;
    this.sort = sort;
    this.group = group;
    this.tz = tz;
    fillSelect(window, WINDOWS.map((ms) => [String(ms), fmt.duration(ms)]));
    fillSelect(sort, Object.entries(SORTS));
    fillSelect(group, Object.entries(GROUPS));
    fillSelect(tz, Object.entries(ZONES));
    filter.addEventListener('input', () => onInput({ filter: filter.value.trim() }));
    window.addEventListener('change', () => onInput({ window: Number(window.value) }));
    sort.addEventListener('change', () => onInput({ sort: sort.value }));
    group.addEventListener('change', () => onInput({ group: group.value }));
    tz.addEventListener('change', () => onInput({ tz: tz.value }));
    filter.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        filter.value = '';
        onInput({ filter: '' });
        filter.blur();
      }
    });
  }

  /** Shows `state` in the controls (after a URL change). */
  show(state) {
    if (this.filter.value.trim() !== state.filter) this.filter.value = state.filter;
    ensureOption(this.window, String(state.window), fmt.duration(state.window));
    this.window.value = String(state.window);
    this.sort.value = state.sort;
    this.group.value = state.group;
    this.tz.value = state.tz;
  }
}

function fillSelect(select, entries) {
  for (const [value, label] of entries) select.add(new Option(label, value));
}

/** A value from the URL that is not among the offered ones still shows. */
function ensureOption(select, value, label) {
  if (![...select.options].some((o) => o.value === value)) select.add(new Option(label, value));
}

/** Whether a host name passes the filter: every space-separated word is in it (case-insensitive). */
export function filterMatcher(filter) {
  const words = filter.toLowerCase().split(/\s+/).filter(Boolean);
  return (name) => {
    const n = name.toLowerCase();
    return words.every((w) => n.includes(w));
  };
}
