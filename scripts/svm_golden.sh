#!/usr/bin/env bash
# Regenerate the linear SVM golden file fixtures/svm-golden/linearsvc.json with scikit-image +
# scikit-learn (in scripts/.venv).
# usage: scripts/svm_golden.sh [FIXTURES_DIR]
#   FIXTURES_DIR (default: the repository's fixtures/) must hold fashion-mnist/; the script writes
#   FIXTURES_DIR/svm-golden/linearsvc.json. tests/peer_scripts.rs runs it on a temporary folder and
#   compares the result with the committed file.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
fixtures="${1:-$here/../fixtures}"
py="$("$here/venv.sh" "$here/requirements-peer-classical.txt" | tail -n 1)"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
exec "$py" "$here/make_svm_golden.py" "$fixtures"
