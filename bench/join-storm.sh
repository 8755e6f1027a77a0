#!/usr/bin/env bash
# The join storm (issue 21): 1,000 sessions join within one second to the dashboard's subscription of 200 hosts
# (`perf:*`, windows of 121 samples), once with the relay's state (the default) and once with --stateless (every
# join reads Redis, as before the state): the time each session took to get its snapshot (p50, p99) and the commands
# Redis ran during the storm (INFO commandstats deltas, the storm's own writes left out).
# `reload` as the fourth argument runs the reload storm instead: the sessions come back within one second with the
# position a page saved two seconds earlier (`at=`, as the client's saved views do), and the count of snapshots
# sent is the figure (target 0 while the backlog covers them).
# Usage: bench/join-storm.sh [sessions=1000] [hosts=200] [window=121] [join|reload]
# Starts its own redis-server and a release relay on free loopback ports for each run, prints the example's lines
# (and `RESULT {json}` lines), and cleans up. Repeat it for a spread. PROFILE=debug uses the debug build;
# SKIP_BUILD=1 uses the binaries already there.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$REPO_ROOT"

sessions=${1:-1000}
hosts=${2:-200}
window=${3:-121}
storm=${4:-join}

profile=${PROFILE:-release}
bin=target/$profile/replicast
example=target/$profile/examples/join_storm
if [ -z "${SKIP_BUILD:-}" ] || [ ! -x "$bin" ] || [ ! -x "$example" ]; then
  if [ "$profile" = debug ]; then
    cargo build -q -p replicast-server --bins --example join_storm
  else
    cargo build -q --release -p replicast-server --bins --example join_storm
  fi
fi

work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(redis-server --version | cut -d' ' -f1-3)"

for mode in state stateless; do
  redis=$(free_port); relay=$(free_port)
  mkdir -p "$work/$mode"
  redis-server --port "$redis" --bind 127.0.0.1 --save '' --appendonly no --repl-diskless-sync-delay 0 \
    --dir "$work/$mode" --loglevel warning >"$work/$mode/redis.log" 2>&1 &
  redis_pid=$!
  until redis-cli -p "$redis" ping >/dev/null 2>&1; do sleep 0.05; done
  flags=()
  [ "$mode" = stateless ] && flags+=(--stateless)
  RUST_LOG=warn "$bin" serve --redis-url "redis://127.0.0.1:$redis" --listen "127.0.0.1:$relay" --allow 'perf:*' \
    --max-sessions 20000 --max-sessions-per-address 20000 "${flags[@]}" >"$work/$mode/relay.log" 2>&1 &
  relay_pid=$!
  pids+=("$redis_pid" "$relay_pid")
  until curl -fs "http://127.0.0.1:$relay/healthz" >/dev/null 2>&1; do sleep 0.1; done
  echo "--- $mode"
  "$example" "$redis" "127.0.0.1:$relay" "$hosts" "$window" "$sessions" "$window" "$storm"
  echo "relay peak RSS: $(awk '/VmHWM/{print $2, $3}' "/proc/$relay_pid/status")"
  kill "$relay_pid" "$redis_pid"; wait "$relay_pid" "$redis_pid" 2>/dev/null || true
done
