#!/usr/bin/env bash
# The classical pipeline end to end (IDX files -> HOG -> [map] -> [PCA] -> linear SVM -> test
# accuracy): scikit-image + scikit-learn against `hogsvm train`, same data and config, same run.
# usage: scripts/peer_classical.sh [--data DIR] [--limit N] [--cell 4] [--block 2] [--orientations 9]
#          [--resize WxH] [--pca N|none] [--c 1.0] [--loss squared-hinge|hinge] [--tol 1e-4]
#          [--max-iter 1000] [--feature-map none|hellinger] [--threads 2] [--json OUT.json]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
cargo build --release --quiet
py="$("$here/venv.sh" "$here/requirements-peer-classical.txt" | tail -n 1)"
exec "$py" "$here/peer_classical.py" --hogsvm target/release/hogsvm "$@"
