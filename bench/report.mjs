// Turns bench/run.mjs's collected results into the Markdown tables of docs/BENCHMARKS.md: each block between
// `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` is replaced when its benchmarks ran, left alone otherwise.
// Every table gives the median and the spread over the repeated runs, and every target met or not.
import { spread } from './support.mjs';

const n0 = (x) => Math.round(x).toLocaleString('en-US');
const n1 = (x) => x.toFixed(1);
const n2 = (x) => x.toFixed(2);
const mb = (bytes) => (bytes >= 1e6 ? `${n2(bytes / 1e6)} MB` : `${n1(bytes / 1e3)} KB`);
const met = (ok) => (ok ? 'met' : '**not met**');
/** "median (min–max)" of one number taken from every run. */
const ms = (values, f = n1) => { const s = spread(values); return s.n > 1 ? `${f(s.median)} (${f(s.min)}–${f(s.max)})` : f(s.median); };
const table = (head, rows) => [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`,
  ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
const commands = (lines) => ['```sh', ...lines, '```'].join('\n');

function machineBlock(m) {
  return [
    `Last \`npm run bench\`: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${m.runs} runs where repeated.`,
    '',
    table(['cores', 'memory', 'load average (1/5/15 min) before → after', 'Redis', 'Node', 'Chromium', 'rustc'], [[
      `${m.cores} (${m.cpu})`, `${n1(m.memoryGiB)} GiB`,
      `${m.loadBefore.map(n2).join(' / ')} → ${m.load.map(n2).join(' / ')}`, m.redis, m.node, m.chromium, m.rustc,
    ]]),
  ].join('\n');
}

function respBlock(c) {
  const out = [commands([
    'cargo build -p replicast-server && node bench/resp/record.mjs',
    'cargo bench -p replicast-protocol --bench resp',
    'source scripts/lib.sh',
    'with_wasm_env wasm-pack build wasm --release --target nodejs --out-dir ../target/bench-resp/pkg-node -- --features bench',
    'node bench/resp/node.mjs      # × runs',
    'with_wasm_env wasm-pack build wasm --release --target web --out-dir ../target/bench-resp/pkg-web -- --features bench',
    'node bench/resp/chromium.mjs  # × runs',
  ])];
  let nativeMBps = null;
  const native = c['resp-native']?.[0];
  if (native?.results) {
    out.push('', 'Native (criterion; median and its 95% interval):', '', table(['parser', 'time', 'MB/s', 'M commands/s'],
      native.results.map((e) => [e.id, `${n2(e.ns.median / 1e6)} ms (${n2(e.ns.low / 1e6)}–${n2(e.ns.high / 1e6)})`,
        n0(native.bytes / 1e6 / (e.ns.median / 1e9)), n1(native.commands / (e.ns.median / 1e9) / 1e6)])));
    nativeMBps = native.bytes / 1e6 / (native.results.find((e) => /whole/.test(e.id))?.ns.median / 1e9);
  }
  const rows = [];
  let chromiumWasm = null;
  let chromiumJs = null;
  for (const key of ['resp-node', 'resp-chromium']) {
    const list = c[key];
    if (!list) continue;
    for (const parser of ['wasm', 'js']) {
      for (const chunk of ['whole', 65536]) {
        const pick = list.map((r) => r.results.find((e) => e.parser === parser && e.chunk === chunk));
        const medians = pick.map((e) => e['MB/s'].median);
        const all = spread(pick.flatMap((e) => [e['MB/s'].min, e['MB/s'].max]));
        rows.push([list[0].engine, parser === 'wasm' ? 'ours (wasm)' : 'plain JS (bench/resp/js-parser.mjs)',
          chunk === 'whole' ? 'whole stream' : '64 KiB chunks', n0(spread(medians).median), `${n0(all.min)}–${n0(all.max)}`,
          n1(spread(pick.map((e) => e['commands/s'].median)).median / 1e6)]);
        if (key === 'resp-chromium' && chunk === 65536) {
          if (parser === 'wasm') chromiumWasm = spread(medians).median; else chromiumJs = spread(medians).median;
        }
      }
    }
  }
  if (rows.length) {
    out.push('', `In JS engines (${c['resp-node']?.length ?? c['resp-chromium'].length} invocations; median of the medians, min–max over every timed run):`, '',
      table(['engine', 'parser', 'input', 'MB/s', 'min–max', 'M commands/s'], rows));
  }
  const targets = [];
  if (nativeMBps) targets.push(['native ≥ 1 GB/s', `${n0(nativeMBps)} MB/s`, met(nativeMBps >= 1000)]);
  if (chromiumWasm) targets.push(['wasm in Chromium ~10× the old 60 MB/s (≥ 600 MB/s), 64 KiB chunks', `${n0(chromiumWasm)} MB/s (${n0(chromiumWasm / 60)}×)`, met(chromiumWasm >= 600)]);
  if (chromiumWasm && chromiumJs) targets.push(['ahead of a plain JS parser in Chromium', `${n1(chromiumWasm / chromiumJs)}×`, met(chromiumWasm > chromiumJs)]);
  if (targets.length) out.push('', table(['target', 'measured', ''], targets));
  return out.join('\n');
}

function rdbBlock([r]) {
  const rows = r.results.map((e) => [e.dump, e.reader, `${n0(e.mbps.median)} [${n0(e.mbps.min)}, ${n0(e.mbps.max)}]`,
    e.keysps ? `${n0(e.keysps.median)} [${n0(e.keysps.min)}, ${n0(e.keysps.max)}]` : '–',
    `${n1(e.rss_mb.median)} MB [${n1(e.rss_mb.min)}, ${n1(e.rss_mb.max)}]`]);
  const big = r.results.filter((e) => e.dump === 'biglist.rdb' && !e.reader.startsWith('peer'));
  const mixed = r.results.filter((e) => e.dump === 'mixed.rdb');
  const targets = [];
  const native = mixed.find((e) => e.reader === 'native');
  const inWasm = mixed.find((e) => e.reader.startsWith('wasm'));
  if (native) targets.push(['native ≥ 400 MB/s (mixed)', `${n0(native.mbps.median)} MB/s`, met(native.mbps.median >= 400)]);
  if (inWasm) targets.push(['wasm ≥ 200 MB/s (mixed)', `${n0(inWasm.mbps.median)} MB/s`, met(inWasm.mbps.median >= 200)]);
  if (big.length) {
    const worst = Math.max(...big.map((e) => e.rss_mb.max));
    targets.push(['peak RSS < 64 MB for a 1 GB list', big.map((e) => `${e.reader} ${n1(e.rss_mb.max)} MB`).join(', '), met(worst < 64)]);
  }
  return [
    commands(['bash bench/rdb/make-dumps.sh', 'cargo build --release -p replicast-server',
      'source scripts/lib.sh && with_wasm_env wasm-pack build wasm --release --target nodejs --out-dir ../target/rdb-bench/pkg -- --features bench',
      'python3 -m venv target/rdb-peer && target/rdb-peer/bin/pip install rdb-py',
      'SKIP_BUILD=1 RUNS=5 RDB_PEER="target/rdb-peer/bin/python bench/rdb/peer.py" node bench/rdb/run.mjs']),
    '', `${r.results[0].runs} runs each; median [min, max]; peak RSS from \`/usr/bin/time -v\`. The peer is rdb-py (PyPI), timed as a whole process.`,
    '', table(['dump', 'reader', 'MB/s', 'keys/s', 'peak RSS'], rows),
    ...(targets.length ? ['', table(['target', 'measured', ''], targets)] : []),
  ].join('\n');
}

function relayBlock(list) {
  const lag = list.filter((r) => r.bench === 'relay-lag');
  const fanout = list.filter((r) => r.bench === 'relay-fanout');
  const byClients = new Map();
  for (const f of fanout) byClients.set(f.clients, [...(byClients.get(f.clients) ?? []), f]);
  const lagRows = [
    ['replica', ms(lag.map((r) => r.replica.p99_bytes / 1e3), n0), ms(lag.map((r) => r.replica.max_bytes / 1e3), n0), ms(lag.map((r) => r.replica.back_to_zero_ms ?? Infinity), n0)],
    ['relay', ms(lag.map((r) => r.relay.p99_bytes / 1e3), n0), ms(lag.map((r) => r.relay.max_bytes / 1e3), n0), ms(lag.map((r) => r.relay.back_to_zero_ms ?? Infinity), n0)],
  ];
  const fanRows = [...byClients].map(([clients, rs]) => [n0(clients), ms(rs.map((r) => r.delivered / r.seconds), n0),
    ms(rs.map((r) => r.latency_ms.p50), n2), ms(rs.map((r) => r.latency_ms.p99), n2), ms(rs.map((r) => r.latency_ms.max), n1),
    ms(rs.map((r) => r.rss_mib.peak), n0)]);
  const worstRatio = Math.max(...lag.map((r) => r.relay.max_bytes / Math.max(1, r.replica.max_bytes)));
  const backToZero = Math.max(...lag.map((r) => r.relay.back_to_zero_ms ?? Infinity));
  const thousand = byClients.get(1000);
  const targets = [
    ['relay lag ≤ 2× the real replica\'s (max, every run)', `worst run ${n2(worstRatio)}×`, met(worstRatio <= 2)],
    ['relay lag back to 0 within 1 s after the load', `at most ${n0(backToZero)} ms`, met(backToZero <= 1000)],
  ];
  if (thousand) {
    const p99 = spread(thousand.map((r) => r.latency_ms.p99)).median;
    const rss = Math.max(...thousand.map((r) => r.rss_mib.peak));
    targets.push(['p99 < 50 ms at 10,000 commands/s over 1,000 clients (median of runs)', `${n1(p99)} ms`, met(p99 < 50)]);
    targets.push(['relay RSS < 200 MB with 1,000 clients (peak, every run)', `${n0(rss)} MiB`, met(rss * 1.048576 < 200)]);
  }
  return [
    commands(['bench/relay.sh 1000000 10 10000 10     # requests, clients, writes/s, seconds; × runs',
      'bench/relay.sh 1000000 100 10000 10', 'bench/relay.sh 1000000 1000 10000 10']),
    '', `Lag, ${lag.length} runs (load: ${lag.map((r) => r.load.replace(/ requests per second.*/, '/s')).join('; ')}); median (min–max) over the runs:`,
    '', table(['follower', 'lag p99 (KB)', 'lag max (KB)', 'back to 0 after the load (ms)'], lagRows),
    '', 'Fan-out: 10,000 ZADDs a second spread over the clients\' keys; median (min–max) over the runs:',
    '', table(['clients', 'delivered/s', 'write→client p50 (ms)', 'p99 (ms)', 'max (ms)', 'relay peak RSS (MiB)'], fanRows),
    '', table(['target', 'measured', ''], targets),
  ].join('\n');
}

function clusterBlock(list) {
  const byShards = new Map();
  for (const r of list) byShards.set(r.shards, [...(byShards.get(r.shards) ?? []), r]);
  const throughputRows = [];
  const lagRows = [];
  for (const [shards, rs] of byShards) {
    for (const test of Object.keys(rs[0].throughput)) {
      const rps = rs.map((r) => r.throughput[test]);
      throughputRows.push([shards, test, ms(rps, n0), ms(rps.map((x) => x / shards), n0)]);
    }
    for (const [i, l] of rs[0].lag.entries()) {
      lagRows.push([shards, `${l.shard} (${rs[0].follower})`, ms(rs.map((r) => r.lag[i].max_bytes / 1e3), n1),
        ms(rs.map((r) => r.lag[i].p99_bytes / 1e3), n1), ms(rs.map((r) => r.lag[i].back_to_zero_ms ?? Infinity), n0)]);
    }
  }
  // Per shard, the median over the runs of the max lag; the worst shard of three against the one shard.
  const worstShard = (rs) => Math.max(...rs[0].lag.map((_, i) => spread(rs.map((r) => r.lag[i].max_bytes)).median));
  const one = byShards.get(1);
  const three = byShards.get(3);
  const relay = list.every((r) => r.follower === 'relay');
  const targets = [];
  if (one && three && relay) {
    const ratio = worstShard(three) / Math.max(1, worstShard(one));
    targets.push(['the relay\'s lag per shard stays within 2× what one shard\'s relay shows, with as many clients per shard (max lag, median of runs, worst shard)',
      `${n2(ratio)}× (${n1(worstShard(three) / 1e3)} KB vs ${n1(worstShard(one) / 1e3)} KB)`, met(ratio <= 2)]);
  } else {
    targets.push(['the relay\'s lag per shard stays within 2× what one shard\'s relay shows, with as many clients per shard',
      relay ? 'needs the 1- and the 3-shard runs' : 'not measured: the relay was not following', '**not met**']);
  }
  const req = list[0].requests;
  return [
    commands([...byShards.keys()].map((n, i) => `bench/cluster.sh ${n} ${req} ${byShards.get(n)[0].clients}${i === 0 ? '   # shards, requests, clients; × runs' : ''}`)),
    '', `Each shard a primary and one replica, the relay following every primary (\`serve --cluster\`); the load \`redis-benchmark --cluster -t set,zadd -n ${req} -c <50 per shard> -P 16 -r 100000\` (without \`--cluster\` for one shard, which redis-benchmark refuses as a cluster). On this 2-core machine redis-benchmark, every redis-server and the relay share the same two cores, so three shards do not add throughput here: the total stays that of one shard and each of three shards takes about a third (the per-shard column). What the run shows is the relay keeping up with three streams at once. ${[...byShards.values()][0].length} runs each; median (min–max):`,
    '', table(['shards', 'test', 'requests/s', 'per shard'], throughputRows),
    '', 'The lag per shard, sampled every 20 ms: its primary\'s `master_repl_offset` minus its follower\'s offset (the relay\'s `replicast_shard_link_offset` for that shard; a replica\'s own offset where the follower says replica):',
    '', table(['shards', 'shard (follower)', 'lag max (KB)', 'lag p99 (KB)', 'back to 0 after the load (ms)'], lagRows),
    '', table(['target', 'measured', ''], targets),
  ].join('\n');
}

function assemblerBlock(list) {
  const rate = list.map((r) => r['M commands/s'].median);
  const s = spread(rate);
  return [
    commands(['node bench/resp/record.mjs --hosts 20 --out target/bench-assembler/zadd-200k-20.resp',
      'source scripts/lib.sh',
      'with_wasm_env wasm-pack build wasm --release --target web --out-dir ../target/bench-assembler/pkg-web -- --features bench',
      'node bench/assembler/chromium.mjs   # × runs']),
    '', table(['engine', 'runs', 'M ZADD/s, median of the medians (min–max)', 'slowest / fastest single run'], [[
      list[0].engine, `${list.length} × ${list[0].runs}`, `${n2(s.median)} (${n2(s.min)}–${n2(s.max)})`,
      `${n2(Math.min(...list.map((r) => r['M commands/s'].min)))} / ${n2(Math.max(...list.map((r) => r['M commands/s'].max)))}`]]),
    '', table(['target', 'measured', ''], [['≥ 5 M ZADD/s in wasm in Chromium', `${n2(s.median)} M/s`, met(s.median >= 5)]]),
  ].join('\n');
}

function framesBlock(list) {
  const row = (what, get) => [what, ms(list.map((r) => get(r).median), n2), ms(list.map((r) => get(r).p95), n2), ms(list.map((r) => get(r).max), n1)];
  const boundary = spread(list.map((r) => r.boundary.median)).median;
  return [
    commands(['node bench/resp/record.mjs --commands 100000 --hosts 50 --out target/bench-assembler/zadd-100k-50.resp',
      'node bench/assembler/frames.mjs   # × runs']),
    '', `${list.length} runs of ${list[0].frames} frames, ${list[0].keys} keys; each cell the median (min–max) over the runs:`,
    '', table(['what', 'median (ms)', 'p95 (ms)', 'max (ms)'], [
      row(`boundary work per frame (${list[0].keys} keys)`, (r) => r.boundary),
      ...Object.keys(list[0].parts).map((p) => row(`… of which \`${p}\``, (r) => r.parts[p])),
      row(`applying the frame's ${list[0].keys} ZADDs`, (r) => r.apply),
    ]),
    '', table(['target', 'measured', ''], [['boundary < 2 ms per frame at 50 keys (median)', `${n2(boundary)} ms`, met(boundary < 2)]]),
  ].join('\n');
}

function dashboardBlock([r]) {
  const at1000 = r.results.filter((e) => e.hosts === 1000);
  const worst = at1000.length ? Math.max(...at1000.map((e) => e.median)) : null;
  const spread = (e) => (e.p25 === undefined ? '' : `${n2(e.p25)}–${n2(e.p75)} ms`);
  return [
    commands(['bash scripts/build.sh release', `node bench/dashboard/run.mjs --hosts ${[...new Set(r.results.map((e) => e.hosts))].join(',')} --seconds ${r.seconds}`]),
    '', 'The overview sorted by CPU and grouped by role, with its heatmap and alert list; the host detail with its crosshair shown and a table open.',
    '', table(['hosts', 'view', 'frames', 'median', 'p25–p75', 'p95', 'max', 'work a second'], r.results.map((e) => [
      e.hosts, e.view, n0(e.frames), `${n2(e.median)} ms`, spread(e), `${n2(e.p95)} ms`, `${n1(e.max)} ms`, `${n1(e.perSecond)} ms`])),
    ...(worst === null ? [] : ['', table(['target', 'measured', ''], [['median frame work < 8 ms at 1,000 hosts, new views open', `${n2(worst)} ms (the slower view)`, met(worst < 8)]])]),
  ].join('\n');
}

/** Replaces the blocks whose benchmarks are in `c`; the machine block always. */
export function render(text, c, machine) {
  const blocks = { machine: () => machineBlock(machine) };
  if (c['resp-native'] || c['resp-node'] || c['resp-chromium']) blocks.resp = () => respBlock(c);
  if (c.rdb) blocks.rdb = () => rdbBlock(c.rdb);
  if (c.relay) blocks.relay = () => relayBlock(c.relay);
  if (c.cluster) blocks.cluster = () => clusterBlock(c.cluster);
  if (c.assembler) blocks.assembler = () => assemblerBlock(c.assembler);
  if (c.frames) blocks.frames = () => framesBlock(c.frames);
  if (c.dashboard) blocks.dashboard = () => dashboardBlock(c.dashboard);
  for (const [name, body] of Object.entries(blocks)) {
    const re = new RegExp(`(<!-- bench:${name} -->\\n)[\\s\\S]*?(\\n<!-- /bench:${name} -->)`);
    if (!re.test(text)) { console.warn(`docs/BENCHMARKS.md has no <!-- bench:${name} --> block`); continue; }
    text = text.replace(re, (_, open, close) => `${open}${body()}${close}`);
  }
  return text;
}
