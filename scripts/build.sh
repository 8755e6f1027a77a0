#!/usr/bin/env bash
# Builds the wasm package into wasm/pkg (served by the relay under /pkg), the RDB inspector's own wasm module into
# wasm/pkg-rdb (the same crate with feature `rdb`, served under /pkg-rdb and loaded only by the inspector's worker,
# so the dashboard never downloads the RDB reader) and the relay binary, and puts d3 (an npm dependency) where the
# page loads it: www/vendor/d3.min.js.
# Usage: build.sh [release|debug] — the relay's profile (default release); the wasm package is always release.
# A second run with nothing changed takes seconds: cargo and wasm-pack rebuild only what changed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

profile=${1:-release}
mkdir -p www/vendor
cp node_modules/d3/dist/d3.min.js www/vendor/d3.min.js
with_wasm_env wasm-pack --quiet build wasm --release --target web
with_wasm_env wasm-pack --quiet build wasm --release --target web --out-dir pkg-rdb -- --features rdb
# wasm-pack writes a .gitignore of "*" into the package; the repository's own .gitignore already covers it.
if [ "$profile" = release ]; then
  cargo build -q --release -p replicast-server
else
  cargo build -q -p replicast-server
fi
