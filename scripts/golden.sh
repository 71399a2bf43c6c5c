#!/usr/bin/env bash
# Regenerate the HOG golden files in fixtures/hog-golden/ with scikit-image (in scripts/.venv).
# Run by hand, or by `HOGSVM_REGEN_GOLDEN=1 cargo test --release --test hog_parity`.
# usage: scripts/golden.sh [FIXTURES_DIR]
#   FIXTURES_DIR (default: the repository's fixtures/) must hold fashion-mnist/; the script empties
#   and rewrites FIXTURES_DIR/hog-golden/. tests/peer_scripts.rs runs it on a temporary folder and
#   compares the result with the committed files.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
fixtures="${1:-$here/../fixtures}"
py="$("$here/venv.sh" "$here/requirements-peer-hog.txt" | tail -n 1)"
exec "$py" "$here/make_golden.py" "$fixtures"
