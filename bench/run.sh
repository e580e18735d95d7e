#!/usr/bin/env bash
# dcmseal's benchmark in one command: installs what is missing and builds
# (scripts/bootstrap.sh, which also installs the peers), makes the inputs
# under build/bench/ (kept for the next run, never committed), runs every
# measurement and prints one table, machine lines above it.
#
#   bench/run.sh [--quick] [--runs N]
#
# --quick: tiny inputs, one run each, for CI (ctest bench.quick); it fails
# only when the benchmark itself breaks, never on a missed target.
# --no-bootstrap: use what is built (ctest passes the binaries' paths).
# Other options go to bench/bench.py (--help lists them).
# DCMSEAL_TEST_TOKEN=opencryptoki measures openCryptoki's software token
# instead of SoftHSM (tests/integration/token.sh; root only).
set -euo pipefail
. "$(dirname "$0")/../tests/integration/token.sh"
token_enter "$@" # before the cd: it runs $0 again
cd "$(dirname "$0")/.."
args=() bootstrap=1
for a in "$@"; do
    if [ "$a" = --no-bootstrap ]; then bootstrap=0; else args+=("$a"); fi
done
if [ "$bootstrap" -eq 1 ]; then
    scripts/bootstrap.sh >&2
fi
exec python3 bench/bench.py --command "bench/run.sh $*" "${args[@]}"
