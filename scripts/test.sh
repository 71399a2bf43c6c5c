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
# onnxruntime first (scripts/.venv, pinned), so that the Rust tests of `compare` check its
# timings against hogsvm's scores too (tests/compare.rs reads HOGSVM_ORT_PYTHON).
HOGSVM_ORT_PYTHON="$(scripts/venv.sh scripts/requirements-onnx.txt | tail -n 1)"
export HOGSVM_ORT_PYTHON
cargo test --release --locked
scripts/python_tests.sh
# The ONNX export against onnxruntime on the fixture: the HOGSVM_BIN given to this script, else
# hogsvm_bin.sh's `cargo build --release`, a no-op after python_tests.sh's build of the binary.
scripts/onnx_check.sh
# Smoke run of the onnxruntime-vs-hogsvm timing script (scripts/peer_onnx.sh) on the fixture,
# with the package python_tests.sh installed, so that it cannot rot silently.
smoke="$(mktemp -d)"
trap 'rm -rf -- "$smoke"' EXIT
bin="$(scripts/hogsvm_bin.sh | tail -n 1)"
"$bin" train --data fixtures/fashion-mnist --pca 32 --out "$smoke/m.safetensors" >/dev/null
PEER_ONNX_NO_INSTALL=1 HOGSVM_BIN="$bin" scripts/peer_onnx.sh --data fixtures/fashion-mnist \
  --model "$smoke/m.safetensors" --rounds 1 --latency 5 --limit 100 --json "$smoke/peer.json"
"$(scripts/venv.sh scripts/requirements-onnx.txt | tail -n 1)" -c "
import json, sys
r = json.load(open(sys.argv[1]))[0]
assert r['labels_agree'] == r['test_images'] == 100 and r['max_score_diff'] < 1e-4, r
" "$smoke/peer.json"
# Smoke run of the Python HOG timing script (scripts/peer_hog.sh --python) on the fixture, with
# the installed package: every row timed, hogsvm checked against scikit-image on the way.
PEER_HOG_NO_INSTALL=1 scripts/peer_hog.sh --python --data fixtures/fashion-mnist --limit 300 \
  --n-skimage 20 --n-calls 20 --rounds 1 --json "$smoke/peer_hog_python.json" >/dev/null
"$(scripts/venv.sh scripts/requirements-onnx.txt | tail -n 1)" -c "
import json, sys
r = json.load(open(sys.argv[1]))
assert r['images'] == 300 and all(v > 0 for v in r['us_per_image'].values()), r
assert len(r['us_per_image']) == 9 and all(v > 0 for v in r['speedup'].values()), r
" "$smoke/peer_hog_python.json"
