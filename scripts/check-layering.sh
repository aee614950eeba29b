#!/usr/bin/env bash
# Layering rules that grep can check (ctest `layering`, under a second):
#  - the library reads the environment only in src/core/settings.cpp
#    (read_settings(), called at the API; docs/ENVIRONMENT.md);
#  - the runtime and the compiler include no backend and no oneDNN
#    (docs/BACKENDS.md);
#  - the public headers include only public headers, and the command line
#    (tools/), the C API, the Python module and the server (src/serve/, a
#    library over the public API) include only public headers and their own.
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

# The compiler reaches target-specific work through the backends' compile
# hooks (device::Backend::compile), never a backend's header.
hits=$(grep -rn '#include "backends/\|#include <oneapi/dnnl' src/compiler/ src/passes/ src/frontend/ src/ir/)
[ -z "$hits" ] || bad "the compiler includes a backend or oneDNN:
$hits"

hits=$(grep -rn '#include "' include/shoal/ | grep -v '#include "shoal/')
[ -z "$hits" ] || bad "a public header includes an internal one:
$hits"

# Quoted includes must be public (shoal/...), the folder's own headers (no
# slash), or, for tools/, the server library (serve/...).
hits=$(grep -rn '#include "' tools/ src/serve/ src/capi/ python/src/ |
  grep -v '#include "shoal/\|#include "[^/"]*"' |
  grep -v '^tools/[^:]*:[0-9]*:#include "serve/\|^src/serve/[^:]*:[0-9]*:#include "serve/')
[ -z "$hits" ] || bad "the command line, C API, Python module or server includes an internal header:
$hits"

[ $fail = 0 ] && echo "layering: ok"
exit $fail
