#!/usr/bin/env bash
# The differential test's long run (issue 17): the seeded random workload of server/tests/differential over every
# command the assembler knows, against a real redis-server and two relay binaries (one withholding the workload's
# s:* keys with --allow), with pages (the native assembler) watching two databases at windows from 1 to 1,000,
# compared with Redis at four checkpoints per seed.
# Usage: bench/differential.sh [steps=100000] [seeds=1,2,3]
# Prints one line per seed (steps, steps Redis refused, joins, stale messages, top-ups, windows compared, time, and
# how many moves, copies and sorts across databases and from unwatched keys Redis carried out); on a difference it
# stops with every key that differs, how, what the page was told of it and the steps that named it
# (DIFFERENTIAL_SHOW=key,… shows other keys too). `cargo test` runs the same test short (one seed, 2,000 steps).
# The debug build is used: this is a check, not a timing.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$REPO_ROOT"

steps=${1:-100000}
seeds=${2:-1,2,3}

DIFFERENTIAL_STEPS=$steps DIFFERENTIAL_SEEDS=$seeds \
  cargo test -q -p replicast-server --test differential every_window_equals_redis -- --nocapture
