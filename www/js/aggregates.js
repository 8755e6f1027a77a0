// Fleet and per-host statistics. The client's aggregation (`aggregate` option, `fleet`, `fleetAbove`, `stats`)
// computes them in wasm, incrementally; a client without it (the first Replicast release) gets the same numbers
// computed here from each host's newest sample, which the page holds anyway. Statistics are nearest-rank, like the
// assembler's.

/** Whether `client` aggregates in wasm. */
export function aggregatesInWasm(client) {
  return typeof client.fleet === 'function';
}

/** Client options asking for aggregation of `fields`, when the client can. */
export function aggregateOption(Replicast, fields) {
  return typeof Replicast.prototype.fleet === 'function' ? { aggregate: { fields, time: 't' } } : {};
}

/** `{count, min, max, mean, p50, p95, p99}` of `values` (NaN left out). */
export function summarize(values) {
  const v = [];
  for (const x of values) if (!Number.isNaN(x)) v.push(x);
  v.sort((a, b) => a - b);
  const n = v.length;
  const rank = (q) => v[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))];
  let sum = 0;
  for (const x of v) sum += x;
  return n
    ? { count: n, min: v[0], max: v[n - 1], mean: sum / n, p50: rank(0.5), p95: rank(0.95), p99: rank(0.99) }
    : { count: 0, min: NaN, max: NaN, mean: NaN, p50: NaN, p95: NaN, p99: NaN };
}

/**
 * Across hosts, each host's newest value: CPU (`cpu.total`) and memory used (`mem.used`), and how many hosts are
 * above `threshold` percent CPU.
 */
export function fleetNow(client, hosts, threshold) {
  if (aggregatesInWasm(client)) {
    return {
      cpu: client.fleet('cpu.total'),
      mem: client.fleet('mem.used'),
      above: client.fleetAbove('cpu.total', threshold),
    };
  }
  let above = 0;
  for (const h of hosts) if (h.cpu > threshold) above += 1;
  return {
    cpu: summarize(hosts.map((h) => h.cpu)),
    mem: summarize(hosts.map((h) => h.memUsed)),
    above,
  };
}

/** The p95 of `cpu.total` over `key`'s window (`cpu`: that series, for a client without aggregation). */
export function windowP95(client, key, cpu) {
  return aggregatesInWasm(client) ? client.stats(key, 'cpu.total').p95 : summarize(cpu).p95;
}
