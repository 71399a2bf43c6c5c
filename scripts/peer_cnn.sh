#!/usr/bin/env bash
# The small CNN's speed, side by side: PyTorch (CPU) against `hogsvm bench-cnn` (candle), same network,
# same images, same thread count, interleaved rounds in the same run. See scripts/peer_cnn.py.
# usage: scripts/peer_cnn.sh [--data DIR] [--threads 2] [--batch 128] [--steps 20] [--warmup 3]
#          [--infer-batch 1000] [--channels 32,64,128] [--hidden 256] [--rounds 5]
#          [--accuracy-epochs N] [--torch-only] [--out docs/peer_cnn.json]
#        scripts/peer_cnn.sh quant --model M [--data DIR] [--calib-images 1000] [--threads 2]
#          [--batch 256] [--passes 3] [--latency-samples 101] [--hogsvm BIN]
#          [--hogsvm-models F1,F2,...] [--out docs/peer_cnn_quant.json]
#
# `quant`: a hogsvm float CNN model file loaded into PyTorch, then PyTorch's static and dynamic int8
# quantisation of it, measured (accuracy, size, throughput, latency) next to `hogsvm bench-model` on
# the same model (and on --hogsvm-models). See scripts/peer_cnn_quant.py. It builds hogsvm like the
# speed comparison does unless --hogsvm BIN or HOGSVM_BIN=PATH names the binary.
#
# PyTorch lives in its own venv, scripts/.venv-torch (about 4 GiB: PyPI only has the CUDA build of
# torch for Linux, whose CUDA libraries must be present to import it; requirements-peer-cnn.txt says
# which and why), made once and updated when the requirements file changes, like scripts/venv.sh
# does for scripts/.venv. PEER_CNN_VENV=DIR puts it elsewhere.
# Runs from the repository root: relative paths in the arguments are taken from there.
# Builds hogsvm (cargo build --release) unless --torch-only is given or HOGSVM_BIN=PATH names the
# binary to use (scripts/hogsvm_bin.sh).
set -euo pipefail
mode=speed
if [ "${1:-}" = quant ]; then
  mode=quant
  shift
fi
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
venv="${PEER_CNN_VENV:-$here/.venv-torch}"
req="$here/requirements-peer-cnn.txt"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --upgrade pip >&2
fi
stamp="$venv/.installed-$(basename "$req")-$(sha256sum "$req" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  # --no-deps: the requirements file pins the whole set, leaving out the GPU-only packages that
  # torch's metadata asks for (triton, cusolver, ...), which a CPU run never loads.
  "$venv/bin/pip" install -q --no-deps --only-binary=:all: -r "$req" >&2
  "$venv/bin/python" -c "import torch; torch.nn.Conv2d(1, 1, 3)(torch.zeros(1, 1, 4, 4))" >&2
  touch "$stamp"
fi
if [ "$mode" = quant ]; then
  # --hogsvm BIN (or --help) given: that binary, nothing built; otherwise scripts/hogsvm_bin.sh's
  # (HOGSVM_BIN, or cargo build).
  for arg in "$@"; do
    case "$arg" in
      --hogsvm|--hogsvm=*|-h|--help) exec "$venv/bin/python" "$here/peer_cnn_quant.py" "$@" ;;
    esac
  done
  hogsvm="$("$here/hogsvm_bin.sh" | tail -n 1)"
  exec "$venv/bin/python" "$here/peer_cnn_quant.py" --hogsvm "$hogsvm" "$@"
fi
torch_only=0
for arg in "$@"; do [ "$arg" = "--torch-only" ] && torch_only=1; done
hogsvm=target/release/hogsvm
if [ "$torch_only" = 0 ] || [ -n "${HOGSVM_BIN:-}" ]; then
  hogsvm="$("$here/hogsvm_bin.sh" | tail -n 1)"
fi
exec "$venv/bin/python" "$here/peer_cnn.py" --hogsvm "$hogsvm" "$@"
