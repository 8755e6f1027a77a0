#!/usr/bin/env bash
# The backlog's resume horizon (issue 21): how much of the stream, in bytes and in seconds, a relay's backlog covers
# once full, for the demo's workload (`replicast collect --simulate HOSTS`, every key allowed) alone and with other
# writes beside it (SETs of a key outside --allow, about RATE a second). Before issue 21 the ring held the
# raw stream whatever its keys, so it covered exactly --backlog-bytes of it; now it keeps only what some session
# could be sent, the rest as offsets.
# Usage: bench/backlog-horizon.sh [hosts=200] [rate=1000] [backlog=4194304] [seconds=45]
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$REPO_ROOT"

hosts=${1:-200}
rate=${2:-1000}
backlog=${3:-4194304}
seconds=${4:-45}
profile=${PROFILE:-release}
bin=target/$profile/replicast
[ -n "${SKIP_BUILD:-}" ] && [ -x "$bin" ] || cargo build -q --profile "${profile/debug/dev}" -p replicast-server --bins

work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
metric() { curl -fs "http://$1/metrics" | awk -v n="$2" '$1 == n {print $2}'; }

for others in 0 "$rate"; do
  redis=$(free_port); relay=$(free_port)
  mkdir -p "$work/$others"
  redis-server --port "$redis" --bind 127.0.0.1 --save '' --appendonly no --dir "$work/$others" \
    --loglevel warning >/dev/null 2>&1 &
  pids+=($!)
  until redis-cli -p "$redis" ping >/dev/null 2>&1; do sleep 0.05; done
  RUST_LOG=warn "$bin" serve --redis-url "redis://127.0.0.1:$redis" --listen "127.0.0.1:$relay" --allow 'perf:*' \
    --backlog-bytes "$backlog" >/dev/null 2>&1 &
  pids+=($!)
  until curl -fs "http://127.0.0.1:$relay/healthz" >/dev/null 2>&1; do sleep 0.1; done
  RUST_LOG=warn "$bin" collect --redis-url "redis://127.0.0.1:$redis" --no-local --simulate "$hosts" >/dev/null 2>&1 &
  pids+=($!)
  if [ "$others" -gt 0 ]; then
    # About RATE SETs a second, steadily: redis-cli repeating one every 1/RATE s.
    redis-cli -p "$redis" -r -1 -i "$(awk -v r="$others" 'BEGIN {print 1 / r}')" \
      SET other:key "$(head -c 200 /dev/zero | tr '\0' x)" >/dev/null 2>&1 &
    pids+=($!)
  fi
  start=$(metric "127.0.0.1:$relay" replicast_link_offset)
  sleep "$seconds"
  end=$(metric "127.0.0.1:$relay" replicast_link_offset)
  oldest=$(metric "127.0.0.1:$relay" replicast_backlog_start_offset)
  held=$(metric "127.0.0.1:$relay" replicast_backlog_bytes)
  awk -v h="$hosts" -v o="$others" -v s="$start" -v e="$end" -v b="$oldest" -v c="$backlog" -v held="$held" -v t="$seconds" 'BEGIN {
    rate = (e - s) / t; covered = e - b;
    printf "%d hosts + %d other SETs/s: stream %.0f B/s; backlog of %d B holds %d B; covers %d B of stream = %.1f s (raw ring: %.1f s)%s\n",
      h, o, rate, c, held, covered, covered / rate, c / rate, (held < 0.95 * c ? " [ring not full yet: run longer]" : "")
  }'
  kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; pids=()
done
