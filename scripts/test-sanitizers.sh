#!/usr/bin/env bash
# The sanitizer jobs (docs/ROBUSTNESS.md), run by scripts/test.sh after the
# normal tests:
#   asan  build-asan/ with AddressSanitizer + UBSan (-DSHOAL_SANITIZE=ON): every
#         C++ test, then the Python suite with libasan preloaded
#   tsan  build-tsan/ with ThreadSanitizer (-DSHOAL_TSAN=ON): the whole C++
#         suite (SHOAL_TSAN_FILTER, a gtest filter, narrows it)
#   fuzz  build-fuzz/ (clang, libFuzzer): each fuzz target for
#         $SHOAL_FUZZ_SECONDS (60) on the committed corpus and reproducers
# Usage: scripts/test-sanitizers.sh [asan] [tsan] [fuzz]   (default: all three)
# Environment: SHOAL_JOBS (build jobs, default nproc), SHOAL_FUZZ_SECONDS,
# SHOAL_TSAN_FILTER (a gtest filter).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${SHOAL_JOBS:-$(nproc)}
FUZZ_SECONDS=${SHOAL_FUZZ_SECONDS:-60}
TSAN_FILTER=${SHOAL_TSAN_FILTER:-*}
STAGES=("$@")
[ ${#STAGES[@]} -gt 0 ] || STAGES=(asan tsan fuzz)
# Sanitized builds: light optimization, line tables for the reports.
SAN_FLAGS=(-DCMAKE_BUILD_TYPE=Sanitize "-DCMAKE_CXX_FLAGS=-O1 -g1" "-DCMAKE_C_FLAGS=-O1 -g1"
           -DPython3_EXECUTABLE=/usr/bin/python3)
TIMES=()

stage() {  # stage NAME COMMAND...: runs and times one step
  local name=$1 t0=$SECONDS
  shift
  echo "=== test-sanitizers: $name"
  "$@"
  TIMES+=("$(printf '%-34s %4d s' "$name" $((SECONDS - t0)))")
}

need_packages() {  # installs missing Debian packages (as install-deps.sh does)
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "test-sanitizers: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

build() {  # build DIR CMAKE_ARGS... -- TARGETS...
  local dir=$1 args=() targets=()
  shift
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  targets=("$@")
  cmake -S . -B "$dir" "${SAN_FLAGS[@]}" "${args[@]}" >/dev/null
  local t=()
  for x in "${targets[@]}"; do t+=(--target "$x"); done
  nice cmake --build "$dir" -j "$JOBS" "${t[@]}"
}

asan_tests() {
  # Leaks are errors in the C++ tests; UBSan findings stop the test.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  SHOAL_SOURCE_DIR="$ROOT" build-asan/bin/shoal_tests --gtest_brief=1
}

asan_pytest() {
  # The interpreter is not instrumented: libasan must be loaded first (with
  # libstdc++, or ASan cannot find the __cxa_throw it intercepts), and
  # CPython's own allocations are not tracked for leaks. Whole models on the
  # ref backend (reference convolutions) are left out: minutes each here.
  LD_PRELOAD="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libstdc++.so)" \
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  PYTHONPATH="$ROOT/build-asan/python" SHOAL_BUILD_DIR="$ROOT/build-asan" SHOAL_SOURCE_DIR="$ROOT" \
    /usr/bin/python3 -m pytest -q -rs -p no:cacheprovider -m "not ref_models" "$ROOT/tests/python"
}

tsan_tests() {
  # libgomp and libdnnl are not instrumented: their internal synchronization
  # (OpenMP barriers) is invisible to TSan; tests/tsan.supp silences what
  # happens inside them, and nothing else.
  TSAN_OPTIONS="suppressions=$ROOT/tests/tsan.supp:halt_on_error=1:second_deadlock_stack=1:history_size=4" \
  SHOAL_SOURCE_DIR="$ROOT" build-tsan/bin/shoal_tests --gtest_filter="$TSAN_FILTER" --gtest_brief=1
}

fuzz_run() {  # fuzz_run TARGET: libFuzzer's progress goes to a log, shown on failure
  local log=build-fuzz/fuzz-$1.log
  if ! bash fuzz/run.sh "$1" "$FUZZ_SECONDS" -seed=1 >"$log" 2>&1; then
    tail -n 80 "$log"
    echo "test-sanitizers: fuzz target '$1' failed; the input is in build-fuzz/crashes/$1/" >&2
    return 1
  fi
  grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)" "$log" || true
}

for s in "${STAGES[@]}"; do
  case "$s" in
    asan)
      stage "asan: build" build build-asan -DSHOAL_SANITIZE=ON -DSHOAL_TSAN=OFF --
      stage "asan: shoal_tests" asan_tests
      stage "asan: pytest" asan_pytest
      ;;
    tsan)
      stage "tsan: build" build build-tsan -DSHOAL_TSAN=ON -DSHOAL_SANITIZE=OFF \
        -DSHOAL_PYTHON=OFF -- shoal_tests
      stage "tsan: shoal_tests $TSAN_FILTER" tsan_tests
      ;;
    fuzz)
      need_packages clang-14 libclang-rt-14-dev
      stage "fuzz: build" bash fuzz/build.sh
      stage "fuzz: onnx ${FUZZ_SECONDS} s" fuzz_run onnx
      stage "fuzz: program ${FUZZ_SECONDS} s" fuzz_run program
      stage "fuzz: serve ${FUZZ_SECONDS} s" fuzz_run serve
      ;;
    *)
      echo "test-sanitizers: unknown stage '$s' (asan, tsan, fuzz)" >&2
      exit 2
      ;;
  esac
done
echo "=== test-sanitizers: all passed"
printf '  %s\n' "${TIMES[@]}"
