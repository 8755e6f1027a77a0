#!/usr/bin/env bash
# Fan-out at the scale of issue 22.3, through bench/relay.sh's fan-out (a real redis-server, the release relay and
# the native tokio client of server/examples/relay_bench.rs, which shares the machine's cores with the relay):
#   - 10,000 sessions, each watching one host (`perf:hostN`), 10,000 ZADDs a second in total;
#   - 1,000 sessions, each watching all 200 hosts, one ZADD a second per host (200,000 deliveries a second).
# Usage: bench/fanout.sh [runs=3] [seconds=20] [source-addresses=4]
# Each run prints relay_bench's `fanout:` line and a `RESULT {json}` line. The relay and the client each need an
# fd per session: relay.sh raises the limit (ulimit -n 65536); the sessions are spread over several loopback
# source addresses (127.0.0.1 and up) so that one address's ephemeral ports are not the limit.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-3}
seconds=${2:-20}
sources=${3:-4}

for run in $(seq "$runs"); do
  echo "run $run of $runs: 10,000 sessions, one host each, 10,000 ZADD/s"
  FANOUT_ONLY=1 bench/relay.sh 0 10000 10000 "$seconds" 10000 1 "$sources"
  echo "run $run of $runs: 1,000 sessions, all 200 hosts each, 200 ZADD/s"
  FANOUT_ONLY=1 SKIP_BUILD=1 bench/relay.sh 0 1000 200 "$seconds" 200 200 "$sources"
done
