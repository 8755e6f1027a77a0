// Times RespBench.parse (wasm/src/web/bench.rs) in whatever JS engine loads it: Node or a browser page.
// Returns the median and spread over `runs` timed runs, after `warmup` untimed ones. MB = 10^6 bytes.
export function measure(bench, { chunk = 0, runs = 15, warmup = 3 } = {}) {
  for (let i = 0; i < warmup; i++) bench.parse(chunk);
  const times = [];
  let counts;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    counts = bench.parse(chunk);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)];
  const [fastest, slowest] = [times[0], times[times.length - 1]];
  const mbps = (ms) => bench.len / 1e6 / (ms / 1000);
  const cps = (ms) => counts[0] / (ms / 1000);
  return {
    chunk: chunk || 'whole',
    runs,
    bytes: bench.len,
    commands: counts[0],
    ms: { median, min: fastest, max: slowest },
    'MB/s': { median: mbps(median), min: mbps(slowest), max: mbps(fastest) },
    'commands/s': { median: cps(median), min: cps(slowest), max: cps(fastest) },
  };
}

export function format(label, r) {
  const f = (x) => x.toFixed(0);
  return `${label} chunk=${r.chunk}: ${f(r['MB/s'].median)} MB/s (min ${f(r['MB/s'].min)}, max ${f(r['MB/s'].max)}), `
    + `${(r['commands/s'].median / 1e6).toFixed(2)} M commands/s; ${r.commands} commands, ${r.bytes} bytes, `
    + `median of ${r.runs} runs ${r.ms.median.toFixed(1)} ms`;
}
