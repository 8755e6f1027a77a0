#!/usr/bin/env bash
# `npm test`: every suite. Formatting and lints, the page's build, the Rust unit and integration tests (real
# redis-server and relay), the wasm tests in headless Chromium, the end-to-end suites in tests/ (redis-server,
# relay, Chromium), then every benchmark on tiny inputs (bench/run.mjs --smoke).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

bash scripts/setup.sh

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy -q --workspace --all-targets -- -D warnings
if rustup_has_wasm_target; then
  # The browser-only code is compiled out natively; lint it for wasm32 where rustup's toolchain (with clippy)
  # has the target. The benches are native-only (criterion), so they are not linted for wasm.
  with_wasm_env cargo clippy -q -p replicast-protocol -p replicast-assembler -p replicast-wasm --lib --tests \
    --features replicast-wasm/bench --target wasm32-unknown-unknown -- -D warnings
fi

step "import circles (crates/*, wasm)"
node scripts/import-cycles.mjs crates/* wasm

step "build the page, the wasm client and the relay (debug)"
# Before `cargo test`: the relay embeds the page and the wasm client when it is built (server/build.rs), and its
# tests start it serving them.
bash scripts/build.sh debug

step "cargo test"
cargo test --workspace
# The shared RDB fixture corpus (real files of other Redis and Valkey versions) is not part of the repository, so
# it is not part of this command: .ci/run adds it when the folder sits beside the clone.
if [ -n "${RDB_FIXTURES:-}" ]; then
  cargo test -p replicast-rdb --features fixture-corpus --test fixture_corpus
else
  echo "RDB fixture corpus: not run (set RDB_FIXTURES=DIR to add it; .ci/run adds the shared corpus when one is present)"
fi

step "wasm-pack test (headless Chromium)"
# The protocol's and the assembler's tests that run in Chromium too: the browser runs the same code.
for crate in crates/protocol crates/assembler wasm; do
  with_wasm_env wasm-pack --log-level warn test --headless --chrome --chromedriver "$(command -v chromedriver)" "$crate"
done
# RdbScan, outside the shipped package (feature `rdb`).
with_wasm_env wasm-pack --log-level warn test --headless --chrome --chromedriver "$(command -v chromedriver)" wasm \
  --features rdb

step "end-to-end (tests/, Chromium)"
node --test --test-reporter=spec tests/
# The RDB inspector page over the project's written RDB fixtures, and the shared corpus when it is there
# (tests/inspect-corpus.mjs).
node --test --test-reporter=spec tests/inspect-corpus.mjs
if [ -z "${RDB_FIXTURES:-}" ]; then
  echo "RDB fixture corpus in the inspector: not run (set RDB_FIXTURES=DIR to add it)"
fi

step "benchmarks, smoke (tiny inputs; each result well formed, no timing checked)"
node bench/run.mjs --smoke
