#!/usr/bin/env bash
# Writes the RDB benchmark's dumps with a real redis-server, into target/rdb-bench/ (never committed):
#   mixed.rdb    every type in compact and plain encodings, TTLs, streams with groups; BATCHES=32 (the default) gives ~0.55 GB
#   biglist.rdb  one list of 4 Mi random 256-byte elements: 1 GiB of data in one key
# Usage: bash bench/rdb/make-dumps.sh [mixed|biglist|all]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${RDB_BENCH_DIR:-$root/target/rdb-bench}
batches=${BATCHES:-32}
what=${1:-all}
mkdir -p "$out"
# Absolute: redis-server changes into --dir before it opens --logfile, so a relative path would name a folder under itself.
out=$(cd "$out" && pwd)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$out" --dbfilename in-progress.rdb \
  --lua-time-limit 0 --busy-reply-threshold 0 --daemonize no --logfile "$out/redis.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
cli() { redis-cli -p "$port" "$@"; }
for _ in $(seq 50); do cli PING >/dev/null 2>&1 && break; sleep 0.1; done

if [[ $what == mixed || $what == all ]]; then
  cli FLUSHALL >/dev/null
  for b in $(seq 1 "$batches"); do
    cli --eval "$here/fill-mixed.lua" , "$b" >/dev/null
    # Spread some keys over two more databases.
    cli MOVE "b$b:bighash" 1 >/dev/null
    cli MOVE "b$b:bigzset" 2 >/dev/null
  done
  cli SAVE >/dev/null
  mv "$out/in-progress.rdb" "$out/mixed.rdb"
  echo "mixed.rdb: $(stat -c %s "$out/mixed.rdb") bytes, $(cli DBSIZE) keys in db 0"
fi

if [[ $what == biglist || $what == all ]]; then
  cli FLUSHALL >/dev/null
  for i in $(seq 1 64); do
    cli --eval "$here/fill-biglist.lua" biglist , "$i" 65536 >/dev/null
  done
  cli SAVE >/dev/null
  mv "$out/in-progress.rdb" "$out/biglist.rdb"
  echo "biglist.rdb: $(stat -c %s "$out/biglist.rdb") bytes, LLEN $(cli LLEN biglist)"
fi
cli SHUTDOWN NOSAVE >/dev/null 2>&1 || true
