#!/usr/bin/env bash
# Time hogsvm, scikit-image and OpenCV HOG side by side, in the same run, on the same images.
# usage: scripts/peer_hog.sh [--data DIR_WITH_IDX] [--n N] [--json OUT.json] [--scaling]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
cargo build --release --quiet
py="$("$here/venv.sh" "$here/requirements-peer-hog.txt" | tail -n 1)"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
exec "$py" "$here/peer_hog.py" --hogsvm target/release/hogsvm "$@"
