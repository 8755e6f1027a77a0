#!/usr/bin/env bash
# Sink throughput (issue 23): how many of the collector's samples per second `replicast sink` writes into
# PostgreSQL, sustained, and the sink's memory while it does.
# Usage: bench/sink.sh [samples=400000] [hosts=10000]
# Starts its own redis-server, PostgreSQL (initdb in a scratch folder), release relay and sink on free loopback
# ports. The sink joins and is then stopped (SIGSTOP) while `replicast collect --simulate HOSTS --keep 5` writes
# SAMPLES samples into Redis (Redis keeps 5 per host; the relay's backlog keeps the stream); then it is continued
# and the time until PostgreSQL holds every sample is measured: the sink falling behind within the backlog and
# catching up, at the speed of the sink and PostgreSQL alone (the collector cannot produce 100,000 samples/s on the
# same 2 cores). Prints one line per measurement and a `RESULT {json}` line, and cleans up. Repeat it for a spread.
# PostgreSQL runs with its defaults (fsync and synchronous_commit on) unless PG_SETTINGS says otherwise
# (bench/sink-postgres.sh); SINK_ARGS adds flags to the sink (e.g. "--batch-rows 50000").
# LIVE=1 measures the live case instead: the sink is never stopped, and the figure is the rate from the collector's
# start until PostgreSQL holds every sample (bounded by how fast the collector writes on the same cores), with how
# long the sink took after the collector's last write.
# PROFILE=debug uses the debug build; SKIP_BUILD=1 uses the binaries already there; BIN=FILE runs that `replicast`
# binary (an older build, for a before and after). PERF=FILE records the catch-up
# with `perf record` (the sink and PostgreSQL's processes, call graphs) into FILE, for `perf report -i FILE`.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
source "$(dirname "$0")/sink-postgres.sh"
cd "$REPO_ROOT"

samples=${1:-400000}
hosts=${2:-10000}

sink_bench_binary

work=$(mktemp -d)
pids=()
pg_pid=
cleanup() {
  [ -n "$pg_pid" ] && kill -INT "$pg_pid" 2>/dev/null
  kill -CONT "${pids[@]}" 2>/dev/null || true
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "sink.sh: $*" >&2; exit 1; }
wait_http() { until curl -fs "http://$1/healthz" >/dev/null 2>&1; do sleep 0.1; done; }

start_postgres
redis_port=$(free_port); relay_port=$(free_port); sink_port=$(free_port)

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" --loglevel warning \
  >/dev/null 2>&1 &
pids+=($!)
until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.05; done

# A backlog that holds the whole burst (samples are about 900 bytes, and each ZADD comes with its trim).
backlog=$((samples * 1400 + (64 << 20)))
RUST_LOG=warn "$bin" serve --redis-url "redis://127.0.0.1:$redis_port" --listen "127.0.0.1:$relay_port" \
  --allow 'perf:*' --backlog-bytes "$backlog" --stream-only >/dev/null &
pids+=($!)
wait_http "127.0.0.1:$relay_port"
RUST_LOG=warn "$bin" sink --relay "ws://127.0.0.1:$relay_port/ws" --database "$database" --create-schema \
  --history 'perf:*' --listen "127.0.0.1:$sink_port" ${SINK_ARGS:-} >"$work/sink.log" 2>&1 &
sink_pid=$!
pids+=("$sink_pid")
wait_http "127.0.0.1:$sink_port"

committed_offset() { curl -fs "http://127.0.0.1:$sink_port/metrics" | awk '$1 == "replicast_sink_committed_offset" { print $2 }'; }
redis_offset() { redis-cli -p "$redis_port" info replication | tr -d '\r' | awk -F: '$1 == "master_repl_offset" { print $2 }'; }
wait_committed() { # offset seconds
  local deadline=$((SECONDS + $2))
  until [ "$(committed_offset)" -ge "$1" ] 2>/dev/null; do
    ((SECONDS < deadline)) || fail "the sink did not commit offset $1 within $2 s (at $(committed_offset)); log: $(tail -5 "$work/sink.log")"
    sleep 0.02
  done
}
wait_committed "$(redis_offset)" 30
rows_before=$("${psql[@]}" -c 'SELECT count(*) FROM replicast.zset_history')

live=${LIVE:-}
[ -n "$live" ] || kill -STOP "$sink_pid"
metric() { curl -fs "http://127.0.0.1:$sink_port/metrics" | awk -v m="$1" '$1 == m { v = $2 } END { print v + 0 }'; }
if [ -n "$live" ]; then
  sink_cpu0=$(cpu_s "$sink_pid"); pg_cpu0=$(pg_cpu_s); relay_cpu0=$(cpu_s "${pids[1]}")
  idle0=$(metric replicast_sink_writer_idle_seconds_total); blocked0=$(metric replicast_sink_session_blocked_seconds_total)
fi
started=$(date +%s.%N)
RUST_LOG=warn "$bin" collect --redis-url "redis://127.0.0.1:$redis_port" --simulate "$hosts" --no-local \
  --keep 5 --interval 200ms >/dev/null &
collector=$!
pids+=("$collector")
# The collector writes all its hosts each interval; count the writes Redis took.
zadds() { redis-cli -p "$redis_port" info commandstats | tr -d '\r' | awk -F'[=,]' '/^cmdstat_zadd:/ { print $2 }'; }
until [ "$(zadds || echo 0)" -ge "$samples" ] 2>/dev/null; do sleep 0.05; done
kill "$collector"
wait "$collector" 2>/dev/null || true
produced=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $started }")
target=$(redis_offset)
written=$(zadds)

[ -n "$live" ] || { sink_cpu0=$(cpu_s "$sink_pid"); pg_cpu0=$(pg_cpu_s); relay_cpu0=$(cpu_s "${pids[1]}"); }
perf_pid=
if [ -n "${PERF:-}" ]; then
  perf record -q -F 999 -g -o "$PERF" -p "$(echo "$sink_pid" "$pg_pid" $(pgrep -P "$pg_pid") | tr ' ' ,)" 2>/dev/null &
  perf_pid=$!
  sleep 0.5
fi
# The writer's waits for a batch and the session's for the writer, over the catch-up: whether reading and
# PostgreSQL's writing overlap (a pipeline held up by PostgreSQL shows the session blocked, the writer never idle).
if [ -n "$live" ]; then
  t0=$started
else
  # A stopped sink commits nothing: one that did was continued by something else, and times nothing here. Asked of
  # PostgreSQL, not of the sink's /metrics, which a stopped sink never answers.
  [ "$("${psql[@]}" -c 'SELECT count(*) FROM replicast.zset_history')" = "$rows_before" ] ||
    fail "the sink committed rows of the burst while stopped (was it continued?)"
  kill -CONT "$sink_pid"
  t0=$(date +%s.%N)
  idle0=$(metric replicast_sink_writer_idle_seconds_total); blocked0=$(metric replicast_sink_session_blocked_seconds_total)
fi
t_written=$(date +%s.%N)
wait_committed "$target" 600
[ -n "$perf_pid" ] && kill -INT "$perf_pid" && wait "$perf_pid" || true
elapsed=$(awk "BEGIN { print $(date +%s.%N) - $t0 }")
idle=$(awk "BEGIN { printf \"%.2f\", $(metric replicast_sink_writer_idle_seconds_total) - $idle0 }")
blocked=$(awk "BEGIN { printf \"%.2f\", $(metric replicast_sink_session_blocked_seconds_total) - $blocked0 }")
sink_cpu=$(awk "BEGIN { printf \"%.2f\", $(cpu_s "$sink_pid") - $sink_cpu0 }")
pg_cpu=$(awk "BEGIN { printf \"%.2f\", $(pg_cpu_s) - $pg_cpu0 }")
relay_cpu=$(awk "BEGIN { printf \"%.2f\", $(cpu_s "${pids[1]}") - $relay_cpu0 }")
rows_after=$("${psql[@]}" -c 'SELECT count(*) FROM replicast.zset_history')
rows=$((rows_after - rows_before))
[ "$rows" -ge "$written" ] || fail "PostgreSQL holds $rows new rows for $written samples written"
rate=$(awk "BEGIN { printf \"%.0f\", $rows / $elapsed }")
peak_kib=$(awk '/^VmHWM:/ { print $2 }' "/proc/$sink_pid/status")
stream_mib=$(awk "BEGIN { printf \"%.0f\", ($target) / 1048576 }")

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(postgres --version)"
echo "burst: $written samples of $hosts hosts written in ${produced} s$([ -n "$live" ] || echo " while the sink was stopped") (${stream_mib} MiB of stream)"
if [ -n "$live" ]; then
  echo "live: $rows rows committed in $(printf '%.2f' "$elapsed") s from the collector's start = $rate samples/s;" \
    "the last $(awk "BEGIN { printf \"%.2f\", $(date +%s.%N) - $t_written }") s after the collector's last write"
else
  echo "catch-up: $rows rows committed in $(printf '%.2f' "$elapsed") s = $rate samples/s"
fi
echo "CPU from $([ -n "$live" ] && echo "the collector's start" || echo "the sink's continuing") to the last commit: sink ${sink_cpu} s, PostgreSQL ${pg_cpu} s, relay ${relay_cpu} s" \
  "($(awk "BEGIN { printf \"%.1f\", $pg_cpu * 1e6 / $rows }") µs of PostgreSQL and" \
  "$(awk "BEGIN { printf \"%.1f\", $sink_cpu * 1e6 / $rows }") µs of sink per sample)"
echo "pipeline: the writer waited ${idle} s for batches, the session ${blocked} s for the writer"
echo "transactions: $(metric replicast_sink_batches_total), of which deduplicated: $(metric replicast_sink_deduplicated_batches_total)"
echo "sink peak RSS: $((peak_kib / 1024)) MiB"
echo "RESULT {\"bench\":\"sink\",\"live\":$([ -n "$live" ] && echo true || echo false),\"samples\":$rows,\"seconds\":$elapsed,\"samples_per_s\":$rate,\"sink_cpu_s\":$sink_cpu,\"postgres_cpu_s\":$pg_cpu,\"peak_rss_kib\":$peak_kib,\"writer_idle_s\":$idle,\"session_blocked_s\":$blocked}"
