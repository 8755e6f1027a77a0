#!/usr/bin/env bash
# `npm start`: sets up and builds what is missing, then runs the relay. Without REDIS_URL the relay starts an
# embedded redis-server on a free port and, for the monitoring demo, the collector in-process: this machine plus
# REPLICAST_DEMO_HOSTS simulated hosts (20 by default; 0 for this machine only) writing perf:<host> every second,
# and lets the page's notes on hosts be written: the stream annotations:perf is allowed and writable (REPLICAST_ALLOW
# and REPLICAST_WRITABLE, if set, win). With REDIS_URL (or REPLICAST_CLUSTER, a Redis Cluster's node) nothing is made
# writable unless you say so.
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
exec target/release/replicast serve "$@"
