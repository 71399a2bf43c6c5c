#!/usr/bin/env bash
# int8 quantisation of a CNN, measured against the float model and against PyTorch in the same run:
# `hogsvm quantize` static (calibrated on the first CALIB training images) and dynamic, then
# scripts/peer_cnn.sh quant, which loads the same float network into PyTorch, quantises it the two
# ways the PyTorch guide shows (eager static int8 with fbgemm on the same calibration images, and
# quantize_dynamic) and measures PyTorch's three variants and hogsvm's three (`bench-model`: test
# accuracy, model bytes, images/s in batches of 256, batch-1 latency) one after the other; and
# checks that each hogsvm int8 model gives the same scores, bit for bit, with 1 and THREADS threads.
#
#   scripts/quant_bench.sh MODEL DATA OUT_DIR [THREADS] [CALIB]
#
# MODEL: a CNN model file; DATA: a folder with train-* and t10k-* IDX files; THREADS default 2,
# CALIB default 1000. Writes OUT_DIR/int8-{static,dynamic}.safetensors, OUT_DIR/peer_cnn_quant.json
# (the side-by-side figures), OUT_DIR/threads.json (the thread check) and prints the table.
# The binary: scripts/hogsvm_bin.sh (HOGSVM_BIN=PATH to use a built one); PyTorch: scripts/.venv-torch
# (made by peer_cnn.sh, about 4 GiB).
set -euo pipefail
. "$(dirname "$0")/model_bench_args.sh"
model_bench_args CALIB 1000 "$@"
calib="$last"
"$bin" quantize --model "$model" --calib "$data" --calib-images "$calib" --threads "$threads" \
  --out "$out/int8-static.safetensors" >&2
"$bin" quantize --model "$model" --mode dynamic --out "$out/int8-dynamic.safetensors" >&2
# Same scores, bit for bit, for 1 and $threads threads.
checks=()
for m in int8-static int8-dynamic; do
  for t in 1 "$threads"; do
    "$bin" eval --model "$out/$m.safetensors" --data "$data" --split test --threads "$t" \
      --scores "$out/$m.t$t.npy" --json > /dev/null
  done
  if cmp -s "$out/$m.t1.npy" "$out/$m.t$threads.npy"; then same=true; else same=false; fi
  checks+=("\"$m\": $same")
done
printf '{"threads": [1, %s], "same_scores": {%s}}\n' "$threads" "$(IFS=,; echo "${checks[*]}")" \
  | tee "$out/threads.json" >&2
HOGSVM_BIN="$bin" scripts/peer_cnn.sh quant --model "$model" --data "$data" \
  --calib-images "$calib" --threads "$threads" --batch 256 \
  --hogsvm "$bin" --hogsvm-models "$out/int8-static.safetensors,$out/int8-dynamic.safetensors" \
  --out "$out/peer_cnn_quant.json"
