# Sourced by the model benchmarks (prune_bench.sh, quant_bench.sh), which take the same
# arguments: MODEL DATA OUT_DIR [THREADS] [LAST]. `model_bench_args LAST_NAME LAST_DEFAULT "$@"`
# checks them (usage and exit 2 otherwise) and sets model and data (absolute), out (created,
# absolute), threads (default 2), last (default LAST_DEFAULT) and bin (scripts/hogsvm_bin.sh),
# and moves to the repository root.
model_bench_args() {
  local last_name="$1" last_default="$2"
  shift 2
  if [ $# -lt 3 ] || [ $# -gt 5 ]; then
    echo "usage: $0 MODEL DATA OUT_DIR [THREADS] [$last_name]" >&2
    exit 2
  fi
  model="$(realpath "$1")"
  data="$(realpath "$2")"
  threads="${4:-2}"
  last="${5:-$last_default}"
  cd "$(dirname "$0")/.."
  bin="$(scripts/hogsvm_bin.sh | tail -n 1)"
  mkdir -p "$3"
  out="$(realpath "$3")"
}
