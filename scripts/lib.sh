# Shared helpers for the scripts in this folder; source it, don't run it.
# It decides which Rust toolchain builds the wasm package: rustup's own target where it is installed, else the
# `debian-web` toolchain that setup.sh links from Debian's rustc-web (see DEVELOPERS.md on why both exist).

# cargo's binaries (wasm-pack, wasm-bindgen) live here for a rustup user.
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) PATH="$HOME/.cargo/bin:$PATH" ;; esac
export PATH

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export REPO_ROOT

# The wasm std built by setup.sh for Debian's rustc goes here.
DEBIAN_WASM_STD=/usr/lib/rustlib/wasm32-unknown-unknown/lib

rustup_has_wasm_target() {
  rustup target list --installed 2>/dev/null | grep -qx 'wasm32-unknown-unknown'
}

debian_web_ready() {
  rustup toolchain list 2>/dev/null | grep -q '^debian-web' &&
    compgen -G "$DEBIAN_WASM_STD/libstd-*.rlib" >/dev/null &&
    [ -e /usr/bin/rust-lld ]
}

# Prints the environment assignments for a wasm build, one per line, for `env`.
# With Debian's toolchain the wasm build gets its own target dir, so that the two compilers never share `target/`
# (sharing it would rebuild everything on each switch).
wasm_build_env() {
  if rustup_has_wasm_target; then
    echo "CARGO_TARGET_DIR=$REPO_ROOT/target/wasm"
  elif debian_web_ready; then
    echo "RUSTUP_TOOLCHAIN=debian-web"
    echo "CARGO_TARGET_DIR=$REPO_ROOT/target/wasm"
  else
    echo "setup: no wasm32-unknown-unknown target; run scripts/setup.sh" >&2
    return 1
  fi
}

# Runs a command with the wasm build environment.
with_wasm_env() {
  local vars
  vars=$(wasm_build_env) || return 1
  # shellcheck disable=SC2046
  env $(echo "$vars" | tr '\n' ' ') "$@"
}

# Copies into folder $2 each file of folder $1 (dot files left out) whose content differs there or that is missing,
# and leaves the others untouched: the relay embeds www/ and wasm/pkg when it is built (server/build.rs), and cargo
# rebuilds it whenever a file there is newer, so rewriting identical files would rebuild it on every build.
copy_changed() {
  local from=$1 to=$2 file
  while IFS= read -r -d '' file; do
    if ! cmp -s "$from/$file" "$to/$file"; then
      mkdir -p "$(dirname "$to/$file")"
      cp "$from/$file" "$to/$file"
    fi
  done < <(cd "$from" && find . -type f ! -name '.*' -print0)
}

# Whether the wasm toolchain has std's own sources (rustup's `rust-src` component, Debian's `rust-web-src`, which
# setup.sh installs): with them, the npm package's client is built with std compiled from source (build_wasm_client).
wasm_std_sources() {
  local sysroot
  sysroot=$(with_wasm_env rustc --print sysroot 2>/dev/null) || return 1
  [ -f "$sysroot/lib/rustlib/src/rust/library/Cargo.lock" ]
}

# Prints how the npm package's client gets its std: `source` where the wasm toolchain has std's sources, else
# `prebuilt` (the toolchain's std for wasm32, built for speed and with panic messages: larger, see docs/BENCHMARKS.md).
wasm_client_std() {
  if wasm_std_sources; then echo source; else echo prebuilt; fi
}

# The rustc flag that makes a panic an immediate trap, with no panic machinery, messages or locations compiled
# in: `-Cpanic=immediate-abort` where rustc has it (1.92 on), else nothing (older std has a cargo feature instead,
# see build_wasm_client).
immediate_abort_flag() {
  if with_wasm_env env RUSTC_BOOTSTRAP=1 rustc -Zunstable-options -Cpanic=immediate-abort \
    --target wasm32-unknown-unknown --print cfg 2>/dev/null | grep -qx 'panic="immediate-abort"'; then
    echo "-Zunstable-options -Cpanic=immediate-abort"
  fi
}

# The rustc flags, of those the toolchain has, that leave out what only a panic or `{:?}` would print:
# `-Zlocation-detail=none` (no file names, lines or columns in `Location`s, which only panics read, and panics are
# an immediate trap in this build) and `-Zfmt-debug=none` (`{:?}` prints nothing: the client formats no text a page
# sees with it; `Debug` is for tests and panics). 560 bytes of the gzipped client (docs/BENCHMARKS.md).
trimming_flags() {
  local flag flags=""
  for flag in -Zlocation-detail=none -Zfmt-debug=none; do
    if with_wasm_env env RUSTC_BOOTSTRAP=1 rustc "$flag" --target wasm32-unknown-unknown --print cfg \
      >/dev/null 2>&1; then
      flags="$flags $flag"
    fi
  done
  echo "$flags"
}

# Builds the npm package's client for wasm-pack target $1 (web, nodejs) into the folder $2, for size: with no
# features (neither `rdb`'s RdbScan nor `bench`'s benchmark classes), the `wasm-release` profile (Cargo.toml),
# and, when $3 is `source` (wasm_client_std), std compiled from its sources with the client (`-Zbuild-std`, so
# under RUSTC_BOOTSTRAP: only this build uses unstable options): at the profile's opt-level "z" with std's
# `optimize_for_size` feature, and panics an immediate `unreachable` trap. A panic on wasm32-unknown-unknown was
# already a trap with its message discarded (std has nowhere to print it there), so nothing a page sees changes;
# what goes is the code that formats the message and the panic locations' file names. With the feature
# `short-texts`: the error texts as codes, whose words finish_wasm_client puts in the glue (scripts/wasm-texts.mjs).
# $4, when given, adds cargo features of the crate (bench/assembler/README.md: `bench`, to time the client as it ships).
# Fails with wasm-pack's status (set -e does not hold inside a function a caller tests).
build_wasm_client() {
  local target=$1 std=${3:-prebuilt} out flags features=optimize_for_size abort crate=short-texts${4:+,$4}
  out=$(realpath -m "$2")
  # Panic locations name source files; the crates' would carry the builder's home folder into the package.
  flags="--remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}/registry/src=crates"
  if [ "$std" = source ]; then
    # std's own locations (wasm-bindgen's `unwrap_throw` names its caller) would name the toolchain's folder.
    flags="$flags --remap-path-prefix=$(with_wasm_env rustc --print sysroot)/lib/rustlib/src/rust=rust"
    abort=$(immediate_abort_flag)
    if [ -n "$abort" ]; then flags="$flags $abort"; else features="$features,panic_immediate_abort"; fi
    flags="$flags$(trimming_flags)"
    RUSTC_BOOTSTRAP=1 RUSTFLAGS="$flags" with_wasm_env wasm-pack --quiet build wasm --profile wasm-release \
      --target "$target" --out-dir "$out" -- --features "$crate" -Zbuild-std=std,panic_abort \
      -Zbuild-std-features="$features" || return
  else
    RUSTFLAGS="$flags" with_wasm_env wasm-pack --quiet build wasm --profile wasm-release --target "$target" \
      --out-dir "$out" -- --features "$crate" || return
  fi
  # wasm-pack writes a .gitignore of "*" into the package folder; it would hide the files from a later `git add`.
  rm -f "$out/.gitignore"
}

# Shrinks the .wasm file $1 in place with wasm-opt -Oz from npm's `binaryen` (pinned in package.json: Debian's
# binaryen is too old for the reference types wasm-bindgen emits, and wasm-pack would download its own), without
# its inlining of functions called once: that makes the file smaller but its gzip larger (about 9 KB gzipped more
# on the client; docs/BENCHMARKS.md), and the file goes over the network compressed.
optimize_wasm() {
  "$REPO_ROOT/node_modules/.bin/wasm-opt" -Oz --converge --one-caller-inline-max-function-size=0 --strip-debug \
    --strip-producers "$1" -o "$1"
}

# Makes a client that build_wasm_client built ready to ship, as the npm package and the relay's /pkg serve it: its
# .wasm $1 shrunk (optimize_wasm), then short import and export names in it and in each glue file after it, the web
# build's .d.ts beside it included (scripts/wasm-names.mjs; the glue's JavaScript API keeps its names), the words of
# the error texts the .wasm holds as codes in each glue file (scripts/wasm-texts.mjs), `Replicast` given the reads
# of `Assembler` in each glue file and .d.ts (scripts/wasm-reads.mjs), then without its target_features section.
finish_wasm_client() {
  local wasm=$1
  shift
  optimize_wasm "$wasm"
  node "$REPO_ROOT/scripts/wasm-texts.mjs" "$wasm" "$@"
  node "$REPO_ROOT/scripts/wasm-reads.mjs" "$@"
  node "$REPO_ROOT/scripts/wasm-names.mjs" "$wasm" "$@"
  # Last: wasm-opt reads the features the code uses from the target_features section, which engines ignore.
  "$REPO_ROOT/node_modules/.bin/wasm-opt" --strip-target-features "$wasm" -o "$wasm"
}

# The wasm-bindgen version Cargo.lock pins; wasm-bindgen-cli must match it exactly.
locked_wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$REPO_ROOT/Cargo.lock"
}

# Prints a loopback port nothing listens on, never printed before by this script (the count lives in
# "$work/.next-port", so it survives `$(free_port)`'s subshell). Ports come from just below the kernel's ephemeral
# range: a port the kernel hands out for bind(0) can go to the next outgoing connection before the server binds it.
free_port() {
  local counter=${work:?free_port needs \$work}/.next-port low high port
  read -r low high </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || { low=32768 high=60999; }
  if ((low >= 11024)); then port=$((low - 10000 + $$ % 5000)); else port=$((high + 1)); fi
  [ -s "$counter" ] && port=$(<"$counter")
  until python3 -c 'import socket, sys; socket.socket().bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null; do
    port=$((port + 1))
    ((port <= 65535)) || { echo "free_port: no free loopback port left" >&2; return 1; }
  done
  echo $((port + 1)) >"$counter"
  echo "$port"
}
