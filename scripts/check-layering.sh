#!/usr/bin/env bash
# Layering rules that grep can check (ctest `layering`, under a second):
#  - the library reads the environment only in src/core/settings.cpp
#    (read_settings(), called at the API; docs/ENVIRONMENT.md);
#  - the runtime includes no backend and no oneDNN (docs/BACKENDS.md).
set -uo pipefail
cd "$(dirname "$0")/.."
fail=0
bad() { echo "layering: $1"; fail=1; }

hits=$(grep -rn 'getenv' src/ | grep -v '^src/core/settings\.cpp:' | grep -v '^[^:]*:[0-9]*: *//')
[ -z "$hits" ] || bad "getenv outside src/core/settings.cpp:
$hits"

hits=$(grep -rn '#include "backends/\|#include <oneapi/dnnl\|#include "dnnl' src/runtime/ src/device/)
[ -z "$hits" ] || bad "src/runtime or src/device includes a backend or oneDNN:
$hits"

[ $fail = 0 ] && echo "layering: ok"
exit $fail
