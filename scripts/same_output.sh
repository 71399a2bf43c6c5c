#!/usr/bin/env bash
# Everything a refactor must not change, written by one binary: the fixture models (classical
# default, `--pca 48 --nystroem 300`, CNN 2 epochs, its 50%-pruned, int8 static and int8 dynamic
# versions), `eval --json` of each, and `compare` on the fixture. Run it with the binary before
# and after a change, then compare the two folders with scripts/model_diff.py.
# usage: scripts/same_output.sh BIN OUT_DIR
set -euo pipefail
bin="$1"; out="$2"
cd "$(dirname "$0")/.."
mkdir -p "$out"
data=fixtures/fashion-mnist
t=(--threads 2)
"$bin" train --data "$data" "${t[@]}" --out "$out/classical.safetensors" >/dev/null
"$bin" train --data "$data" "${t[@]}" --pca 48 --nystroem 300 --out "$out/pca-nystroem.safetensors" >/dev/null
"$bin" train --data "$data" "${t[@]}" --model cnn --epochs 2 --out "$out/cnn.safetensors" >/dev/null 2>&1
"$bin" prune --model "$out/cnn.safetensors" --data "$data" --amount 0.5 --finetune-epochs 1 "${t[@]}" \
  --out "$out/pruned.safetensors" >/dev/null 2>&1
"$bin" quantize --model "$out/cnn.safetensors" --calib "$data" "${t[@]}" \
  --out "$out/int8-static.safetensors" >/dev/null 2>&1
"$bin" quantize --model "$out/cnn.safetensors" --mode dynamic "${t[@]}" \
  --out "$out/int8-dynamic.safetensors" >/dev/null 2>&1
for m in classical pca-nystroem cnn pruned int8-static int8-dynamic; do
  "$bin" eval --model "$out/$m.safetensors" --data "$data" --json "${t[@]}" > "$out/$m.eval.json"
done
"$bin" compare --data "$data" "${t[@]}" --out "$out/report" >/dev/null 2>&1
md5sum "$out"/*.safetensors
