#!/usr/bin/env bash
# Create (once) the project's Python venv in scripts/.venv and install a requirements file.
# usage: scripts/venv.sh REQUIREMENTS.txt   -> prints the venv's python path on the last line
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
req="$1"
# One creation or install at a time: two scripts (or a test and a script) may start together.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$here/.venv.lock"
  flock 9
fi
# pip, not python: a `python3 -m venv` that failed half-way (no ensurepip) leaves a python behind.
if [ ! -x "$venv/bin/pip" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --upgrade pip >&2
fi
stamp="$venv/.installed-$(basename "$req")-$(sha256sum "$req" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  "$venv/bin/pip" install -q -r "$req" >&2
  touch "$stamp"
fi
echo "$venv/bin/python"
