#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (ctest); then the
# same suite built with AddressSanitizer + UndefinedBehaviorSanitizer in
# build-asan/; then each fuzz target for a short while (scripts/fuzz.sh;
# DCMSEAL_FUZZ_SECONDS per target, default 10). Each test that needs a token
# makes its own SoftHSM token in a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
(cd build && ctest --output-on-failure -j"$(nproc)" "$@")

cmake -S . -B build-asan -DDCMSEAL_ASAN=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-asan -j"$(nproc)"
# DCMTK leaks a little when it throws on malformed data (see the file).
export LSAN_OPTIONS="suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
(cd build-asan && ctest --output-on-failure -j"$(nproc)" "$@")

scripts/fuzz.sh "${DCMSEAL_FUZZ_SECONDS:-10}"
