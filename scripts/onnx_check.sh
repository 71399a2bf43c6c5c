#!/usr/bin/env bash
# hogsvm's ONNX export against onnxruntime (scripts/onnx_check.py): trains every classical stage
# combination and four small CNN variants on the data (and a two-class subset of it), exports each
# (`hogsvm export`, opset 17 and a few others, dynamic and fixed batch), runs onnx.checker
# (full_check) and onnxruntime (CPU) on the test split, and compares with `hogsvm eval --scores`:
# labels identical, scores within 1e-4, metadata present. One JSON line per ONNX file, then a
# summary line; exit status 1 when any check fails. Part of the README's test command
# (scripts/test.sh).
# usage: scripts/onnx_check.sh [--data DIR_WITH_IDX] [--cnn-epochs 1] [--tolerance 1e-4]
#          [--only NAME,...] [--no-two-class] [--json OUT.json]
#   (default --data: fixtures/fashion-mnist)
# Runs from the repository root: relative paths in the arguments are taken from there.
# Builds hogsvm (cargo build --release) unless HOGSVM_BIN=PATH names the binary to use
# (scripts/hogsvm_bin.sh). The Python side runs in scripts/.venv (scripts/venv.sh,
# requirements-onnx.txt). Models, ONNX files and arrays go to a temporary folder, removed on exit.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
hogsvm="$("$here/hogsvm_bin.sh" | tail -n 1)"
py="$("$here/venv.sh" "$here/requirements-onnx.txt" | tail -n 1)"
work="$(mktemp -d "${TMPDIR:-/tmp}/hogsvm-onnx-check.XXXXXX")"
trap 'rm -rf -- "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
"$py" "$here/onnx_check.py" --hogsvm "$hogsvm" --work "$work" "$@"
