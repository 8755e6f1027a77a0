#!/usr/bin/env bash
# The client's .wasm as the npm package ships it (and /pkg serves it): its size raw, gzipped (gzip -9) and with
# Brotli (quality 11, Node's zlib), against issue 19's target of 120 KB gzipped.
# Usage: bench/wasm-size.sh [FILE.wasm] — with no file, builds the package first (scripts/package.sh) and measures
# its web build's .wasm; SKIP_BUILD=1 measures the package already built. Prints which build it measured (std
# compiled from source or the prebuilt std, as scripts/package.sh recorded it; `unknown` for a file given), one
# line per size and a `RESULT {json}` line; exits 0 whether or not the target is met (it is a measurement, not a
# test).
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$REPO_ROOT"

wasm=${1:-target/npm/replicast/web/replicast_wasm_bg.wasm}
if [ $# -eq 0 ] && [ -z "${SKIP_BUILD:-}" ]; then
  bash scripts/package.sh >/dev/null
fi
[ -f "$wasm" ] || { echo "wasm-size.sh: no $wasm (build the package: bash scripts/package.sh)" >&2; exit 1; }
std=unknown
if [ $# -eq 0 ] && [ -f target/npm/client-std ]; then
  std=$(<target/npm/client-std)
fi

node - "$wasm" "$std" <<'EOF'
const fs = require('fs');
const zlib = require('zlib');
const [file, std] = process.argv.slice(2);
const raw = fs.readFileSync(file);
// gzip's own -9, as docs/BENCHMARKS.md has always measured (zlib's level 9 differs by a few hundred bytes).
const gzip = require('child_process').execFileSync('gzip', ['-9c', file], { maxBuffer: 1 << 30 }).length;
const br = zlib.brotliCompressSync(raw, {
  params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: raw.length },
}).length;
const target = 120_000; // 120 KB, read strictly
const n = (x) => x.toLocaleString('en-US');
console.log(`file:    ${file}`);
const builds = { source: 'std compiled from source (-Zbuild-std)', prebuilt: "the toolchain's prebuilt std" };
console.log(`build:   ${builds[std] ?? 'unknown (a file given)'}`);
console.log(`raw:     ${n(raw.length)} bytes`);
console.log(`gzip -9: ${n(gzip)} bytes (target ${n(target)}: ${gzip <= target ? 'met' : 'not met'})`);
console.log(`brotli:  ${n(br)} bytes`);
console.log(`RESULT ${JSON.stringify({ bench: 'wasm-size', std, raw: raw.length, gzip, br, target_gzip: target })}`);
EOF
