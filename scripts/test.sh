#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (ctest), then each
# fuzz target for a short while (scripts/fuzz.sh; DCMSEAL_FUZZ_SECONDS per
# target, default 10). Each test that needs a token makes its own SoftHSM
# token in a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
(cd build && ctest --output-on-failure -j"$(nproc)" "$@")
scripts/fuzz.sh "${DCMSEAL_FUZZ_SECONDS:-10}"
