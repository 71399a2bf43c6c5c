#!/usr/bin/env bash
# Structured filter pruning of a CNN at 30 / 50 / 70 % of its filters, each with and without
# fine-tuning, and unstructured pruning at 50 / 80 / 90 % of its weights, every variant measured
# beside the float model in the same run as `compare` measures a pipeline (`hogsvm bench-model`:
# test accuracy, parameters, model bytes, images/s in batches of 256, median batch-1 latency).
#
#   scripts/prune_bench.sh MODEL DATA OUT_DIR [THREADS] [FINETUNE_EPOCHS]
#
# MODEL: a CNN model file (`hogsvm train --model cnn`); DATA: a folder with train-* and t10k-*
# IDX files (fine-tuning uses train-*, measuring t10k-*); THREADS default 2, FINETUNE_EPOCHS 3.
# Writes OUT_DIR/<variant>.safetensors, OUT_DIR/prune_bench.json and prints a Markdown table.
# The binary: scripts/hogsvm_bin.sh (HOGSVM_BIN=PATH to use a built one).
set -euo pipefail
. "$(dirname "$0")/model_bench_args.sh"
model_bench_args FINETUNE_EPOCHS 3 "$@"
epochs="$last"
rows="$out/rows.jsonl"
: > "$rows"

measure() { # variant model-file prune-seconds
  "$bin" bench-model --model "$2" --data "$data" --threads "$threads" --batch 256 \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); r["variant"]=sys.argv[1]; r["prune_seconds"]=float(sys.argv[2]); print(json.dumps(r))' "$1" "$3" >> "$rows"
  echo "prune_bench: measured $1" >&2
}

measure float32 "$model" 0
for amount in 0.3 0.5 0.7; do
  pct=$(python3 -c "print(round($amount*100))")
  for ft in 0 "$epochs"; do
    name="structured-${pct}-ft${ft}"
    start=$(date +%s.%N)
    "$bin" prune --model "$model" --data "$data" --amount "$amount" --structured \
      --finetune-epochs "$ft" --threads "$threads" --out "$out/$name.safetensors" >&2
    end=$(date +%s.%N)
    measure "$name" "$out/$name.safetensors" "$(python3 -c "print($end-$start)")"
  done
done
for amount in 0.5 0.8 0.9; do
  pct=$(python3 -c "print(round($amount*100))")
  name="unstructured-${pct}-ft0"
  "$bin" prune --model "$model" --amount "$amount" --unstructured --finetune-epochs 0 \
    --threads "$threads" --out "$out/$name.safetensors" >&2
  measure "$name" "$out/$name.safetensors" 0
done

python3 - "$rows" "$out/prune_bench.json" "$threads" <<'PY'
import json, sys, platform, datetime
rows = [json.loads(l) for l in open(sys.argv[1])]
base = rows[0]
doc = {
    "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "machine": platform.platform(),
    "threads": int(sys.argv[3]),
    "rows": rows,
}
json.dump(doc, open(sys.argv[2], "w"), indent=2)
print("| variant | accuracy | vs float (points) | params | model MB | images/s (batch 256) | x float | latency ms (batch 1) | prune + fine-tune s |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    print(f"| {r['variant']} | {r['accuracy']:.4f} | {100*(r['accuracy']-base['accuracy']):+.2f} | {r['params']:,} | "
          f"{r['model_bytes']/1e6:.2f} | {r['images_per_s']:,.0f} | {r['images_per_s']/base['images_per_s']:.2f} | "
          f"{r['latency_ms_median']:.3f} | {r['prune_seconds']:.1f} |")
PY
