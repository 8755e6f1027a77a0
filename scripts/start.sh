#!/usr/bin/env bash
# `npm start`: sets up and builds what is missing, then runs the relay. Without REDIS_URL the relay starts an
# embedded redis-server on a free port. Extra arguments go to `replicast serve` (e.g. `npm start -- --listen
# 127.0.0.1:9000`).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

bash scripts/setup.sh
bash scripts/build.sh release
exec target/release/replicast serve "$@"
