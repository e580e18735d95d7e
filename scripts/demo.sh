#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds,
# makes a project-local SoftHSM token with an RSA-3072 KEK in it, encrypts
# the sample archive as a tree, verifies it, decrypts it again and proves it
# byte-identical, rotates the KEK (rotate, rewrap, decrypt again) and prints
# a summary.
#
#   scripts/demo.sh [SAMPLE_DIR]    (default: ../shared/corpus)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh >/dev/null
. scripts/softhsm.sh

work=$PWD/build/demo
rm -rf "$work"
mkdir -p "$work"
softhsm_token "$work/hsm" dcmseal-demo
export DCMSEAL_KEY=archive-kek
dcmseal=build/dcmseal

src=${1:-../shared/corpus}
if [ ! -d "$src" ]; then
    echo "demo: $src not found; using generated samples" >&2
    src=$work/samples
    scripts/make-samples.sh "$src"
fi
src=$(cd "$src" && pwd)

$dcmseal key create archive-kek --bits 3072

# The archive, as a tree: same relative paths, names, modes and times; one
# JSON line per file in the report. Notices (opaque objects, symbolic links)
# go to notices.log.
summary() { grep "^dcmseal: $1: " "$work/$1.log" | head -1 | sed "s/^dcmseal: $1: //"; }
$dcmseal encrypt -r -q "$src" -o "$work/enc" --report "$work/encrypt.jsonl" 2>"$work/encrypt.log"
$dcmseal verify -r -q "$work/enc" 2>"$work/verify.log"
$dcmseal decrypt -r -q "$work/enc" -o "$work/dec" 2>"$work/decrypt.log"
same=no
diff -r "$src" "$work/dec" >/dev/null && same=yes

# Rotation: a new KEK version becomes primary, every object moves to it by
# rewriting one key slot in place, and still decrypts to the same bytes.
$dcmseal key rotate archive-kek >/dev/null
$dcmseal rewrap -r -q "$work/enc" 2>"$work/rewrap.log"
$dcmseal decrypt -r -q "$work/enc" -o "$work/dec2" 2>"$work/decrypt2.log"
same2=no
diff -r "$src" "$work/dec2" >/dev/null && same2=yes

echo
echo "dcmseal demo: token 'dcmseal-demo' in $work/hsm, key archive-kek (RSA-3072)"
echo "  source:      $src"
echo "  encrypt -r:  $(summary encrypt)"
echo "  verify -r:   $(summary verify)"
echo "  decrypt -r:  $(summary decrypt)"
echo "  round trip:  byte-identical: $same"
echo "  rotation:    key rotate, then rewrap -r: $(summary rewrap)"
echo "               decrypt -r under v2 byte-identical: $same2"
$dcmseal key list archive-kek | sed 's/^/  key:         /'
echo "  output:      $work/enc (encrypted), $work/dec (decrypted)"
echo "  report:      $work/encrypt.jsonl (one line per file)"
echo "  inspect one: $dcmseal inspect $(find "$work/enc" -name '*.dcm' | sort | head -1)"
[ "$same" = yes ] && [ "$same2" = yes ]
