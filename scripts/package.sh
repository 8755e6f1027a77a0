#!/usr/bin/env bash
# Builds the npm package of the assembler for each wasm-pack target: target/npm/{web,bundler,nodejs}.
# Usage: package.sh [--dry-run] — with --dry-run, also prints `npm pack --dry-run`'s file list for each.
# The package's README is wasm/README.md; its name and version come from wasm/Cargo.toml.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

for target in web bundler nodejs; do
  with_wasm_env wasm-pack --quiet build wasm --release --target "$target" --out-dir "../target/npm/$target"
  # wasm-pack writes a .gitignore of "*" into the package folder; it would hide the files from a later `git add`
  # but not from npm, which reads the package.json's "files".
  rm -f "target/npm/$target/.gitignore"
  if [ "${1:-}" = --dry-run ]; then
    printf '\n== %s\n' "$target"
    (cd "target/npm/$target" && npm pack --dry-run 2>&1 | sed -n '/Tarball Contents/,/Tarball Details/p')
  fi
done
