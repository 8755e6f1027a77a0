// What the user chose, kept in the URL's fragment so that every view is a link and survives a reload:
// `#host=web-01&filter=web&window=300&above=80`. The header's controls write it; the page follows it.

/** Window lengths offered, in samples (one per second from the collector). */
export const WINDOWS = [60, 120, 300, 600];
/** CPU thresholds offered, in percent. */
export const THRESHOLDS = [50, 70, 80, 90, 95];

export const DEFAULTS = { host: '', filter: '', window: 120, above: 80 };

/** The state in `location.hash`, with defaults for what it lacks (`fallbackWindow`: from ?window=). */
export function readHash(fallbackWindow = DEFAULTS.window) {
  const params = new URLSearchParams(location.hash.slice(1));
  const window = Number.parseInt(params.get('window') ?? '', 10);
  const above = Number.parseFloat(params.get('above') ?? '');
  return {
    host: params.get('host') ?? '',
    filter: params.get('filter') ?? '',
    window: window > 0 ? window : fallbackWindow,
    above: above >= 0 ? above : DEFAULTS.above,
  };
}

/** Writes `state` to the fragment, leaving out defaults. `push`: a new history entry (opening a host). */
export function writeHash(state, { push = false } = {}) {
  const params = new URLSearchParams();
  if (state.host) params.set('host', state.host);
  if (state.filter) params.set('filter', state.filter);
  if (state.window !== DEFAULTS.window) params.set('window', String(state.window));
  if (state.above !== DEFAULTS.above) params.set('above', String(state.above));
  const hash = params.toString();
  const url = `${location.pathname}${location.search}${hash ? `#${hash}` : ''}`;
  if (url === `${location.pathname}${location.search}${location.hash}`) return;
  if (push) history.pushState(null, '', url);
  else history.replaceState(null, '', url);
}

/** Binds the header's controls: `onInput(partialState)` when the user changes one. */
export class Controls {
  constructor({ filter, window, above }, onInput) {
    this.filter = filter;
    this.window = window;
    this.above = above;
    fillSelect(window, WINDOWS, (n) => `${n % 60 ? `${n} s` : `${n / 60} min`}`);
    fillSelect(above, THRESHOLDS, (n) => `${n} %`);
    filter.addEventListener('input', () => onInput({ filter: filter.value.trim() }));
    window.addEventListener('change', () => onInput({ window: Number(window.value) }));
    above.addEventListener('change', () => onInput({ above: Number(above.value) }));
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
    ensureOption(this.window, state.window, `${state.window} s`);
    this.window.value = String(state.window);
    ensureOption(this.above, state.above, `${state.above} %`);
    this.above.value = String(state.above);
  }
}

function fillSelect(select, values, label) {
  for (const v of values) select.add(new Option(label(v), String(v)));
}

/** A value from the URL that is not among the offered ones still shows. */
function ensureOption(select, value, label) {
  if (![...select.options].some((o) => o.value === String(value))) select.add(new Option(label, String(value)));
}

/** Whether a host name passes the filter: every space-separated word is in it (case-insensitive). */
export function filterMatcher(filter) {
  const words = filter.toLowerCase().split(/\s+/).filter(Boolean);
  return (name) => {
    const n = name.toLowerCase();
    return words.every((w) => n.includes(w));
  };
}
