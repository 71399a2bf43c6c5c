#!/usr/bin/env bash
# Regenerate the linear SVM golden file fixtures/svm-golden/linearsvc.json with scikit-image +
# scikit-learn (in scripts/.venv).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="$("$here/venv.sh" "$here/requirements-peer-classical.txt" | tail -n 1)"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
exec "$py" "$here/make_svm_golden.py" "$here/../fixtures"
