// Numbers and times as people read them: fixed decimals (so digits do not jitter), units after a narrow no-break
// space, binary units for memory (GiB) and decimal ones for rates (MB/s), durations ("10 min"), and clock times in
// the zone the user chose (local or UTC, `#tz=utc`), which every view reads from here so that all agree. Missing
// values are an en dash.

const NNBSP = '\u202f';
export const MISSING = '–';

const missing = (v) => v === undefined || v === null || Number.isNaN(v);

/** 12.5 % */
export function percent(v) {
  return missing(v) ? MISSING : `${v.toFixed(1)}${NNBSP}%`;
}

const BINARY = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
const DECIMAL = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];

function scaled(v, base, units) {
  if (missing(v)) return MISSING;
  let i = 0;
  let x = Math.abs(v);
  while (x >= base && i < units.length - 1) {
    x /= base;
    i += 1;
  }
  const digits = i === 0 ? 0 : x < 10 ? 2 : x < 100 ? 1 : 0;
  return `${Math.sign(v) < 0 ? '-' : ''}${x.toFixed(digits)}${NNBSP}${units[i]}`;
}

/** 3.21 GiB */
export function bytes(v) {
  return scaled(v, 1024, BINARY);
}

/** 12.3 MB/s */
export function rate(v) {
  return missing(v) ? MISSING : `${scaled(v, 1000, DECIMAL)}/s`;
}

/** A load average: 1.23 */
export function load(v) {
  return missing(v) ? MISSING : v.toFixed(2);
}

/** 1,234 (by hand: `toLocaleString` costs microseconds, and counts are written often) */
export function count(v) {
  if (missing(v)) return MISSING;
  const n = Math.round(v);
  const digits = String(Math.abs(n)).replace(/\B(?=(\d{3})+$)/g, ',');
  return n < 0 ? `-${digits}` : digits;
}

/** How long ago a time (ms since the epoch) was: "now", "12 s ago", "3 min ago", "2 h ago". */
export function ago(t, now = Date.now()) {
  if (missing(t)) return MISSING;
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 2) return 'now';
  if (s < 120) return `${s}${NNBSP}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}${NNBSP}min ago`;
  return `${Math.round(s / 3600)}${NNBSP}h ago`;
}

/** Whether times are shown in UTC rather than the browser's zone: the page's one setting, read by every view. */
let utc = false;

/** Shows times in UTC (`true`) or in the browser's zone. */
export function setUtc(on) {
  utc = Boolean(on);
}

export function isUtc() {
  return utc;
}

const pad = (n) => String(n).padStart(2, '0');

/** The parts of a time in the chosen zone. */
function parts(t) {
  const d = new Date(t);
  return utc
    ? [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()]
    : [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds()];
}

/** 14:03:21, in the chosen zone. */
export function clock(t) {
  if (missing(t)) return MISSING;
  const [, , , h, m, s] = parts(t);
  return `${pad(h)}:${pad(m)}:${pad(s)}`;
}

/** The zone times are shown in: "UTC", or the browser's offset at `t` ("UTC+02:00"). */
export function zoneName(t = Date.now()) {
  if (utc) return 'UTC';
  const offset = -new Date(t).getTimezoneOffset();
  const a = Math.abs(offset);
  return `UTC${offset < 0 ? '-' : '+'}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}

/** An absolute time: "2024-05-01 14:03:21 UTC" (or the local offset). */
export function dateTime(t) {
  if (missing(t)) return MISSING;
  const [y, mo, d, h, m, s] = parts(t);
  return `${y}-${pad(mo)}-${pad(d)} ${pad(h)}:${pad(m)}:${pad(s)} ${zoneName(t)}`;
}

/** A time axis label: "14:03:21", or "14:03" when the axis spans more than 10 minutes. */
export function tick(t, spanMs) {
  if (missing(t)) return MISSING;
  const [, , , h, m, s] = parts(t);
  return spanMs > 600_000 ? `${pad(h)}:${pad(m)}` : `${pad(h)}:${pad(m)}:${pad(s)}`;
}

const UNITS = [['d', 86_400_000], ['h', 3_600_000], ['min', 60_000], ['s', 1000]];

/** A duration in ms as people say it: "250 ms", "30 s", "10 min", "1 h", "1 h 30 min". */
export function duration(ms) {
  if (missing(ms) || ms < 0) return MISSING;
  if (ms < 1000) return `${Math.round(ms)}${NNBSP}ms`;
  const out = [];
  let rest = Math.round(ms / 1000) * 1000;
  for (const [unit, size] of UNITS) {
    if (rest >= size && out.length < 2) {
      const n = Math.floor(rest / size);
      rest -= n * size;
      out.push(`${n}${NNBSP}${unit}`);
    } else if (out.length) {
      break;
    }
  }
  return out.join(' ');
}

/** A duration as the URL writes it: "250ms", "30s", "10m", "1h", "2d" (whole units only). */
export function durationToken(ms) {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]]) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

const TOKEN_UNITS = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A duration from the URL ("250ms", "30s", "10m", "1h", "2d"), in ms; a bare number is seconds (what `window=300`
 * meant when windows were counted in samples of one a second). NaN for anything else.
 */
export function parseDuration(text) {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$/.exec(String(text ?? ''));
  if (!match) return NaN;
  const ms = Number(match[1]) * TOKEN_UNITS[match[2] ?? 's'];
  return Number.isFinite(ms) && ms > 0 ? Math.round(ms) : NaN;
}

/** An axis label: the same, without a fraction that is zero ("50 MB/s", "8 GiB"). */
export function short(format) {
  return (v) => format(v).replace(/\.0+(?=\D)/, '');
}
