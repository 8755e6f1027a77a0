#!/usr/bin/env bash
# The sink's own instructions per sample (issue 23), counted by callgrind: repeatable on a loaded machine, where
# bench/sink.sh's CPU times are not. Usage: bench/sink-path.sh [samples=100000] [hosts=10000]
# Generates the relay messages of SAMPLES of the collector's samples of HOSTS hosts (examples/sink_bench.rs), then
# runs `sink_bench path` on them and on none under `valgrind --tool=callgrind`; the difference over SAMPLES is the
# sink's reading of the messages into batches and their encoding as binary COPY, per sample. Prints a `RESULT {json}`
# line; CALLGRIND_OUT=FILE keeps the run's profile for `callgrind_annotate FILE`. SKIP_BUILD=1 uses the example
# already built; PROFILE=debug the debug build (to check the script, not for figures).
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$REPO_ROOT"

samples=${1:-100000}
hosts=${2:-10000}
profile=${PROFILE:-release}
if [ -z "${SKIP_BUILD:-}" ]; then
  if [ "$profile" = debug ]; then cargo build -q -p replicast-server --example sink_bench
  else cargo build -q --release -p replicast-server --example sink_bench; fi
fi
bin=$(realpath "${CARGO_TARGET_DIR:-target}/$profile/examples/sink_bench")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" generate "$work/messages" "$samples" "$hosts" >/dev/null
"$bin" generate "$work/none" 0 "$hosts" >/dev/null

instructions() { # messages out
  valgrind --tool=callgrind --callgrind-out-file="$2" "$bin" path "$1" >/dev/null 2>"$2.log"
  awk '/^summary:/ { print $2 }' "$2"
}
total=$(instructions "$work/messages" "$work/run.out")
base=$(instructions "$work/none" "$work/none.out")
[ -z "${CALLGRIND_OUT:-}" ] || cp "$work/run.out" "$CALLGRIND_OUT"
per_sample=$(awk "BEGIN { printf \"%.0f\", ($total - $base) / $samples }")
echo "sink path: $samples samples of $hosts hosts: $total instructions, $base without samples: $per_sample a sample"
echo "RESULT {\"bench\":\"sink-path\",\"samples\":$samples,\"hosts\":$hosts,\"instructions\":$total,\"base\":$base,\"per_sample\":$per_sample}"
