#!/usr/bin/env bash
# Builds the libFuzzer targets into build-fuzz/ (or $SHOAL_FUZZ_BUILD_DIR):
# shoal's runtime and compiler libraries with clang and
# -fsanitize=fuzzer-no-link,address,undefined, then fuzz/fuzz_*.cpp linked
# with -fsanitize=fuzzer,address,undefined into build-fuzz/bin/fuzz_*.
# Needs clang-14 (Debian: clang-14, libclang-rt-14-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${SHOAL_FUZZ_BUILD_DIR:-build-fuzz}
JOBS=${SHOAL_JOBS:-$(nproc)}
CC=${SHOAL_FUZZ_CC:-clang-14}
CXX=${SHOAL_FUZZ_CXX:-clang++-14}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
FLAGS="-O1 -g $SAN -fsanitize=fuzzer-no-link"
# oneDNN from Debian runs on GNU OpenMP: link libgomp, never clang's libomp
# (two OpenMP runtimes in one process do not mix). shoal only calls
# omp_set_num_threads, so no OpenMP code generation is needed.
GOMP=$($CC -print-file-name=libgomp.so)
[ -f "$GOMP" ] || GOMP=$(g++ -print-file-name=libgomp.so)
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Fuzz \
  -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" \
  -DCMAKE_C_FLAGS="$FLAGS" -DCMAKE_CXX_FLAGS="$FLAGS" \
  -DSHOAL_PYTHON=OFF -DSHOAL_TESTS=OFF \
  -DOpenMP_C_FLAGS=-fopenmp=libgomp -DOpenMP_CXX_FLAGS=-fopenmp=libgomp \
  -DOpenMP_C_LIB_NAMES=gomp -DOpenMP_CXX_LIB_NAMES=gomp \
  -DOpenMP_gomp_LIBRARY="$GOMP" >/dev/null
nice cmake --build "$BUILD_DIR" -j "$JOBS" --target shoal_compiler
mkdir -p "$BUILD_DIR/bin"
LIB="$PWD/$BUILD_DIR/lib"
for target in fuzz_onnx_import fuzz_program_load fuzz_serve_request; do
  src=fuzz/$target.cpp
  out=$BUILD_DIR/bin/$target
  # The serve target needs only the request decoder (header-only JSON).
  extra=()
  [ "$target" = fuzz_serve_request ] && extra=(src/serve/protocol.cpp)
  newer=true
  for dep in "$src" "$LIB/libshoal_compiler.so" "$LIB/libshoal_runtime.so" fuzz/fuzz_common.hpp \
             "${extra[@]}" src/serve/protocol.hpp; do
    [ "$out" -nt "$dep" ] || newer=false
  done
  $newer && continue
  echo "fuzz/build.sh: linking $out"
  nice $CXX -std=c++20 -O1 -g $SAN -fsanitize=fuzzer -Iinclude -I"$BUILD_DIR/include" -Isrc -Ifuzz \
    "$src" "${extra[@]}" -o "$out" -L"$LIB" -Wl,-rpath,"$LIB" -lshoal_compiler -lshoal_runtime \
    -ldnnl -lonnx -lonnx_proto -lprotobuf "$GOMP" -lpthread
done
