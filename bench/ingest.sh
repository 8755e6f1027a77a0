#!/usr/bin/env bash
# The relay's ingest at wire speed (issue 22.1): a fake primary (server/examples/ingest_bench.rs) serves 1,000,000
# `ZADD perf:hostN <ms> <~130-byte JSON>` (~199 MB, generated once into target/bench-ingest/) as fast as the socket
# takes them, then `REPLCONF GETACK *`, and times until the replica's `REPLCONF ACK` reaches the end. Each run
# times, against the same primary: the release relay with its state (as by default), the relay --stateless, and a
# pure reader that only counts the bytes (the ceiling of this machine, primary included).
# Usage: bench/ingest.sh [runs=5] [commands=1000000]
# Prints one line per measurement (with the state, also how long the state, which trails the link on its own
# thread, took to catch up after the last pass's ACK), then the median and spread of each, and a `RESULT {json}`
# line. SKIP_BUILD=1 uses the binaries already built; RELAY_BIN=path measures another relay binary (another build,
# before and after).
# Run it on an otherwise idle machine.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$REPO_ROOT"

runs=${1:-5}
commands=${2:-1000000}
passes=${PASSES:-2}
case "$passes" in 1 | 2) ;; *) echo "PASSES is 1 or 2" >&2; exit 2 ;; esac
bin=${RELAY_BIN:-target/release/replicast}
bench=target/release/examples/ingest_bench
if [ -z "${SKIP_BUILD:-}" ] || [ ! -x "$bin" ] || [ ! -x "$bench" ]; then
  cargo build -q --release -p replicast-server --bin replicast --example ingest_bench
fi
data=target/bench-ingest
stream=$data/zadd-$commands.resp
mkdir -p "$data"
[ -s "$stream" ] || "$bench" generate "$stream" "$commands"
streams=("$stream")
if [ "$passes" = 2 ]; then
  second=$data/zadd-$commands-from-$commands.resp
  [ -s "$second" ] || "$bench" generate "$second" "$commands" "$commands"
  streams+=("$second")
fi

work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

redis=$(free_port)
redis-server --port "$redis" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" --loglevel warning \
  >"$work/redis.log" 2>&1 &
pids+=($!)
until redis-cli -p "$redis" ping >/dev/null 2>&1; do sleep 0.05; done
# The empty dataset's RDB, as Redis writes it, is the full sync's payload.
redis-cli -p "$redis" --rdb "$work/empty.rdb" >/dev/null 2>&1

# One result line of the primary: the MB/s of each pass, space-separated.
next_result() { # count-so-far
  local want=$1
  until [ "$(grep -c '^RESULT' "$work/primary.out" || true)" -ge "$want" ]; do
    kill -0 "$primary_pid" 2>/dev/null || { cat "$work/primary.err" >&2; exit 1; }
    sleep 0.05
  done
  grep '^RESULT' "$work/primary.out" | sed -n "${want}p" | sed 's/.*"passes":\[//' \
    | grep -o '"mb_per_s":[0-9.]*' | cut -d: -f2 | tr '\n' ' ' | sed 's/ $//'
}

"$bench" primary "$redis" "${streams[@]:0:1}" "$work/empty.rdb" "${streams[@]:1}" >"$work/primary.out" 2>"$work/primary.err" &
primary_pid=$!
pids+=("$primary_pid")
until grep -q '^port ' "$work/primary.out" 2>/dev/null; do sleep 0.05; done
port=$(sed -n 's/^port //p' "$work/primary.out")

# The relay's state trails the link on a thread of its own (a relay that has one shows replicast_state_offset): how
# far behind the last pass's ACK it was when the pass's result was read (up to 50 ms after the ACK), and how long it
# then took to reach it, polled every 10 ms. The ACK's offset is the passes' bytes and a `REPLCONF GETACK *` (37
# bytes) after each, from offset 0; the primary keeps the link open meanwhile.
state_trail() { # run result-number
  local metrics="http://127.0.0.1:$relay_port/metrics" target at behind began now
  at=$(curl -s "$metrics" | sed -n 's/^replicast_state_offset //p' || true)
  [ -n "$at" ] || return 0
  began=$(date +%s%N)
  target=$(grep '^RESULT' "$work/primary.out" | sed -n "${2}p" | sed 's/.*"passes":\[//' \
    | grep -o '"bytes":[0-9]*' | cut -d: -f2 | awk '{ s += $1 + 37 } END { print s }')
  behind=$((target - at))
  for _ in $(seq 6000); do
    at=$(curl -s "$metrics" | sed -n 's/^replicast_state_offset //p' || true)
    [ "${at:-0}" -lt "$target" ] || break
    sleep 0.01
  done
  now=$(date +%s%N)
  echo "run $1: state $behind bytes behind the ACK when the result was read, there $(((now - began) / 1000000)) ms later"
  trails+="$(((now - began) / 1000000)) "
}
trails=""

echo "machine: $(nproc) cores; stream: $(stat -c %s "$stream") bytes, $commands ZADDs; $passes pass(es)"
results=0
declare -A figures=([state]="" [stateless]="" [reader]="" [state2]="" [stateless2]="" [reader2]="")
for run in $(seq "$runs"); do
  for mode in state stateless reader; do
    results=$((results + 1))
    if [ "$mode" = reader ]; then
      "$bench" reader "$port" "$passes"
    else
      flags=()
      if [ "$mode" = stateless ]; then flags+=(--stateless); fi
      relay_port=$(free_port)
      RUST_LOG=warn "$bin" serve --redis-url "redis://127.0.0.1:$port" --listen "127.0.0.1:$relay_port" \
        --allow 'perf:*' --stream-only "${flags[@]}" >"$work/relay.log" 2>&1 &
      relay_pid=$!
    fi
    read -r mb mb2 <<<"$(next_result "$results")"
    if [ "$mode" = state ]; then state_trail "$run" "$results"; fi
    if [ "$mode" != reader ]; then kill "$relay_pid"; wait "$relay_pid" 2>/dev/null || true; fi
    if [ "$passes" = 2 ]; then
      echo "run $run: $mode $mb MB/s (first pass), $mb2 MB/s (second pass)"
      figures[${mode}2]+="$mb2 "
    else
      echo "run $run: $mode $mb MB/s"
    fi
    figures[$mode]+="$mb "
  done
done

summary() { # figures label
  echo "${figures[$1]}" | tr ' ' '\n' | grep . | sort -n | awk -v mode="$2" '
    { v[NR] = $1 }
    END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
          printf "%s: median %.0f MB/s, min %.0f, max %.0f over %d runs\n", mode, m, v[1], v[NR], NR }'
}
for mode in state stateless reader; do summary "$mode" "$mode"; done
if [ -n "$trails" ]; then
  echo "$trails" | tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 }
    END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
          printf "state at the ACK after the result was read: median %d ms, min %d, max %d over %d runs\n", m, v[1], v[NR], NR }'
fi
if [ "$passes" = 2 ]; then
  for mode in state stateless reader; do summary "${mode}2" "$mode, second pass"; done
fi
median() { echo "${figures[$1]}" | tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
list() { echo "[${figures[$1]// /,}0]" | sed 's/,0\]/]/; s/^\[0\]$/[]/'; }
second_pass=""
if [ "$passes" = 2 ]; then
  second_pass=",\"second_pass\":{\"state\":$(list state2),\"stateless\":$(list stateless2),\"reader\":$(list reader2),\"median\":{\"state\":$(median state2),\"stateless\":$(median stateless2),\"reader\":$(median reader2)}}"
fi
echo "RESULT {\"bench\":\"ingest\",\"state\":$(list state),\"stateless\":$(list stateless),\"reader\":$(list reader),\"median\":{\"state\":$(median state),\"stateless\":$(median stateless),\"reader\":$(median reader)}$second_pass}"
