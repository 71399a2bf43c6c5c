#!/usr/bin/env bash
# Regenerate the statistics golden file fixtures/stats-golden/stats.json with scipy (in scripts/.venv).
# usage: scripts/stats_golden.sh [FIXTURES_DIR]
#   writes FIXTURES_DIR/stats-golden/stats.json (default: the repository's fixtures/).
#   tests/stats_golden.rs checks src/stats.rs against the committed file;
#   `HOGSVM_REGEN_GOLDEN=1 cargo test --release --test stats_golden` runs this script first.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
fixtures="${1:-$here/../fixtures}"
py="$("$here/venv.sh" "$here/requirements-stats.txt" | tail -n 1)"
exec "$py" "$here/make_stats_golden.py" "$fixtures"
