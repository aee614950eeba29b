#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the C++ and Python
# suites (ctest), then the sanitizer jobs (scripts/test-sanitizers.sh: ASan +
# UBSan, TSan, 60 s of each fuzzer; about 15 minutes on 2 cores, see
# docs/ROBUSTNESS.md). SHOAL_SKIP_SANITIZERS=1 runs the suites only.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# Warnings are errors here (and so in CI).
bash scripts/build.sh -DSHOAL_WERROR=ON
(cd build && ctest --output-on-failure -j 1 "$@")
if [ "${SHOAL_SKIP_SANITIZERS:-0}" != 1 ]; then
  bash scripts/test-sanitizers.sh
fi
