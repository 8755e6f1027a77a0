#!/usr/bin/env bash
# Builds the wasm package into wasm/pkg (served by the relay under /pkg), the RDB inspector's own wasm module into
# wasm/pkg-rdb (the same crate with feature `rdb`, served under /pkg-rdb and loaded only by the inspector's worker,
# so the dashboard never downloads the RDB reader), and puts d3 (an npm dependency) where the page loads it,
# www/vendor/d3.min.js; then the relay binary, which embeds all three (server/build.rs): in this order, so that the
# binary always carries the page and the modules it serves.
# The client in wasm/pkg is the npm package's (scripts/package.sh): the same build, as small; the RDB inspector's
# keeps wasm-pack's plain release build.
# Usage: build.sh [release|debug] — the relay's profile (default release); the wasm package is always built for size.
# A second run with nothing changed takes seconds: cargo and wasm-pack rebuild only what changed, and wasm-opt runs
# only on a client that changed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

profile=${1:-release}
# Each copied only where it changed (see copy_changed in lib.sh), so that an unchanged page does not rebuild the
# relay, which embeds them.
mkdir -p www/vendor
cmp -s node_modules/d3/dist/d3.min.js www/vendor/d3.min.js || cp node_modules/d3/dist/d3.min.js www/vendor/d3.min.js
# The page's client is the npm package's web build, built the same way (lib.sh: build_wasm_client with std from its
# sources where the toolchain has them, then finish_wasm_client). wasm-opt takes most of a build's time, so it runs
# only when what it is made from changed: target/wasm-pkg-small/.from holds the checksums of wasm-bindgen's output and
# of every script and tool the finishing step runs, written last (a finishing step cut short is done again).
std=$(wasm_client_std)
[ "$std" = source ] ||
  echo "build.sh: no std sources (rustup component add rust-src): prebuilt std, client ~10 KB larger gzipped" >&2
built=target/wasm-pkg-web small=target/wasm-pkg-small
# std built from its sources is the smaller client, not a requirement of the page: where that build fails (a
# toolchain whose std sources do not build offline), the page gets the prebuilt std's, with the same warning.
build_wasm_client web "$built" "$std" || {
  [ "$std" = source ] || exit 1
  echo "build.sh: std from its sources did not build: prebuilt std, client ~10 KB larger gzipped" >&2
  build_wasm_client web "$built" prebuilt
}
# Its exports are renamed, so the .d.ts of the .wasm's own exports would be wrong: it is left out, as in the package.
rm -f "$built/replicast_wasm_bg.wasm.d.ts" wasm/pkg/replicast_wasm_bg.wasm.d.ts
from=$(sha256sum "$built"/* scripts/lib.sh scripts/wasm-names.mjs scripts/wasm-texts.mjs scripts/wasm-reads.mjs \
  node_modules/binaryen/package.json)
if [ "$from" != "$(cat "$small/.from" 2>/dev/null)" ]; then
  rm -rf "$small"
  cp -r "$built" "$small"
  finish_wasm_client "$small/replicast_wasm_bg.wasm" "$small/replicast_wasm.js"
  echo "$from" >"$small/.from"
fi
copy_changed "$small" wasm/pkg
with_wasm_env wasm-pack --quiet build wasm --release --target web --out-dir "$REPO_ROOT/target/wasm-pkg-rdb" -- --features rdb
copy_changed target/wasm-pkg-rdb wasm/pkg-rdb
if [ "$profile" = release ]; then
  cargo build -q --release -p replicast-server
else
  cargo build -q -p replicast-server
fi
