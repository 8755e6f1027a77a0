#!/usr/bin/env bash
# Builds the wasm package into wasm/pkg (served by the relay under /pkg) and the relay binary.
# Usage: build.sh [release|debug] — the relay's profile (default release); the wasm package is always release.
# A second run with nothing changed takes seconds: cargo and wasm-pack rebuild only what changed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

profile=${1:-release}
with_wasm_env wasm-pack --quiet build wasm --release --target web
# wasm-pack writes a .gitignore of "*" into the package; the repository's own .gitignore already covers it.
if [ "$profile" = release ]; then
  cargo build -q --release -p replicast-server
else
  cargo build -q -p replicast-server
fi
