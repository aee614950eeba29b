#!/usr/bin/env bash
# Runs one fuzz target for a while: fuzz/run.sh onnx|program|serve SECONDS [libFuzzer flags...]
#
# Starts from the committed seeds (fuzz/corpus/TARGET) and reproducers
# (fuzz/regressions/TARGET); new interesting inputs go to a scratch corpus in
# build-fuzz/corpus/TARGET (not committed), crashes to build-fuzz/crashes/.
# Builds first (fuzz/build.sh) when the binary is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  echo "usage: fuzz/run.sh onnx|program|serve SECONDS [libFuzzer flags...]" >&2
  exit 2
fi
TARGET=$1
SECONDS_=$2
shift 2
case "$TARGET" in
  onnx) BIN=fuzz_onnx_import ;;
  program) BIN=fuzz_program_load ;;
  serve) BIN=fuzz_serve_request ;;
  *) echo "fuzz/run.sh: unknown target '$TARGET' (onnx, program or serve)" >&2; exit 2 ;;
esac
BUILD_DIR=${SHOAL_FUZZ_BUILD_DIR:-build-fuzz}
[ -x "$BUILD_DIR/bin/$BIN" ] || bash fuzz/build.sh
WORK=$BUILD_DIR/corpus/$TARGET
CRASHES=$BUILD_DIR/crashes/$TARGET
mkdir -p "$WORK" "$CRASHES" "fuzz/regressions/$TARGET"
# One small device: the fuzzed programs run on a single CPU device whatever
# the host; libgomp's thread pool is otherwise reported as leaked threads.
export SHOAL_CPU_DEVICES=${SHOAL_CPU_DEVICES:-1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
exec "$BUILD_DIR/bin/$BIN" -max_total_time="$SECONDS_" -timeout=20 -rss_limit_mb=3072 \
  -max_len=65536 -print_final_stats=1 -artifact_prefix="$CRASHES/" "$@" \
  "$WORK" "fuzz/corpus/$TARGET" "fuzz/regressions/$TARGET"
