// Numbers as people read them: fixed decimals (so digits do not jitter), units after a narrow no-break space,
// binary units for memory (GiB) and decimal ones for rates (MB/s). Missing values are an en dash.

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

/** 1,234 */
export function count(v) {
  return missing(v) ? MISSING : Math.round(v).toLocaleString('en');
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

/** 14:03:21, local time. */
export function clock(t) {
  return missing(t) ? MISSING : new Date(t).toLocaleTimeString('en-GB', { hour12: false });
}

/** A window of `n` one-second samples as a duration: "2 min". */
export function span(n) {
  return n % 60 === 0 ? `${n / 60}${NNBSP}min` : `${n}${NNBSP}s`;
}

/** An axis label: the same, without a fraction that is zero ("50 MB/s", "8 GiB"). */
export function short(format) {
  return (v) => format(v).replace(/\.0+(?=\D)/, '');
}
