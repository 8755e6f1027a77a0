#!/usr/bin/env bash
# What routing costs PostgreSQL (issue 23.3): its CPU for a COPY of the collector's samples into the partitioned
# history table (each row routed to its day's partition) and straight into the day's partition, as the sink writes
# them, alternated. Usage: bench/sink-copy-target.sh [rows=100000] [runs=5] [parts]
# Starts its own redis-server and PostgreSQL (bench/sink-postgres.sh, its defaults), lets `replicast collect
# --simulate 1000 --once` write a sample of each of 1,000 hosts, and makes of them ROWS rows of today (the sink's
# columns: key, time, score, value as json, digest) in a CSV file; then, RUNS times each, empties the table,
# checkpoints, and times `COPY … FROM` that file into `replicast.zset_history_raw` and into its partition of today.
# CPU is that of every PostgreSQL process over the COPY, from /proc. Prints a line per run and a `RESULT {json}`
# line with the medians. SKIP_BUILD=1 / BIN=FILE as bench/sink.sh (the binary only writes the samples).
# With `parts`, what a row's parts cost PostgreSQL instead (the sink's fifth cut): the same COPY into four plain
# tables of the partition's columns, alternated — as the sink's partition (`value json`, primary key (key, time,
# digest)), with `value text` (no JSON check), without the primary key, and with neither — each emptied,
# checkpointed and timed as above.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
source "$(dirname "$0")/sink-postgres.sh"
cd "$REPO_ROOT"

rows=${1:-100000}
runs=${2:-5}
mode=${3:-}
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

start_postgres
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" --loglevel warning \
  >/dev/null 2>&1 &
pids+=($!)
until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.05; done
RUST_LOG=warn "$bin" collect --redis-url "redis://127.0.0.1:$redis_port" --simulate 1000 --no-local --once >/dev/null

# The samples as the sink's rows, times a millisecond apart from today's first instant (UTC).
redis-cli -p "$redis_port" --raw keys 'perf:*' | while read -r key; do
  redis-cli -p "$redis_port" --raw zrange "$key" 0 0 | sed "s/^/$key\t/"
done >"$work/samples.tsv"
python3 - "$work/samples.tsv" "$work/rows.csv" "$rows" <<'EOF'
import csv, datetime, hashlib, sys, time
samples = [line.rstrip("\n").split("\t", 1) for line in open(sys.argv[1])]
day = int(time.time()) // 86400 * 86400 * 1000
with open(sys.argv[2], "w", newline="") as out:
    w = csv.writer(out)
    for i in range(int(sys.argv[3])):
        key, value = samples[i % len(samples)]
        ms = day + i
        w.writerow([key, datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat(timespec="milliseconds"), ms, value, "\\x" + hashlib.md5(str(i).encode()).hexdigest()])
EOF
chmod 644 "$work/rows.csv"
bytes=$(stat -c %s "$work/rows.csv")
children=$(pgrep -c -P "$pg_pid")

# PostgreSQL's processes once the last psql's backend has exited and been reaped (its CPU is then the postmaster's
# children's, which pg_cpu_s counts; a backend still exiting would be missed, or counted in the next COPY).
settled() { while [ "$(pgrep -c -P "$pg_pid")" -gt "$children" ]; do sleep 0.01; done; }
if [ "$mode" = parts ]; then
  columns="key text NOT NULL, time timestamptz NOT NULL, score double precision NOT NULL, digest bytea NOT NULL"
  key=", PRIMARY KEY (key, time, digest)"
  # No autovacuum worker of one table ending (and counted) within the COPY of another.
  quiet="WITH (autovacuum_enabled = off)"
  "${psql[@]}" -q <<EOF
CREATE TABLE sink_row ($columns, value json NOT NULL$key) $quiet;
CREATE TABLE text_value ($columns, value text NOT NULL$key) $quiet;
CREATE TABLE no_key ($columns, value json NOT NULL) $quiet;
CREATE TABLE neither ($columns, value text NOT NULL) $quiet;
EOF
  part_cpu() { # table: CPU seconds of PostgreSQL over one COPY of the file into it
    "${psql[@]}" -q -c "TRUNCATE $1" -c CHECKPOINT
    local before after
    settled
    before=$(pg_cpu_s)
    "${psql[@]}" -q -c "COPY $1 (key, time, score, value, digest) FROM '$work/rows.csv' CSV"
    settled
    after=$(pg_cpu_s)
    [ "$("${psql[@]}" -c "SELECT count(*) FROM $1")" = "$rows" ] || { echo "sink-copy-target.sh: rows missing in $1" >&2; exit 1; }
    awk "BEGIN { printf \"%.3f\", $after - $before }"
  }
  median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
  echo "machine: $(nproc) cores; $(postgres --version); $rows rows of 1,000 hosts' samples, $((bytes / rows)) bytes each as CSV"
  declare -A cpu
  tables=(sink_row text_value no_key neither)
  for run in $(seq "$runs"); do
    line="run $run (load $(cut -d' ' -f1 /proc/loadavg)):"
    for table in "${tables[@]}"; do
      cpu[$table]+=" $(part_cpu "$table")"
      line+=" $table ${cpu[$table]##* } s"
    done
    echo "$line"
  done
  result=
  for table in "${tables[@]}"; do
    # shellcheck disable=SC2086 # the runs, one word each
    m=$(median ${cpu[$table]})
    echo "median: $table $m s ($(awk "BEGIN { printf \"%.2f\", $m * 1e6 / $rows }") µs a row)"
    result+="${result:+,}\"$table\":$m"
  done
  echo "RESULT {\"bench\":\"sink-copy-parts\",\"rows\":$rows,\"runs\":$runs,\"median_cpu_s\":{$result}}"
  exit 0
fi

partition=zset_history_$(date -u +%Y%m%d)
"${psql[@]}" -q <<EOF
CREATE SCHEMA replicast;
CREATE TABLE replicast.zset_history_raw (
  key text NOT NULL, time timestamptz NOT NULL, score double precision NOT NULL, value json NOT NULL,
  digest bytea NOT NULL, PRIMARY KEY (key, time, digest)
) PARTITION BY RANGE (time);
CREATE TABLE replicast.zset_history_default PARTITION OF replicast.zset_history_raw DEFAULT;
CREATE TABLE replicast.$partition PARTITION OF replicast.zset_history_raw
  FOR VALUES FROM ('$(date -u +%Y-%m-%d) 00:00+00') TO ('$(date -u -d tomorrow +%Y-%m-%d) 00:00+00');
EOF

copy_cpu() { # table: CPU seconds of PostgreSQL over one COPY of the file into it
  "${psql[@]}" -q -c "TRUNCATE replicast.zset_history_raw" -c CHECKPOINT
  local before after
  settled
  before=$(pg_cpu_s)
  "${psql[@]}" -q -c "COPY replicast.$1 (key, time, score, value, digest) FROM '$work/rows.csv' CSV"
  settled
  after=$(pg_cpu_s)
  [ "$("${psql[@]}" -c "SELECT count(*) FROM replicast.$partition")" = "$rows" ] ||
    { echo "sink-copy-target.sh: the rows are not in $partition" >&2; exit 1; }
  awk "BEGIN { printf \"%.3f\", $after - $before }"
}

echo "machine: $(nproc) cores; $(postgres --version); $rows rows of 1,000 hosts' samples, $((bytes / rows)) bytes each as CSV"
parent=() direct=()
for run in $(seq "$runs"); do
  parent+=("$(copy_cpu zset_history_raw)")
  direct+=("$(copy_cpu "$partition")")
  echo "run $run: into the partitioned table ${parent[-1]} s, into the day's partition ${direct[-1]} s of PostgreSQL CPU (load $(cut -d' ' -f1 /proc/loadavg))"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mp=$(median "${parent[@]}"); md=$(median "${direct[@]}")
echo "median: partitioned table $mp s ($(awk "BEGIN { printf \"%.2f\", $mp * 1e6 / $rows }") µs a row), day's partition $md s ($(awk "BEGIN { printf \"%.2f\", $md * 1e6 / $rows }") µs a row)"
echo "RESULT {\"bench\":\"sink-copy-target\",\"rows\":$rows,\"runs\":$runs,\"parent_cpu_s\":[$(IFS=,; echo "${parent[*]}")],\"partition_cpu_s\":[$(IFS=,; echo "${direct[*]}")],\"parent_median_s\":$mp,\"partition_median_s\":$md}"
