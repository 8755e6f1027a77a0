#!/usr/bin/env bash
# Redis Cluster benchmark: throughput of `redis-benchmark --cluster` and the relay's lag per shard while it follows
# every shard (`replicast serve --cluster`), for a cluster of SHARDS primaries with one replica each.
# Usage: bench/cluster.sh [shards=3] [requests=1000000] [clients=50]
# Starts its own cluster-enabled redis-servers and a release relay on free loopback ports, runs the load and the
# sampling (bench/cluster-load.mjs), prints one line per measurement and a `RESULT {json}` line for bench/run.mjs,
# and cleans up. One shard is a primary owning all 16384 slots (`redis-cli --cluster create` wants three), joined by
# hand, and loaded without --cluster (redis-benchmark --cluster wants two primaries or more). PROFILE=debug uses the debug build; SKIP_BUILD=1 uses the binaries already there. FOLLOWER=replica starts no
# relay and samples each primary's own replica instead: a check of everything but the relay. RELAY_ARGS adds flags to
# the relay's (`RELAY_ARGS=--stateless`: no state per shard, to compare).
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$REPO_ROOT"

shards=${1:-3}
requests=${2:-1000000}
clients=${3:-50}
follower=${FOLLOWER:-relay}

profile=${PROFILE:-release}
bin=target/$profile/replicast
if [ "$follower" = relay ] && { [ -z "${SKIP_BUILD:-}" ] || [ ! -x "$bin" ]; }; then
  if [ "$profile" = debug ]; then cargo build -q -p replicast-server --bins; else cargo build -q --release -p replicast-server --bins; fi
fi

work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "cluster.sh: $*" >&2; exit 1; }

cli() { local port=$1; shift; redis-cli -p "$port" "$@"; }
# The cluster bus gets a checked free port of its own, not the default port + 10000.
declare -A bus
start_node() { # port
  local port=$1 dir=$work/node-$1
  mkdir -p "$dir"
  bus[$port]=$(free_port)
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --repl-diskless-sync-delay 0 \
    --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" --cluster-port "${bus[$port]}" --cluster-node-timeout 2000 \
    --cluster-allow-replica-migration no --dir "$dir" --loglevel warning >"$dir/redis.log" 2>&1 &
  pids+=($!)
  until cli "$port" ping >/dev/null 2>&1; do sleep 0.05; done
}
# Every node: cluster_state ok, as many known nodes as started, replicas' links up.
wait_cluster() {
  local deadline=$((SECONDS + 30)) port
  for port in "${primaries[@]}" "${replicas[@]}"; do
    until cli "$port" cluster info | grep -q 'cluster_state:ok' &&
      [ "$(cli "$port" cluster nodes | grep -cv 'fail\|handshake')" = $((2 * shards)) ]; do
      [ $SECONDS -lt $deadline ] || fail "the cluster did not settle in 30 s (node $port)"
      sleep 0.05
    done
  done
  for port in "${replicas[@]}"; do
    until cli "$port" info replication | grep -q 'master_link_status:up'; do
      [ $SECONDS -lt $deadline ] || fail "replica $port never linked to its primary"
      sleep 0.05
    done
  done
}

primaries=(); replicas=()
for _ in $(seq "$shards"); do primaries+=("$(free_port)"); replicas+=("$(free_port)"); done
for port in "${primaries[@]}" "${replicas[@]}"; do start_node "$port"; done
if [ "$shards" -ge 3 ]; then
  # Given as primaries then replicas, redis-cli makes the first `shards` nodes the primaries.
  redis-cli --cluster create $(printf '127.0.0.1:%s ' "${primaries[@]}" "${replicas[@]}") --cluster-replicas 1 \
    --cluster-yes >"$work/create.log" 2>&1 || fail "redis-cli --cluster create failed: $(tail -5 "$work/create.log")"
else
  # What `--cluster create` does, for fewer than three primaries: the slots split evenly, every node met, each
  # replica attached to its primary.
  for i in "${!primaries[@]}"; do
    from=$((16384 * i / shards)); to=$((16384 * (i + 1) / shards - 1))
    cli "${primaries[$i]}" cluster addslotsrange "$from" "$to" >/dev/null
  done
  for port in "${primaries[@]:1}" "${replicas[@]}"; do cli "$port" cluster meet 127.0.0.1 "${primaries[0]}" "${bus[${primaries[0]}]}" >/dev/null; done
  for i in "${!primaries[@]}"; do
    id=$(cli "${primaries[$i]}" cluster myid)
    deadline=$((SECONDS + 30))
    until cli "${replicas[$i]}" cluster replicate "$id" 2>&1 | grep -q OK; do
      [ $SECONDS -lt $deadline ] || fail "${replicas[$i]} could not replicate ${primaries[$i]}"
      sleep 0.05
    done
  done
fi
wait_cluster
# Until the primaries, in the order of their slots, are the ones started as primaries, the replicas are not placed.
for i in "${!primaries[@]}"; do
  cli "${primaries[$i]}" info replication | grep -q 'role:master' || fail "${primaries[$i]} is not a primary"
done

relay=none
if [ "$follower" = relay ]; then
  relay_port=$(free_port)
  seeds=$(printf '127.0.0.1:%s,' "${primaries[@]}")
  # shellcheck disable=SC2086 # RELAY_ARGS is a list of flags.
  RUST_LOG=warn "$bin" serve --cluster "${seeds%,}" --listen "127.0.0.1:$relay_port" --allow 'perf:*' ${RELAY_ARGS:-} \
    >"$work/relay.out" 2>"$work/relay.err" &
  relay_pid=$!
  pids+=("$relay_pid")
  until grep -q 'Replicast is live at ' "$work/relay.out"; do
    if ! kill -0 "$relay_pid" 2>/dev/null; then
      fail "the relay exited before serving: it does not accept \`serve --cluster\` yet (or could not follow the" \
        "cluster). Its stderr: $(tail -20 "$work/relay.err")"
    fi
    sleep 0.1
  done
  relay=127.0.0.1:$relay_port
  until curl -fs "http://$relay/metrics" | grep -q '^replicast_shard_link_offset'; do
    kill -0 "$relay_pid" 2>/dev/null || fail "the relay exited: $(tail -5 "$work/relay.err")"
    sleep 0.1
  done
fi
# Steady state, as in relay.sh: the first ACKs after a full sync come up to a second late.
sleep 2

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(redis-server --version | cut -d' ' -f1-3)"
echo "cluster: $shards shard(s), primaries ${primaries[*]}, replicas ${replicas[*]}; follower: $follower ${RELAY_ARGS:-}"
node bench/cluster-load.mjs --primaries "$(IFS=,; echo "${primaries[*]}")" --relay "$relay" --requests "$requests" \
  --clients "$clients"
