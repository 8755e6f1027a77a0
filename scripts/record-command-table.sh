#!/usr/bin/env bash
# Records the replies of the installed redis-server to `COMMAND` and `COMMAND DOCS`, raw RESP as any client reads
# them, into server/tests/data/: the command table the relay's filter is tested against (server/tests/filter.rs,
# fuzz/fuzz_targets/filter.rs). Run it again when the Redis the project follows changes version:
#   bash scripts/record-command-table.sh
# It starts its own redis-server on a free loopback port, in a scratch folder, and stops it when done.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

version=$(redis-server --version | sed -n 's/.* v=\([0-9.]*\).*/\1/p')
out=server/tests/data
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --daemonize yes \
  --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
trap 'kill "$(cat "$dir/redis.pid")" 2>/dev/null; rm -rf "$dir"' EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done

# One reply each: the command, then QUIT, read to the end of the connection; QUIT's `+OK` is cut off.
record() {
  local file=$1
  shift
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  printf '%s\r\nQUIT\r\n' "$*" >&3
  cat <&3 >"$dir/reply"
  exec 3<&-
  head -c -5 "$dir/reply" >"$file"
  [ "$(tail -c 5 "$dir/reply")" = $'+OK\r' ] || { echo "unexpected end of the $* reply" >&2; exit 1; }
}
record "$out/redis-$version-command.resp" COMMAND
record "$out/redis-$version-command-docs.resp" COMMAND DOCS
ls -l "$out"
