// History older than the live window, from the sediment sink: an HTTP endpoint that answers a host's series over any
// range, downsampled to about as many points as the chart has pixels.
//
//   GET <base>/history?key=perf:web-01&from=<ms>&to=<ms>&points=<n>&fields=cpu.total,mem.used
//   → {"key": …, "from": …, "to": …, "step_ms": <bucket width, 0 when not downsampled>,
//      "points": [[t_ms, {"cpu.total": {"avg": …, "min": …, "max": …}, …}], …]}
//
// The page learns whether there is a sink from `?history=<base>` on its URL, else from the relay's `config.json`
// (`{"history": "<base>" | null}`; a 404 means none). Without one, the live window is as far back as the charts go.
// What the sink answers is checked before it is drawn: a body past MAX_HISTORY_BYTES, more points than asked for,
// or anything not in the shape above is refused with an error that says what and where.

/** Points asked of the sink at most, whatever the chart's width. */
export const MAX_HISTORY_POINTS = 2000;
/** The largest answer read from the sink or config.json; the rest is not read. */
export const MAX_HISTORY_BYTES = 8 * 1024 * 1024;

export class HistoryError extends Error {}

/**
 * Where the sink is: `param` (the page's ?history=; "" or "off" for none) wins, else `config.json` next to the page.
 * Resolves with a base URL or null (no history); rejects with a HistoryError when config.json is malformed.
 */
export async function findHistory(param, { fetch = globalThis.fetch, page = globalThis.location?.href } = {}) {
  if (param !== null && param !== undefined) return param === '' || param === 'off' ? null : new URL(param, page).href;
  const url = new URL('config.json', page).href;
  const response = await fetch(url, { cache: 'no-store' });
  if (response.status === 404) return null;
  if (!response.ok) throw new HistoryError(`${url}: HTTP ${response.status}`);
  const config = parseJson(await readCapped(response, url), url);
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new HistoryError(`${url}: expected an object, got ${describe(config)}`);
  }
  const { history = null } = config;
  if (history !== null && typeof history !== 'string') {
    throw new HistoryError(`${url}: "history" must be a URL or null, got ${describe(history)}`);
  }
  return history ? new URL(history, url).href : null;
}

/** The request for `key`'s `fields` over [from, to] in about `points` points. */
export function historyUrl(base, { key, from, to, points, fields }) {
  const url = new URL('history', base.endsWith('/') ? base : `${base}/`);
  url.searchParams.set('key', key);
  url.searchParams.set('from', String(Math.floor(from)));
  url.searchParams.set('to', String(Math.ceil(to)));
  url.searchParams.set('points', String(Math.max(1, Math.min(MAX_HISTORY_POINTS, Math.round(points)))));
  url.searchParams.set('fields', fields.join(','));
  return url.href;
}

/**
 * The sink's answer as series: `times` (oldest first) and, per field, `avg`, `min` and `max` aligned with them
 * (NaN where the sink has no value), and `stepMs`. Throws a HistoryError naming the first thing out of shape.
 * `asked`: the request (`points`, `fields`), which bounds what is accepted.
 */
export function parseHistory(json, asked) {
  const where = (what) => `history for ${asked.key}: ${what}`;
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new HistoryError(where(`expected an object, got ${describe(json)}`));
  }
  const { points, step_ms: stepMs = 0 } = json;
  if (!Array.isArray(points)) throw new HistoryError(where(`"points" must be an array, got ${describe(points)}`));
  const limit = Math.min(MAX_HISTORY_POINTS, asked.points);
  // A sink may round its buckets: a few points more than asked are fine, many more are a broken sink.
  if (points.length > limit * 2 + 2) {
    throw new HistoryError(where(`${points.length} points where ${limit} were asked for`));
  }
  if (typeof stepMs !== 'number' || !(stepMs >= 0)) {
    throw new HistoryError(where(`"step_ms" must be a number ≥ 0, got ${describe(stepMs)}`));
  }
  const n = points.length;
  const times = new Float64Array(n);
  const series = Object.fromEntries(asked.fields.map((f) => [f, {
    avg: new Float64Array(n).fill(NaN), min: new Float64Array(n).fill(NaN), max: new Float64Array(n).fill(NaN),
  }]));
  for (let i = 0; i < n; i += 1) {
    const point = points[i];
    if (!Array.isArray(point) || point.length !== 2) {
      throw new HistoryError(where(`point ${i} must be [t_ms, {fields}], got ${describe(point)}`));
    }
    const [t, values] = point;
    if (typeof t !== 'number' || !Number.isFinite(t)) {
      throw new HistoryError(where(`point ${i}: the time must be a number of ms, got ${describe(t)}`));
    }
    if (i > 0 && !(t > times[i - 1])) throw new HistoryError(where(`point ${i}: time ${t} is not after ${times[i - 1]}`));
    if (values === null || typeof values !== 'object' || Array.isArray(values)) {
      throw new HistoryError(where(`point ${i}: expected an object of fields, got ${describe(values)}`));
    }
    times[i] = t;
    for (const field of asked.fields) {
      const v = values[field];
      if (v === undefined || v === null) continue;
      if (typeof v !== 'object') throw new HistoryError(where(`point ${i}: "${field}" must be {avg, min, max}`));
      for (const part of ['avg', 'min', 'max']) {
        const x = v[part];
        if (x === undefined || x === null) continue;
        if (typeof x !== 'number' || !Number.isFinite(x)) {
          throw new HistoryError(where(`point ${i}: "${field}".${part} must be a number, got ${describe(x)}`));
        }
        series[field][part][i] = x;
      }
    }
  }
  return { times, series, stepMs };
}

/** Asks the sink at `base` for `request` (see historyUrl) and parses the answer. */
export async function loadHistory(base, request, { fetch = globalThis.fetch, signal } = {}) {
  const url = historyUrl(base, request);
  const response = await fetch(url, { signal });
  if (!response.ok) throw new HistoryError(`history for ${request.key}: HTTP ${response.status} from the sink`);
  return parseHistory(parseJson(await readCapped(response, url), url), request);
}

/** A response's body as text, refusing one past MAX_HISTORY_BYTES without reading the rest. */
async function readCapped(response, url) {
  const declared = Number(response.headers.get('content-length'));
  if (declared > MAX_HISTORY_BYTES) throw tooBig(url);
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_HISTORY_BYTES) {
      await reader.cancel();
      throw tooBig(url);
    }
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.byteLength;
  }
  return new TextDecoder().decode(body);
}

const tooBig = (url) => new HistoryError(`${url}: the answer is larger than ${MAX_HISTORY_BYTES} bytes`);

function parseJson(text, url) {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HistoryError(`${url}: not JSON (${err.message})`);
  }
}

/** A short description of an unexpected value, for errors. */
function describe(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}
