#!/usr/bin/env bash
# The history endpoint's day query (issue 23): how long `GET /history` takes to answer a day of one host's 1 s
# samples (86,400 rows) as the host view asks for it — 13 fields (the 11 it charts and 2 cores), 2,000 points.
# Usage: bench/sink-history.sh [runs=5] [samples=86400]
# Starts its own redis-server, PostgreSQL (initdb in a scratch folder, its defaults), release relay and sink on free
# loopback ports; writes SAMPLES samples of the collector's shape (~870 bytes), one a second through yesterday
# (UTC, so that they land in a day partition the sink made), into Redis, waits until the sink has stored them all,
# then asks the endpoint RUNS times. Prints each answer's time and PostgreSQL's CPU for it, the median, and a
# `RESULT {json}` line, and cleans up.
# PROFILE=debug uses the debug build; SKIP_BUILD=1 uses the binaries already there; BIN=FILE runs that `replicast`
# binary (an older build, for a before and after).
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
source "$(dirname "$0")/sink-postgres.sh"
cd "$REPO_ROOT"

runs=${1:-5}
samples=${2:-86400}

sink_bench_binary

work=$(mktemp -d)
pids=()
pg_pid=
cleanup() {
  [ -n "$pg_pid" ] && kill -INT "$pg_pid" 2>/dev/null
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "sink-history.sh: $*" >&2; exit 1; }
wait_http() { until curl -fs "http://$1/healthz" >/dev/null 2>&1; do sleep 0.1; done; }

start_postgres
redis_port=$(free_port); relay_port=$(free_port); sink_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" --loglevel warning \
  >/dev/null 2>&1 &
pids+=($!)
until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.05; done
RUST_LOG=warn "$bin" serve --redis-url "redis://127.0.0.1:$redis_port" --listen "127.0.0.1:$relay_port" \
  --allow 'perf:*' --backlog-bytes $((samples * 1200 + (64 << 20))) --stream-only >/dev/null &
pids+=($!)
wait_http "127.0.0.1:$relay_port"
RUST_LOG=warn "$bin" sink --relay "ws://127.0.0.1:$relay_port/ws" --database "$database" --create-schema \
  --history 'perf:*' --listen "127.0.0.1:$sink_port" >"$work/sink.log" 2>&1 &
pids+=($!)
wait_http "127.0.0.1:$sink_port"

day_ms=86400000
from=$(( ($(date +%s) * 1000 / day_ms - 1) * day_ms ))
to=$((from + day_ms - 1))
# The collector's sample (docs/COLLECTOR.md) with two cores, every charted number moving with the time.
# A script's writes reach the relay as one MULTI block: 1,000 samples a script keeps each under a megabyte.
samples_lua="
for s = tonumber(ARGV[2]), tonumber(ARGV[3]) - 1 do
  local t = tonumber(ARGV[1]) + s * 1000
  redis.call('ZADD', 'perf:web-01', t, string.format(
    '{\"id\":\"web-01:%d\",\"t\":%d,\"host\":\"web-01\",\"cpu\":{\"total\":%.1f,\"cores\":[%.1f,%.1f]},' ..
    '\"mem\":{\"total\":8589934592,\"used\":%d,\"available\":5368709120,\"cached\":%d,\"swap_total\":0,\"swap_used\":%d},' ..
    '\"load\":[%.2f,%.2f,%.2f],\"net\":{\"rx\":%d,\"tx\":%d,\"ifaces\":{\"eth0\":{\"rx\":%d,\"tx\":%d},\"lo\":{\"rx\":2048,\"tx\":2048}}},' ..
    '\"disk\":{\"read\":%d,\"write\":%d},\"tcp\":{\"ESTABLISHED\":12,\"SYN_SENT\":0,\"SYN_RECV\":0,\"FIN_WAIT1\":0,' ..
    '\"FIN_WAIT2\":0,\"TIME_WAIT\":3,\"CLOSE\":0,\"CLOSE_WAIT\":0,\"LAST_ACK\":0,\"LISTEN\":4,\"CLOSING\":0},' ..
    '\"procs\":[{\"pid\":1234,\"name\":\"redis-server\",\"cpu\":3.2,\"mem\":12345678},' ..
    '{\"pid\":4321,\"name\":\"replicast\",\"cpu\":1.5,\"mem\":23456789}]}',
    t, t, s % 100 + 0.5, s % 97, s % 89, 3221225472 + s % 1000000, 2147483648 - s % 777, s % 13,
    s % 50 / 10, s % 40 / 10, s % 30 / 10, s % 1048576, s % 524288, s % 1048576, s % 524288, s % 4096, s % 65536))
end
redis.call('ZREMRANGEBYRANK', 'perf:web-01', 0, -11)"
for ((first = 0; first < samples; first += 1000)); do
  last=$((first + 1000 < samples ? first + 1000 : samples))
  redis-cli -p "$redis_port" EVAL "$samples_lua" 0 "$from" "$first" "$last" >/dev/null
done
stored() { "${psql[@]}" -c 'SELECT count(*) FROM replicast.zset_history_raw'; }
deadline=$((SECONDS + 600))
until [ "$(stored)" -ge "$samples" ]; do
  ((SECONDS < deadline)) || fail "the sink stored $(stored) of $samples samples within 600 s; log: $(tail -5 "$work/sink.log")"
  sleep 0.5
done
"${psql[@]}" -c 'VACUUM ANALYZE replicast.zset_history_raw'
echo "machine: $(nproc) cores; $(postgres --version); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "stored: $(stored) samples of perf:web-01, $("${psql[@]}" -c "SELECT pg_size_pretty(sum(pg_total_relation_size(inhrelid))) FROM pg_inherits WHERE inhparent = 'replicast.zset_history_raw'::regclass")"

fields=cpu.total,mem.used,mem.cached,mem.swap_used,net.rx,net.tx,disk.read,disk.write,load.0,load.1,load.2,cpu.cores.0,cpu.cores.1
url="http://127.0.0.1:$sink_port/history?key=perf:web-01&from=$from&to=$to&points=2000&fields=$fields"
times=()
for run in $(seq "$runs"); do
  cpu0=$(pg_cpu_s)
  answer=$(curl -fsS -o "$work/answer.json" -w '%{http_code} %{time_total}' "$url") || fail "the endpoint failed: $answer"
  cpu=$(awk "BEGIN { printf \"%.2f\", $(pg_cpu_s) - $cpu0 }")
  seconds=${answer#* }
  points=$(grep -o '\],\[' "$work/answer.json" | wc -l)
  grep -q '"step_ms":43200' "$work/answer.json" || fail "expected buckets of 43,200 ms: $(head -c 300 "$work/answer.json")"
  echo "run $run: $seconds s, $((points + 1)) points, PostgreSQL CPU $cpu s"
  times+=("$seconds")
done
median=$(printf '%s\n' "${times[@]}" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
echo "median: $median s of $runs (load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo "RESULT {\"bench\":\"sink-history\",\"samples\":$samples,\"fields\":13,\"points\":2000,\"runs\":[$(IFS=,; echo "${times[*]}")],\"median_s\":$median}"
