#!/usr/bin/env bash
# The relay's memory with the demo's windows held in its state (issue 21): HOSTS sorted sets `perf:host-N` of
# SAMPLES JSON samples each (the collector's fields, padded to SAMPLE_BYTES, 870 by default: the size of
# `replicast collect --simulate`'s samples; the dashboard's hour is 600 samples a host),
# every key allowed, read by a relay's full sync; then the relay's RSS beside the state's own byte count
# (`replicast_state_bytes`) and its keys held and not held, once with the state (the default) and once with
# --stateless for the relay's own baseline, RUNS times each.
# Usage: bench/state-memory.sh [hosts=1000] [samples=600] [runs=3] [extra relay flags, e.g. --state-bytes N...]
# (1,000 × 600 samples of 870 bytes do not fit the default --state-bytes of 256 MiB: pass a larger one to hold them.)
# Prints one line per run and `RESULT {json}` lines. PROFILE=debug uses the debug build; SKIP_BUILD=1 uses the
# binary already there.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$REPO_ROOT"

hosts=${1:-1000}
samples=${2:-600}
runs=${3:-3}
sample_bytes=${SAMPLE_BYTES:-870}
extra=("${@:4}")
profile=${PROFILE:-release}
bin=target/$profile/replicast
[ -n "${SKIP_BUILD:-}" ] && [ -x "$bin" ] || cargo build -q --profile "${profile/debug/dev}" -p replicast-server --bins

work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
metric() { { curl -fs "http://$1/metrics" 2>/dev/null || true; } | awk -v n="$2" '$1 == n {print $2}'; }

redis=$(free_port)
redis-server --port "$redis" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
  --repl-diskless-sync yes --repl-diskless-sync-delay 0 --loglevel warning >"$work/redis.log" 2>&1 &
pids+=($!)
until redis-cli -p "$redis" ping >/dev/null 2>&1; do sleep 0.05; done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; load $(cut -d' ' -f1-3 /proc/loadavg); $(redis-server --version | cut -d' ' -f1-3)"
redis-cli -p "$redis" EVAL "$(cat bench/demo-samples.lua)" 0 "$hosts" "$samples" "$sample_bytes" 6000 >/dev/null
payload=$(redis-cli -p "$redis" EVAL "
  local n = 0
  for _, key in ipairs(redis.call('KEYS', 'perf:*')) do
    for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do n = n + #m end
  end
  return n" 0)
echo "redis: $(redis-cli -p "$redis" DBSIZE) keys, $hosts × $samples samples, $payload bytes of members"

for run in $(seq 1 "$runs"); do
  for mode in state stateless; do
    relay=$(free_port)
    flags=("${extra[@]}")
    [ "$mode" = stateless ] && flags+=(--stateless)
    RUST_LOG=warn "$bin" serve --redis-url "redis://127.0.0.1:$redis" --listen "127.0.0.1:$relay" --allow 'perf:*' \
      --stream-only "${flags[@]}" >"$work/relay-$mode.log" 2>&1 &
    relay_pid=$!
    pids+=("$relay_pid")
    while :; do
      up=$(metric "127.0.0.1:$relay" replicast_link_up)
      ready=$(metric "127.0.0.1:$relay" replicast_state_ready)
      if [ "${up:-0}" = 1 ] && { [ "$mode" = stateless ] || [ "${ready:-0}" = 1 ]; }; then break; fi
      kill -0 "$relay_pid" 2>/dev/null || { cat "$work/relay-$mode.log"; exit 1; }
      sleep 0.05
    done
    # Settled: the RSS once the load's transient buffers are given back.
    sleep 2
    rss=$(awk '/VmRSS/{print $2}' "/proc/$relay_pid/status")
    hwm=$(awk '/VmHWM/{print $2}' "/proc/$relay_pid/status")
    keys=$(metric "127.0.0.1:$relay" replicast_state_keys)
    not_held=$(metric "127.0.0.1:$relay" replicast_state_keys_not_held)
    state_bytes=$(metric "127.0.0.1:$relay" replicast_state_bytes)
    kill "$relay_pid"; wait "$relay_pid" 2>/dev/null || true
    awk -v run="$run" -v m="$mode" -v rss="$rss" -v hwm="$hwm" -v keys="${keys:-0}" -v nh="${not_held:-0}" \
      -v sb="${state_bytes:-0}" 'BEGIN {
      printf "run %d, %s: relay RSS %.1f MiB (peak %.1f MiB); state %d keys held, %d not held, %.1f MB\n",
        run, m, rss / 1024, hwm / 1024, keys, nh, sb / 1e6;
      printf "RESULT {\"mode\":\"%s\",\"rss_kib\":%d,\"peak_rss_kib\":%d,\"state_keys\":%d,\"state_keys_not_held\":%d,\"state_bytes\":%d}\n",
        m, rss, hwm, keys, nh, sb
    }'
  done
done
