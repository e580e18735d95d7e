#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan + UBSan) into
# build-fuzz/, makes the seed corpora, and runs each target in turn for
# SECONDS (default 10) at the lowest priority. Fails when a target finds a
# crash, a leak, a timeout or an input that needs too much memory; the input
# is left in build-fuzz/findings/TARGET/ (tests/fuzz/README.md: turning it
# into a regression test).
#
#   scripts/fuzz.sh [SECONDS [TARGET...]]     targets: header decrypt probe args
#
# Inputs that reach new code stay in build-fuzz/corpus/TARGET/ for the next
# run; the seeds are made anew each time (tests/fuzz/seeds.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(header decrypt probe args)

scripts/bootstrap.sh --packages-only
cmake -S . -B build-fuzz -DDCMSEAL_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
# Keep the build tree out of git without touching the project's .gitignore.
printf '*\n' > build-fuzz/.gitignore
cmake --build build-fuzz -j"$(nproc)" --target make_seeds \
    "${targets[@]/#/fuzz_}" >/dev/null
tests/fuzz/seeds.sh build-fuzz/tests/fuzz/make_seeds build-fuzz/seeds

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# DCMTK's own leak when it throws on malformed data (tests/fuzz/lsan.supp).
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0}
failed=()
for t in "${targets[@]}"; do
    corpus=build-fuzz/corpus/$t findings=build-fuzz/findings/$t
    mkdir -p "$corpus" "$findings" build-fuzz/logs
    dirs=("$corpus")
    for d in build-fuzz/seeds/$t tests/fuzz/seeds/$t tests/fuzz/regressions/$t; do
        [ -d "$d" ] && dirs+=("$d")
    done
    extra=() timeout=10
    # cli_parse reports every refused command line on stderr, as it should.
    [ "$t" = args ] && extra=(-close_fd_mask=2)
    # The probe's slowest inputs are bounded, not fast: the megabyte DCMTK may
    # parse (DCMSEAL_DICOM_PROBE_MAX), as 8-byte elements that a 2 KB deflated
    # input inflates to, costs 0.3 s natively and seconds under the
    # sanitizers, more on a loaded machine (tests/fuzz/README.md).
    [ "$t" = probe ] && timeout=30
    log=build-fuzz/logs/$t.log
    echo "fuzz: $t for ${seconds}s" >&2
    if nice -n 19 "build-fuzz/tests/fuzz/fuzz_$t" -max_total_time="$seconds" \
        -rss_limit_mb=2048 -timeout="$timeout" -print_final_stats=1 \
        -artifact_prefix="$findings/" "${extra[@]}" "${dirs[@]}" >"$log" 2>&1; then
        grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | sed "s/^/fuzz: $t: /" >&2 || true
    else
        failed+=("$t")
        echo "fuzz: $t FAILED; the end of $log:" >&2
        tail -n 40 "$log" >&2
        ls "$findings" >&2
    fi
done
if ((${#failed[@]})); then
    echo "fuzz: findings in ${failed[*]}" >&2
else
    echo "fuzz: ${#targets[@]} targets ran ${seconds}s each, nothing found" >&2
fi
# The closing line CI reads.
echo "fuzz: $((${#targets[@]} - ${#failed[@]})) passed, ${#failed[@]} failed"
((${#failed[@]} == 0))
