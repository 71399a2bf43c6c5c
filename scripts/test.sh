#!/usr/bin/env bash
# The README's test command: every suite. First the Rust tests (`cargo test --release --locked`:
# unit, integration, golden and property tests, and the smoke runs of the light peer scripts),
# then the Python package's (scripts/python_tests.sh: builds python/ with maturin into
# scripts/.venv, in the same target/, and runs pytest against scikit-image), then the ONNX check
# (scripts/onnx_check.sh: every model kind and stage exported and run in onnxruntime against
# `hogsvm eval --scores`).
# usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --locked
scripts/python_tests.sh
# The ONNX export against onnxruntime on the fixture: the HOGSVM_BIN given to this script, else
# hogsvm_bin.sh's `cargo build --release`, a no-op after python_tests.sh's build of the binary.
scripts/onnx_check.sh
