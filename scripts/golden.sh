#!/usr/bin/env bash
# Regenerate the HOG golden files in fixtures/hog-golden/ with scikit-image (in scripts/.venv).
# Run by hand, or by `HOGSVM_REGEN_GOLDEN=1 cargo test --release --test hog_parity`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="$("$here/venv.sh" "$here/requirements-peer-hog.txt" | tail -n 1)"
exec "$py" "$here/make_golden.py" "$here/../fixtures"
