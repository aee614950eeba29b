#!/usr/bin/env bash
# The main job: install what is missing, build, compile the bundled digits
# CNN and classify its held-out samples with shoal.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
PYTHONPATH=build/python /usr/bin/python3 examples/classify_digits.py --program build/digits.shoal "$@"
