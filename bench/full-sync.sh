#!/usr/bin/env bash
# The relay's full sync of a large dataset (issue 21): how long a relay takes from its start to a ready link (and,
# with the state, a ready state), and its peak RSS, for a dataset of about GIGABYTES of which PERCENT of the keys are
# allowed, once with the relay's state (the default) and once with --stateless, RUNS times each.
# The dataset: string keys `other:N` of 1,000-byte values (`DEBUG POPULATE`, stored uncompressed so that the RDB
# is as large as the data) and, beside them, the allowed keys: sorted sets `perf:host-N` of 3 JSON samples each as
# the collector writes them (its fields, padded to 870 bytes, the size of `replicast collect --simulate`'s).
# Redis streams the RDB to the relay without a file (diskless sync, `--save ''`), so nothing of the dataset is
# written to disk; it lives only in that redis-server, stopped at the end.
# The time is from the relay's start to the first `/metrics` that shows `replicast_link_up 1` (and, with the state,
# `replicast_state_ready 1`), polled every 20 ms; the peak RSS is the relay's VmHWM then.
# Usage: bench/full-sync.sh [gigabytes=2] [percent=1] [runs=3]
# Prints one line per run and `RESULT {json}` lines. PROFILE=debug uses the debug build; SKIP_BUILD=1 uses the
# binary already there.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$REPO_ROOT"

gigabytes=${1:-2}
percent=${2:-1}
runs=${3:-3}
profile=${PROFILE:-release}
bin=target/$profile/replicast
[ -n "${SKIP_BUILD:-}" ] && [ -x "$bin" ] || cargo build -q --profile "${profile/debug/dev}" -p replicast-server --bins

value_bytes=1000
others=$(awk -v g="$gigabytes" -v v="$value_bytes" 'BEGIN {printf "%d", g * 1e9 / v}')
allowed=$(awk -v o="$others" -v p="$percent" 'BEGIN {printf "%d", o * p / (100 - p)}')
samples=3

work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
metric() { { curl -fs "http://$1/metrics" 2>/dev/null || true; } | awk -v n="$2" '$1 == n {print $2}'; }

redis=$(free_port)
redis-server --port "$redis" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" --rdbcompression no \
  --repl-diskless-sync yes --repl-diskless-sync-delay 0 --enable-debug-command yes --loglevel warning \
  >"$work/redis.log" 2>&1 &
pids+=($!)
until redis-cli -p "$redis" ping >/dev/null 2>&1; do sleep 0.05; done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; load $(cut -d' ' -f1-3 /proc/loadavg); $(redis-server --version | cut -d' ' -f1-3)"
echo "filling: $others keys of $value_bytes bytes, $allowed allowed sorted sets of $samples samples"
redis-cli -p "$redis" DEBUG POPULATE "$others" other "$value_bytes" >/dev/null
redis-cli -p "$redis" EVAL "$(cat bench/demo-samples.lua)" 0 "$allowed" "$samples" 870 1000 >/dev/null
echo "redis: $(redis-cli -p "$redis" DBSIZE) keys, used_memory $(redis-cli -p "$redis" INFO memory | awk -F: '/^used_memory_human/{print $2}' | tr -d '\r')"

for run in $(seq 1 "$runs"); do
  for mode in state stateless; do
    relay=$(free_port)
    flags=()
    [ "$mode" = stateless ] && flags+=(--stateless)
    start=$(date +%s%N)
    RUST_LOG=warn "$bin" serve --redis-url "redis://127.0.0.1:$redis" --listen "127.0.0.1:$relay" --allow 'perf:*' \
      --stream-only "${flags[@]}" >"$work/relay-$mode.log" 2>&1 &
    relay_pid=$!
    pids+=("$relay_pid")
    while :; do
      up=$(metric "127.0.0.1:$relay" replicast_link_up)
      ready=$(metric "127.0.0.1:$relay" replicast_state_ready)
      if [ "${up:-0}" = 1 ] && { [ "$mode" = stateless ] || [ "${ready:-0}" = 1 ]; }; then break; fi
      kill -0 "$relay_pid" 2>/dev/null || { cat "$work/relay-$mode.log"; exit 1; }
      sleep 0.02
    done
    end=$(date +%s%N)
    hwm=$(awk '/VmHWM/{print $2}' "/proc/$relay_pid/status")
    rdb=$(metric "127.0.0.1:$relay" replicast_link_rdb_bytes)
    keys=$(metric "127.0.0.1:$relay" replicast_state_keys)
    state_bytes=$(metric "127.0.0.1:$relay" replicast_state_bytes)
    kill "$relay_pid"; wait "$relay_pid" 2>/dev/null || true
    awk -v run="$run" -v m="$mode" -v s="$start" -v e="$end" -v hwm="$hwm" -v rdb="${rdb:-0}" \
      -v keys="${keys:-0}" -v sb="${state_bytes:-0}" 'BEGIN {
      t = (e - s) / 1e9;
      printf "run %d, %s: ready in %.2f s; relay peak RSS %.1f MiB; RDB %.0f MB; state %d keys, %.1f MB\n",
        run, m, t, hwm / 1024, rdb / 1e6, keys, sb / 1e6;
      printf "RESULT {\"mode\":\"%s\",\"seconds\":%.3f,\"peak_rss_kib\":%d,\"rdb_bytes\":%d,\"state_keys\":%d,\"state_bytes\":%d}\n",
        m, t, hwm, rdb, keys, sb
    }'
  done
done
