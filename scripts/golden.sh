#!/usr/bin/env bash
# Regenerate the HOG golden files in fixtures/hog-golden/ and fixtures/photo-golden/ with
# scikit-image (in scripts/.venv).
# Run by hand, or by `HOGSVM_REGEN_GOLDEN=1 cargo test --release --test hog_parity`.
# usage: scripts/golden.sh [FIXTURES_DIR]
#   FIXTURES_DIR (default: the repository's fixtures/) must hold fashion-mnist/; the script empties
#   and rewrites FIXTURES_DIR/hog-golden/. tests/peer_scripts.rs runs it on a temporary folder and
#   compares the result with the committed files.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
fixtures="${1:-$here/../fixtures}"
py="$("$here/venv.sh" "$here/requirements-peer-hog.txt" | tail -n 1)"
# NumPy's AVX-512 arctan2 differs from the C library's atan2 by an ulp on some inputs, which moves
# gradients that lie on a bin edge into the wrong bin (make_golden.py's docstring): turn NumPy's
# AVX-512 code off, so the golden files are the same on every machine. Unknown names are ignored.
export NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL"
"$py" "$here/make_golden.py" "$fixtures"
# The CLI's colour path: an image folder and scikit-image's HOG of it (fixtures/photo-golden).
"$py" "$here/make_photo_golden.py" "$fixtures"
