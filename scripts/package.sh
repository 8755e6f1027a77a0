#!/usr/bin/env bash
# Builds the npm package `replicast` into target/npm/replicast: the client's `web` build (for browsers and
# bundlers) and `nodejs` build (CommonJS, for Node), built for size (scripts/lib.sh: build_wasm_client, then
# finish_wasm_client: wasm-opt and short names; std compiled from its sources where the toolchain has them, which
# target/npm/client-std records for bench/wasm-size.sh), with the entry files of wasm/js (the exports map in
# wasm/js/package.json says which file serves whom), wasm/README.md and the license. The version is the
# workspace's (Cargo.toml).
# Usage: package.sh [--dry-run] — with --dry-run, also prints `npm pack --dry-run`'s file list.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

out=target/npm/replicast
rm -rf "$out"
mkdir -p "$out"
std=$(wasm_client_std)
[ "$std" = source ] ||
  echo "package.sh: no std sources (rustup component add rust-src): prebuilt std, client ~10 KB larger gzipped" >&2
build_wasm_client web "$out/web" "$std"
build_wasm_client nodejs "$out/node" "$std"
echo "$std" >target/npm/client-std
# The builds' own package files: the package has one package.json, README and license, at its root. The `nodejs`
# build is CommonJS inside a package of ES modules, so its folder says so.
for build in web node; do
  rm -f "$out/$build"/{package.json,README.md,LICENSE,.gitignore,replicast_wasm_bg.wasm.d.ts}
done
echo '{ "type": "commonjs" }' >"$out/node/package.json"
# Both builds' .wasm are the same bytes (only the glue differs): the package ships the web build's, and the Node
# glue reads that one.
cmp -s "$out/web/replicast_wasm_bg.wasm" "$out/node/replicast_wasm_bg.wasm" ||
  { echo "package.sh: the web and nodejs builds' .wasm differ" >&2; exit 1; }
rm "$out/node/replicast_wasm_bg.wasm"
node_glue="$out/node/replicast_wasm.js"
grep -q '`${__dirname}/replicast_wasm_bg.wasm`' "$node_glue" ||
  { echo "package.sh: the nodejs glue no longer names its .wasm as expected" >&2; exit 1; }
sed -i 's|`${__dirname}/replicast_wasm_bg.wasm`|`${__dirname}/../web/replicast_wasm_bg.wasm`|' "$node_glue"
# wasm-opt, and short import and export names in the .wasm and the same in both builds' glue.
finish_wasm_client "$out/web/replicast_wasm_bg.wasm" "$out/web/replicast_wasm.js" "$node_glue"
cp wasm/js/{index.js,index.d.ts,node.mjs,node.d.mts,node.d.cts,react.js,react.d.ts} wasm/README.md wasm/LICENSE "$out/"
version=$(cargo metadata --no-deps --format-version 1 |
  node -e 'const m = JSON.parse(require("fs").readFileSync(0, "utf8")); console.log(m.packages.find((p) => p.name === "replicast-wasm").version)')
node -e 'const [template, version] = process.argv.slice(1); const pkg = JSON.parse(require("fs").readFileSync(template, "utf8"));
  pkg.version = version; console.log(JSON.stringify(pkg, null, 2))' wasm/js/package.json "$version" >"$out/package.json"

if [ "${1:-}" = --dry-run ]; then
  (cd "$out" && npm pack --dry-run 2>&1 | sed -n '/Tarball Contents/,/Tarball Details/p')
fi
