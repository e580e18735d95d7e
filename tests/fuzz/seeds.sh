#!/usr/bin/env bash
# Makes the fuzz seed corpora from real files; nothing here is committed.
#
#   tests/fuzz/seeds.sh MAKE_SEEDS OUTDIR [CORPUS]
#
# MAKE_SEEDS is the make_seeds program of a build (scripts/fuzz.sh passes
# build-fuzz/tests/fuzz/make_seeds); OUTDIR is emptied and receives one
# directory per target; CORPUS (default ../shared/corpus) is only read.
#
#   probe/    the first 64 KiB (whole when smaller) of every corpus file and
#             of the objects of tests/support/identity_cases.sh (UIDs with
#             VR UN, bare data sets, long values before the identity); the
#             whole objects are ctest's (fuzz.probe.identity)
#   decrypt/  corpus files and the small identity cases sealed under the
#             fixture's key ring, 4 KiB
#             segments: files up to 32 KiB whole (DICOM, identity bound),
#             larger ones as a 12 KiB prefix (opaque); plain texts at the
#             segment edges; the committed known-answer objects
#   header/   the preamble and size of each of those objects
# The few seeds committed under tests/fuzz/seeds/ are used beside these.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
make_seeds=$1
out=$2
corpus=${3:-$here/../../../shared/corpus}

rm -rf "$out"
mkdir -p "$out/probe" "$out/decrypt" "$out/header"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

n=0
if [ -d "$corpus" ]; then
    while IFS= read -r -d '' f; do
        n=$((n + 1))
        name=$(basename "$f" | tr -c 'A-Za-z0-9._\n-' '_')-$n
        head -c 65536 "$f" > "$out/probe/$name"
        if [ "$(stat -c %s "$f")" -le 32768 ]; then
            "$make_seeds" "$out" "$name" "$f"
        else
            "$make_seeds" "$out" "$name" "$f" 12288
        fi
    done < <(find "$corpus" -type f ! -name '*.md' ! -name 'LICENSE*' -print0 | sort -z)
else
    echo "seeds.sh: $corpus absent; only generated plain texts and the vectors" >&2
fi

"$here/../support/identity_cases.sh" "$work/identity"
# Not the deflated ones: a mutated stream of compressed zeros inflates to a
# megabyte of 8-byte elements, the probe's slowest (and bounded) case, and
# a fuzzer seeded with them spends its time there (README.md, "Running").
for f in "$work/identity"/*.dcm; do
    name=identity-$(basename "$f" .dcm)
    head -c 65536 "$f" > "$out/probe/$name"
    if [ "$(stat -c %s "$f")" -le 32768 ]; then
        "$make_seeds" "$out" "$name" "$f"
    fi
done

# Plain texts around the segment size: empty, one byte, one segment less or
# more one byte, two segments exactly.
for size in 0 1 4095 4096 4097 8192; do
    head -c "$size" /dev/urandom > "$work/plain-$size"
    "$make_seeds" "$out" "plain-$size" "$work/plain-$size"
done
for v in "$here"/../vectors/kat*.dcms; do
    "$make_seeds" "$out" "$(basename "$v" .dcms)" "$v" --sealed
done
for d in probe decrypt header; do
    echo "seeds: $d: $(find "$out/$d" -type f | wc -l) files" >&2
done
