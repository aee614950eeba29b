#!/usr/bin/env bash
# Configures and builds shoal into build/ (or $SHOAL_BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${SHOAL_BUILD_DIR:-build}
JOBS=${SHOAL_JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=${SHOAL_BUILD_TYPE:-Release} \
  -DPython3_EXECUTABLE=/usr/bin/python3 "$@" >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"
