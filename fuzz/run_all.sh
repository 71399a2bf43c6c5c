#!/usr/bin/env bash
# Run every fuzz target for SECONDS (default 600) one after another; logs in fuzz/logs/.
set -u
cd "$(dirname "$0")"
secs="${1:-600}"
mkdir -p logs
for t in idx image_decode model model_meta npy; do
  RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$t" "corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=131072 \
    > "logs/$t.log" 2>&1
  echo "$t exit $?" >> logs/summary.txt
done
