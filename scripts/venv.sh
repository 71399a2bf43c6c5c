#!/usr/bin/env bash
# Create (once) the project's Python venv in scripts/.venv and install a requirements file.
# usage: scripts/venv.sh REQUIREMENTS.txt   -> prints the venv's python path on the last line
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
req="$1"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --upgrade pip >&2
fi
stamp="$venv/.installed-$(basename "$req")-$(sha256sum "$req" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  "$venv/bin/pip" install -q -r "$req" >&2
  touch "$stamp"
fi
echo "$venv/bin/python"
