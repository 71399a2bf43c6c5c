#!/usr/bin/env bash
# Render a `hogsvm compare` report in headless Chromium and check it (no failed or external
# request, no broken image, every chart present and labelled), saving a full-page screenshot.
#
#   scripts/check_report.sh REPORT_DIR [SCREENSHOT.png]     # default screenshot: REPORT_DIR/report.png
#
# Installs Debian's chromium if it is missing (apt-get, as root) and playwright-core from
# scripts/package-lock.json (npm ci; it downloads no browser). CHROMIUM=/path overrides the browser.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 REPORT_DIR [SCREENSHOT.png]" >&2
  exit 2
fi
dir="$1"
shot="${2:-$dir/report.png}"
if [ ! -f "$dir/report.html" ] || [ ! -f "$dir/report.json" ]; then
  echo "check_report: $dir has no report.html and report.json (run hogsvm compare --out $dir)" >&2
  exit 2
fi
if [ -z "${CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
  echo "check_report: installing Debian's chromium" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ ! -f "$here/node_modules/playwright-core/package.json" ]; then
  echo "check_report: installing playwright-core (npm ci)" >&2
  (cd "$here" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
exec node "$here/check_report.mjs" "$dir" "$shot"
