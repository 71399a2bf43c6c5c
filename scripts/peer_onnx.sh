#!/usr/bin/env bash
# onnxruntime against hogsvm on trained model files: the same test images, thread count, process
# and timing loop (scripts/peer_onnx.py): throughput at --batch, batch-1 latency, accuracy and
# agreement. hogsvm through its Python package (installed into scripts/.venv first, as
# scripts/python_tests.sh does), onnxruntime on `hogsvm export`'s file.
# usage: scripts/peer_onnx.sh --model M.safetensors [--model ...] [--data DIR_WITH_IDX]
#          [--threads 2] [--batch 256] [--latency 201] [--rounds 3] [--limit N] [--json OUT.json]
#   (default --data: /usr/share/datasets/fashion-mnist)
# Runs from the repository root: relative paths in the arguments are taken from there.
# Builds hogsvm (cargo build --release) unless HOGSVM_BIN=PATH names the binary to use
# (scripts/hogsvm_bin.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
hogsvm="$("$here/hogsvm_bin.sh" | tail -n 1)"
py="$("$here/venv.sh" "$here/requirements-python.txt" | tail -n 1)"
"$here/venv.sh" "$here/requirements-onnx.txt" >/dev/null
export PATH="$(dirname "$py"):$PATH"
if [ -z "${PEER_ONNX_NO_INSTALL:-}" ]; then
  "$py" -m pip install -q --no-deps --no-build-isolation --force-reinstall ./python >&2
fi
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
data=(--data /usr/share/datasets/fashion-mnist)
for a in "$@"; do [ "$a" = "--data" ] && data=(); done
exec "$py" "$here/peer_onnx.py" --hogsvm "$hogsvm" "${data[@]}" "$@"
