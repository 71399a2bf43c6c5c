#!/usr/bin/env bash
# Exact RBF-kernel SVM on hogsvm's HOG features (scripts/kernel_reference.py): the ceiling that
# `hogsvm train --pca 256 --nystroem M` approximates. Extracts sqrt HOG descriptors, one per
# CELL/BLOCK (pixels per cell / cells per block), into a temporary folder; the default
# "3/3 4/3 7/3" is `train`'s default descriptor with `--extra-cell 4 --extra-cell 7`, and
# "3/3 4/2 7/3" the one with `--extra-cell 4/2 --extra-cell 7`.
# Prints one JSON line (features, pca, c, train, test_accuracy, pca_seconds, svc_fit_seconds,
# support_vectors).
# usage: scripts/kernel_reference.sh [DATA_DIR] [C] [PCA] ["CELL/BLOCK ..."]
#   (defaults: /usr/share/datasets/fashion-mnist, 10, 256, "3/3 4/3 7/3"; a cheap run on the
#   bundled subset: scripts/kernel_reference.sh fixtures/fashion-mnist 10 16 "4/2 7/2")
# Runs from the repository root: a relative DATA_DIR is taken from there.
# Builds hogsvm (cargo build --release) unless HOGSVM_BIN=PATH names the binary to use
# (scripts/hogsvm_bin.sh). The Python side runs in scripts/.venv (scripts/venv.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
data="${1:-/usr/share/datasets/fashion-mnist}"
c="${2:-10}"
pca="${3:-256}"
scales="${4:-3/3 4/3 7/3}"
hogsvm="$("$here/hogsvm_bin.sh" | tail -n 1)"
py="$("$here/venv.sh" "$here/requirements-peer-classical.txt" | tail -n 1)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
train=() test=()
i=0
for s in $scales; do
  for split in train test; do
    "$hogsvm" extract --data "$data" --split "$split" --cell "${s%/*}" \
      --block "${s#*/}" --transform-sqrt --out "$tmp/d${i}_$split.npy" >&2
  done
  train+=("$tmp/d${i}_train.npy") test+=("$tmp/d${i}_test.npy")
  i=$((i + 1))
done
exec "$py" "$here/kernel_reference.py" --c "$c" --pca "$pca" --train "${train[@]}" \
  --test "${test[@]}" --train-labels "$tmp/d0_train_labels.npy" \
  --test-labels "$tmp/d0_test_labels.npy"
