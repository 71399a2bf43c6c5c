#!/usr/bin/env bash
# The classical pipeline end to end (IDX files -> HOG -> [map] -> [PCA] -> linear SVM -> test
# accuracy): scikit-image + scikit-learn against `hogsvm train`, same data and config, same run.
# Each side's figures (accuracy, sizes, per-stage seconds) come from its own machine-readable
# output: hogsvm's from `hogsvm train --json` (its `train` object). See scripts/peer_classical.py.
# usage: scripts/peer_classical.sh [--data DIR] [--limit N] [--cell 4] [--block 2] [--orientations 9]
#          [--resize WxH] [--pca N|none] [--c 1.0] [--loss squared-hinge|hinge] [--tol 1e-4]
#          [--max-iter 1000] [--feature-map none|hellinger] [--transform-sqrt] [--threads 2]
#          [--json OUT.json]
#   (default --data: /usr/share/datasets/fashion-mnist; the bundled subset is fixtures/fashion-mnist)
# Runs from the repository root: relative paths in the arguments are taken from there.
# Builds hogsvm (cargo build --release) unless HOGSVM_BIN=PATH names the binary to use
# (scripts/hogsvm_bin.sh). The Python side runs in scripts/.venv (scripts/venv.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
hogsvm="$("$here/hogsvm_bin.sh" | tail -n 1)"
py="$("$here/venv.sh" "$here/requirements-peer-classical.txt" | tail -n 1)"
exec "$py" "$here/peer_classical.py" --hogsvm "$hogsvm" "$@"
