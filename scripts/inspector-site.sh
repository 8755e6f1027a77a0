#!/usr/bin/env bash
# Assembles the RDB inspector as a static site in the folder $1 (made if missing): the pages of www/ and the
# inspector's wasm module (wasm/pkg-rdb, built by scripts/build.sh) as its pkg-rdb/ folder. Any static file server
# then serves it, no relay needed — e.g. `python3 -m http.server -d DIR 8000` and open
# http://localhost:8000/inspect.html (a module worker and wasm need http://, not file://).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
out=${1:?usage: inspector-site.sh DIR}
[ -f "$REPO_ROOT/wasm/pkg-rdb/replicast_wasm.js" ] ||
  { echo "inspector-site.sh: wasm/pkg-rdb is missing: run scripts/build.sh first" >&2; exit 1; }
mkdir -p "$out/pkg-rdb"
cp -r "$REPO_ROOT/www/." "$out/"
cp "$REPO_ROOT"/wasm/pkg-rdb/replicast_wasm{.js,_bg.wasm} "$out/pkg-rdb/"
echo "$out: open inspect.html from any static server (e.g. python3 -m http.server -d $out 8000)"
