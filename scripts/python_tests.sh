#!/usr/bin/env bash
# The Python package's test suite: builds python/ (the `hogsvm` package: pyo3 + maturin) into
# scripts/.venv and runs pytest on python/tests against scikit-image. Part of the README's test
# command (scripts/test.sh). The wheel is built by cargo in the workspace's target/ (release
# profile). The crates it shares with `cargo test --release` are nevertheless compiled again in a
# clean clone: the two builds enable different features of some shared crates (syn's visit-mut
# for pyo3's macros; smallvec, matrixmultiply, getrandom for the test-only dependencies), which
# changes their hashes and everything built on them. The line below lists what it compiled.
# usage: scripts/python_tests.sh [PYTEST ARGS...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
py="$("$here/venv.sh" "$here/requirements-python.txt" | tail -n 1)"
# onnxruntime, for the tests of Model.export_onnx (the same venv as scripts/onnx_check.sh).
"$here/venv.sh" "$here/requirements-onnx.txt" >/dev/null
# The CLI, for the tests that pass model files between Python and the command line.
# (scripts/hogsvm_bin.sh: $HOGSVM_BIN, else a release build under $CARGO_TARGET_DIR or target/.)
HOGSVM_BIN="$("$here/hogsvm_bin.sh" | tail -n 1)"
export HOGSVM_BIN
# maturin (the build backend) runs as a program: the venv's bin/ first on PATH.
export PATH="$(dirname "$py"):$PATH"
# Which crates the wheel build compiled: one line, from pip's verbose log.
log="$(mktemp "${TMPDIR:-/tmp}/hogsvm-wheel.XXXXXX")"
if ! "$py" -m pip install -v --no-deps --no-build-isolation --force-reinstall ./python > "$log" 2>&1; then
  cat "$log" >&2
  rm -f -- "$log"
  exit 1
fi
echo "python_tests: the wheel build compiled: $(grep -oE 'Compiling [^ ]+ v[^ ]+' "$log" | cut -d' ' -f2 | paste -sd, - | sed 's/^$/nothing/')" >&2
rm -f -- "$log"
# scikit-image's arctan2 is NumPy's; NumPy's AVX-512 version is an ulp off the C library's on
# gradients exactly on a bin edge (docs/BENCHMARKS.md): compare against the correctly rounded one.
export NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL"
exec "$py" -m pytest -q python/tests "$@"
