#!/usr/bin/env bash
# The hogsvm binary for the scripts that run it: prints its absolute path on the last line.
# usage: scripts/hogsvm_bin.sh      (run from the repository root, as the scripts do after `cd`)
#
# HOGSVM_BIN=PATH set: that binary (a path, relative to the repository root, or a name on PATH);
# nothing is built. A cargo integration test passes env!("CARGO_BIN_EXE_hogsvm") this way, so no
# nested `cargo build` runs (tests/peer_scripts.rs).
# Otherwise: `cargo build --release --locked --quiet --bin hogsvm` here, then target/release/hogsvm (under
# $CARGO_TARGET_DIR instead of target/ when that is set).
set -euo pipefail
if [ -n "${HOGSVM_BIN:-}" ]; then
  case "$HOGSVM_BIN" in
    */*) bin="$HOGSVM_BIN" ;;
    *) bin="$(command -v -- "$HOGSVM_BIN" || true)" ;;
  esac
  if [ -z "$bin" ] || [ ! -f "$bin" ] || [ ! -x "$bin" ]; then
    echo "HOGSVM_BIN=$HOGSVM_BIN: no such executable file (from $PWD)" >&2
    exit 2
  fi
  echo "$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
else
  cargo build --release --locked --quiet --bin hogsvm >&2
  target="${CARGO_TARGET_DIR:-target}"
  case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
  echo "$target/release/hogsvm"
fi
