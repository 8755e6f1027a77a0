# PostgreSQL for the sink's benches (bench/sink.sh, bench/sink-history.sh); source it, don't run it. Needs $work
# (a scratch folder, removed by the caller) and scripts/lib.sh's free_port. `start_postgres` runs initdb and a
# server with its defaults (fsync and synchronous_commit on; PG_SETTINGS="name=value …" changes some, e.g.
# "max_wal_size=8GB wal_init_zero=off") on a free loopback port, and sets pg_pid, pg_port,
# database (the URL of its database `replicast`) and psql (a command reading that database, unaligned). Stop it
# with `kill -INT "$pg_pid"`. `pg_cpu_s` prints the CPU seconds of all its processes so far. `sink_bench_binary` sets
# bin: $BIN, or target/$PROFILE/replicast (release unless PROFILE=debug), built first unless SKIP_BUILD=1 finds it.

sink_bench_binary() {
  local profile=${PROFILE:-release}
  bin=${BIN:-$REPO_ROOT/target/$profile/replicast}
  if [ -z "${BIN:-}" ] && { [ -z "${SKIP_BUILD:-}" ] || [ ! -x "$bin" ]; }; then
    if [ "$profile" = debug ]; then cargo build -q -p replicast-server --bins; else cargo build -q --release -p replicast-server --bins; fi
  fi
}

start_postgres() {
  # PostgreSQL refuses to run as root: as root, its files and processes belong to the postgres user.
  local as_pg=()
  if [ "$(id -u)" = 0 ]; then
    chmod 711 "$work"
    as_pg=(setpriv --reuid=postgres --regid=postgres --clear-groups --)
  fi
  mkdir "$work/pg"
  [ ${#as_pg[@]} -gt 0 ] && chown postgres: "$work/pg"
  pg_port=$(free_port)
  "${as_pg[@]}" initdb -D "$work/pg/data" -U postgres -A trust -E UTF8 --locale=C >/dev/null
  local settings=() setting
  for setting in ${PG_SETTINGS:-}; do settings+=(-c "$setting"); done
  "${as_pg[@]}" postgres -D "$work/pg/data" -p "$pg_port" -k "$work/pg" -c listen_addresses=127.0.0.1 \
    "${settings[@]}" >"$work/pg/log" 2>&1 &
  pg_pid=$!
  until grep -q 'ready to accept connections' "$work/pg/log"; do sleep 0.1; done
  psql=(psql -h 127.0.0.1 -p "$pg_port" -U postgres -qAt -d replicast)
  psql -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -qc 'CREATE DATABASE replicast'
  database="postgres://postgres@127.0.0.1:$pg_port/replicast"
}

# CPU seconds (user + system) of a process, or of PostgreSQL's processes (its backends come and go: their time is
# counted in the postmaster's children fields once they exit, and by their own while they run).
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15 + $16 + $17) / hz }' "/proc/$1/stat"; }
pg_cpu_s() {
  local total=0 pid
  for pid in $pg_pid $(pgrep -P "$pg_pid"); do total=$(awk "BEGIN { print $total + $(cpu_s "$pid" 2>/dev/null || echo 0) }"); done
  echo "$total"
}
