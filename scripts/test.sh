#!/usr/bin/env bash
# The README's test command: every suite. First the Rust tests (`cargo test --release --locked`:
# unit, integration, golden and property tests, and the smoke runs of the light peer scripts),
# then the Python package's (scripts/python_tests.sh: builds python/ with maturin into
# scripts/.venv, in the same target/, and runs pytest against scikit-image).
# usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --locked
scripts/python_tests.sh
