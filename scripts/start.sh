#!/usr/bin/env bash
# `npm start`: sets up and builds what is missing, then runs the relay. Without REDIS_URL the relay starts an
# embedded redis-server on a free port and, for the monitoring demo, the collector in-process: this machine plus
# REPLICAST_DEMO_HOSTS simulated hosts (20 by default; 0 for this machine only) writing perf:<host> every second,
# and lets the page's notes on hosts be written: the stream annotations:perf is allowed and writable (REPLICAST_ALLOW
# and REPLICAST_WRITABLE, if set, win). With REDIS_URL (or REPLICAST_CLUSTER, a Redis Cluster's node) nothing is made
# writable unless you say so.
# REPLICAST_SINK=1 also runs `replicast sink` (docs/SINK.md), keeping every sample of REPLICAST_SINK_HISTORY
# (perf:* by default) in PostgreSQL — REPLICAST_DATABASE's, else one started for the demo in a scratch folder and
# removed at exit — and the page zooms out into that history.
# Extra arguments go to `replicast serve` (e.g. `npm start -- --listen 127.0.0.1:9000`).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

bash scripts/setup.sh
bash scripts/build.sh release
if [[ -z "${REDIS_URL:-}" && -z "${REPLICAST_CLUSTER:-}" ]]; then
  export REPLICAST_DEMO_HOSTS="${REPLICAST_DEMO_HOSTS:-20}"
  export REPLICAST_ALLOW="${REPLICAST_ALLOW:-perf:*,annotations:perf}"
  export REPLICAST_WRITABLE="${REPLICAST_WRITABLE:-annotations:perf}"
fi
if [[ "${REPLICAST_SINK:-}" != 1 ]]; then
  exec target/release/replicast serve "$@"
fi

work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z "${REPLICAST_DATABASE:-}" ]]; then
  # PostgreSQL will not run as root: as root, its folder and processes belong to the postgres user.
  as_pg=()
  mkdir "$work/postgres"
  if [ "$(id -u)" = 0 ]; then
    chmod 711 "$work"
    chown postgres: "$work/postgres"
    as_pg=(setpriv --reuid=postgres --regid=postgres --clear-groups --)
  fi
  pg_port=$(free_port)
  "${as_pg[@]}" initdb -D "$work/postgres/data" -U postgres -A trust -E UTF8 --locale=C >/dev/null
  "${as_pg[@]}" postgres -D "$work/postgres/data" -p "$pg_port" -k "$work/postgres" \
    -c listen_addresses=127.0.0.1 >"$work/postgres/log" 2>&1 &
  pids+=($!)
  until grep -q 'ready to accept connections' "$work/postgres/log"; do sleep 0.1; done
  psql -h 127.0.0.1 -p "$pg_port" -U postgres -qc 'CREATE DATABASE replicast'
  export REPLICAST_DATABASE="postgres://postgres@127.0.0.1:$pg_port/replicast"
  echo "Demo PostgreSQL: $REPLICAST_DATABASE (removed at exit)"
fi

sink_port=$(free_port)
export REPLICAST_HISTORY_URL="http://127.0.0.1:$sink_port"
: >"$work/relay.out"
target/release/replicast serve "$@" > >(tee -a "$work/relay.out") &
pids+=($!)
# The sink follows the relay where it listens, and lets its page (that origin) read the history.
until relay_url=$(grep -o 'Replicast is live at http://[^ ]*' "$work/relay.out" | cut -d' ' -f5) && [ -n "$relay_url" ]; do
  kill -0 "${pids[-1]}" 2>/dev/null || exit 1
  sleep 0.2
done
origin=${relay_url%/}
target/release/replicast sink --relay "ws://${origin#http://}/ws" --create-schema \
  --history "${REPLICAST_SINK_HISTORY:-perf:*}" --listen "127.0.0.1:$sink_port" --origin "$origin" &
pids+=($!)
wait -n "${pids[@]}"
