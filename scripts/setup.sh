#!/usr/bin/env bash
# Installs what `npm start` and `npm test` need, and nothing when it is all there (then it prints nothing and takes
# a few seconds): Debian packages, the wasm32 target, wasm-bindgen-cli at Cargo.lock's version, wasm-pack, and the
# npm dependencies from package-lock.json.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

say() { echo "setup: $*" >&2; }

missing_debs() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
  done
}

install_debs() {
  local need
  need=$(missing_debs "$@")
  [ -z "$need" ] && return 0
  say "installing Debian packages:" $need
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { say "need root (or sudo) to install: $need"; exit 1; }
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq $need >/dev/null
}

# Redis for the demo and the tests, Chromium and its driver for the browser tests, openssl for the TLS tests,
# RediSearch for the test of a module's commands in the replication stream, PostgreSQL for the sink's, Prometheus
# for its promtool (the test that checks /metrics) and nginx for the test of the relay behind a reverse proxy.
install_debs redis-server redis-tools chromium chromium-driver openssl redis-redisearch postgresql prometheus \
  nginx-light

# Debian keeps PostgreSQL's server programs out of PATH (/usr/lib/postgresql/<version>/bin); the sink's tests and
# the demo start their own servers with initdb and postgres.
if ! command -v initdb >/dev/null || ! command -v postgres >/dev/null; then
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$pg_bin" ] || { say "PostgreSQL's initdb was not found under /usr/lib/postgresql"; exit 1; }
  sudo=()
  [ "$(id -u)" != 0 ] && sudo=(sudo)
  say "linking PostgreSQL's initdb and postgres from $pg_bin into /usr/local/bin"
  "${sudo[@]}" ln -sf "$pg_bin/initdb" "$pg_bin/postgres" /usr/local/bin/
fi

# The wasm32 target: rustup's where it can be had; else Debian's rustc-web with a std built from its sources.
build_debian_wasm_std() {
  install_debs rustc-web cargo-web rust-web-src lld-22
  rustup toolchain list | grep -q '^debian-web' || rustup toolchain link debian-web /usr
  [ -e /usr/bin/rust-lld ] || ln -s /usr/lib/llvm-22/bin/lld /usr/bin/rust-lld
  if ! compgen -G "$DEBIAN_WASM_STD/libstd-*.rlib" >/dev/null; then
    say "building std for wasm32 from Debian's rust sources (about two minutes, once)"
    local tmp
    tmp=$(mktemp -d)
    mkdir -p "$tmp/src"
    printf '[package]\nname = "wasm-std-throwaway"\nversion = "0.0.0"\nedition = "2021"\n[lib]\npath = "src/lib.rs"\n' \
      >"$tmp/Cargo.toml"
    echo '#![no_std]' >"$tmp/src/lib.rs"
    (cd "$tmp" && RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc \
      CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/llvm-22/bin/wasm-ld \
      /usr/bin/cargo build -q --release --target wasm32-unknown-unknown \
      -Zbuild-std=std,panic_abort,panic_unwind,proc_macro,test)
    mkdir -p "$DEBIAN_WASM_STD"
    find "$tmp/target/wasm32-unknown-unknown/release/deps" -name 'lib*.rlib' \
      ! -name 'libwasm_std_throwaway-*' -exec cp {} "$DEBIAN_WASM_STD/" \;
    rm -rf "$tmp"
  fi
}

if ! rustup_has_wasm_target && ! debian_web_ready; then
  # rustup hangs where its servers can't be reached, hence the timeout.
  if ! timeout 60 rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then
    say "rustup could not add wasm32-unknown-unknown; using Debian's rustc-web instead"
    build_debian_wasm_std
  fi
fi
wasm_build_env >/dev/null
# std's sources, from which scripts/package.sh builds the npm package's client for size (Debian's toolchain has
# them from rust-web-src). Not fatal: without them the package is built with the prebuilt std, larger, and says so.
if rustup_has_wasm_target && ! wasm_std_sources; then
  timeout 60 rustup component add rust-src >/dev/null 2>&1 ||
    say "rustup could not add rust-src; the npm package's client will be built with the prebuilt std (larger)"
fi

# wasm-bindgen-cli must be exactly the version of the wasm-bindgen crate in Cargo.lock.
want=$(locked_wasm_bindgen_version)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  say "installing wasm-bindgen-cli $want (was: ${have:-none})"
  # Its own lockfile can name versions a registry mirror lacks; then let cargo resolve afresh.
  cargo install -q --locked --force wasm-bindgen-cli --version "=$want" 2>/dev/null ||
    cargo install -q --force wasm-bindgen-cli --version "=$want"
fi
if ! command -v wasm-pack >/dev/null; then
  say "installing wasm-pack"
  cargo install -q --locked wasm-pack 2>/dev/null || cargo install -q wasm-pack
fi

# npm dependencies, reinstalled only when the lockfile changed.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi
