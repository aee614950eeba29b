#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (C++ and Python), then
# the sanitizer jobs (scripts/test-sanitizers.sh: ASan+UBSan, TSan, fuzzing;
# docs/ROBUSTNESS.md). SHOAL_SKIP_SANITIZERS=1 skips those.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
(cd build && ctest --output-on-failure -j 1 "$@")
if [ "${SHOAL_SKIP_SANITIZERS:-0}" != 1 ]; then
  bash scripts/test-sanitizers.sh
fi
