#!/usr/bin/env bash
# Time hogsvm, scikit-image and OpenCV HOG side by side, in the same run, on the same images
# (scripts/peer_hog.py: 28x28 cells 4x4 and 64x64 cells 8x8, blocks 2x2, 1 thread).
# usage: scripts/peer_hog.sh [--data DIR_WITH_IDX] [--n 2000] [--n-skimage 300] [--repeat 7]
#          [--scaling] [--json OUT.json]
#   (default --data: fixtures/fashion-mnist)
# Runs from the repository root: relative paths in the arguments are taken from there.
# Builds hogsvm (cargo build --release) unless HOGSVM_BIN=PATH names the binary to use
# (scripts/hogsvm_bin.sh). The Python side runs in scripts/.venv (scripts/venv.sh).
#
# usage: scripts/peer_hog.sh --python [--data DIR] [--limit N] [--n-skimage 2000] [--n-calls 2000]
#          [--rounds 3] [--json OUT.json]
#   (default --data: /usr/share/datasets/fashion-mnist) The `hogsvm` Python package instead of the
#   CLI: hog_batch on every training image and hog per call, against a scikit-image and an OpenCV
#   loop (scripts/peer_hog_python.py). Installs the package into scripts/.venv first, unless
#   PEER_HOG_NO_INSTALL=1 says it is there already (the test command's smoke run).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
if [ "${1:-}" = "--python" ]; then
  shift
  py="$("$here/venv.sh" "$here/requirements-peer-hog.txt" | tail -n 1)"
  py="$("$here/venv.sh" "$here/requirements-python.txt" | tail -n 1)"
  export PATH="$(dirname "$py"):$PATH"
  if [ -z "${PEER_HOG_NO_INSTALL:-}" ]; then
    "$py" -m pip install -q --no-deps --no-build-isolation --force-reinstall ./python >&2
  fi
  export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
  exec "$py" "$here/peer_hog_python.py" "$@"
fi
hogsvm="$("$here/hogsvm_bin.sh" | tail -n 1)"
py="$("$here/venv.sh" "$here/requirements-peer-hog.txt" | tail -n 1)"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
exec "$py" "$here/peer_hog.py" --hogsvm "$hogsvm" "$@"
