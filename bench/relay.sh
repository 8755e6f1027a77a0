#!/usr/bin/env bash
# Relay benchmarks (issue 5): ingest lag next to a real replica, and fan-out latency/RSS at many clients.
# Usage: bench/relay.sh [requests=2000000] [clients=1000] [rate=10000] [seconds=10] [hosts=clients]
#        [keys-per-client=1] [source-addresses=1]
# FANOUT_ONLY=1 skips the lag measurement (bench/fanout.sh: 10,000 sessions, and 1,000 watching 200 hosts each).
# Starts its own redis-servers (primary + replica) and a release relay on free loopback ports, prints one line per
# measurement (and a `RESULT {json}` line for bench/run.mjs), and cleans up. Run it on an otherwise idle machine;
# repeat it for a spread. PROFILE=debug uses the debug build instead (bench/run.mjs --smoke: quick, not a timing);
# SKIP_BUILD=1 uses the binaries already there (cargo build and cargo test resolve features differently, so a build
# between tests relinks). LAG_ONLY=1 measures the lag alone.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$REPO_ROOT"

requests=${1:-2000000}
clients=${2:-1000}
rate=${3:-10000}
seconds=${4:-10}
hosts=${5:-$clients}
keys_per_client=${6:-1}
sources=${7:-1}

profile=${PROFILE:-release}
bin=target/$profile/replicast
bench=target/$profile/examples/relay_bench
if [ -z "${SKIP_BUILD:-}" ] || [ ! -x "$bin" ] || [ ! -x "$bench" ]; then
  if [ "$profile" = debug ]; then
    cargo build -q -p replicast-server --bins --example relay_bench
  else
    cargo build -q --release -p replicast-server --bins --example relay_bench
  fi
fi

work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

start_redis() { # port dir [args…]
  local port=$1 dir=$2; shift 2
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --repl-diskless-sync-delay 0 \
    --dir "$dir" --loglevel warning "$@" >"$dir/redis.log" 2>&1 &
  pids+=($!)
  until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done
}
wait_http() { until curl -fs "http://$1/healthz" >/dev/null 2>&1; do sleep 0.1; done; }

primary=$(free_port); replica=$(free_port); relay=$(free_port)
start_redis "$primary" "$work/primary"
start_redis "$replica" "$work/replica" --replicaof 127.0.0.1 "$primary"
ulimit -n 65536 2>/dev/null || true
RUST_LOG=warn "$bin" serve --redis-url "redis://127.0.0.1:$primary" --listen "127.0.0.1:$relay" --allow 'perf:*' \
  --max-sessions 20000 --max-sessions-per-address 20000 --stream-only >/dev/null &
relay_pid=$!
pids+=("$relay_pid")
wait_http "127.0.0.1:$relay"
until redis-cli -p "$replica" info replication | grep -q 'master_link_status:up'; do sleep 0.05; done
# Steady state: after a diskless full sync Redis starts a replica's command stream only on an ACK that follows its
# noticing the RDB child's end; a real replica may wait for its next once-a-second ACK (the relay acknowledges every
# 50 ms for 2 s after a full sync). Load that starts within that second would measure the sync, not the ingest.
sleep 2

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(redis-server --version | cut -d' ' -f1-3)"
[ -n "${FANOUT_ONLY:-}" ] || "$bench" lag "$primary" "$replica" "127.0.0.1:$relay" "$requests"
[ -n "${LAG_ONLY:-}" ] || "$bench" fanout "$primary" "ws://127.0.0.1:$relay/ws" "$relay_pid" "$clients" "$rate" \
  "$seconds" "$hosts" "$keys_per_client" "$sources"
