#!/usr/bin/env bash
# Builds the wasm package into wasm/pkg (served by the relay under /pkg), the RDB inspector's own wasm module into
# wasm/pkg-rdb (the same crate with feature `rdb`, served under /pkg-rdb and loaded only by the inspector's worker,
# so the dashboard never downloads the RDB reader), and puts d3 (an npm dependency) where the page loads it,
# www/vendor/d3.min.js; then the relay binary, which embeds all three (server/build.rs): in this order, so that the
# binary always carries the page and the modules it serves.
# Usage: build.sh [release|debug] — the relay's profile (default release); the wasm package is always release.
# A second run with nothing changed takes seconds: cargo and wasm-pack rebuild only what changed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

profile=${1:-release}
# Each copied only where it changed (see copy_changed in lib.sh), so that an unchanged page does not rebuild the
# relay, which embeds them.
mkdir -p www/vendor
cmp -s node_modules/d3/dist/d3.min.js www/vendor/d3.min.js || cp node_modules/d3/dist/d3.min.js www/vendor/d3.min.js
with_wasm_env wasm-pack --quiet build wasm --release --target web --out-dir "$REPO_ROOT/target/wasm-pkg-web"
copy_changed target/wasm-pkg-web wasm/pkg
with_wasm_env wasm-pack --quiet build wasm --release --target web --out-dir "$REPO_ROOT/target/wasm-pkg-rdb" -- --features rdb
copy_changed target/wasm-pkg-rdb wasm/pkg-rdb
if [ "$profile" = release ]; then
  cargo build -q --release -p replicast-server
else
  cargo build -q -p replicast-server
fi
