#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds,
# makes a project-local SoftHSM token with an RSA-3072 KEK in it, encrypts
# every sample file, decrypts them again, proves the round trip
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

src=${1:-../shared/corpus}
if [ ! -d "$src" ]; then
    echo "demo: $src not found; using generated samples" >&2
    src=$work/samples
    scripts/make-samples.sh "$src"
fi
src=$(cd "$src" && pwd)

build/dcmseal key create archive-kek --bits 3072

files=0 bytes=0 dicom=0 opaque=0 same=0
start=$EPOCHREALTIME
while IFS= read -r -d '' f; do
    rel=${f#"$src"/}
    mkdir -p "$work/enc/$(dirname "$rel")" "$work/dec/$(dirname "$rel")"
    build/dcmseal encrypt "$f" -o "$work/enc/$rel.dcms" 2>>"$work/notices.log"
    build/dcmseal decrypt "$work/enc/$rel.dcms" -o "$work/dec/$rel"
    if cmp -s "$f" "$work/dec/$rel"; then same=$((same + 1)); fi
    if build/dcmseal inspect --json "$work/enc/$rel.dcms" | grep -q '"kind":"dicom"'; then
        dicom=$((dicom + 1))
    else
        opaque=$((opaque + 1))
    fi
    files=$((files + 1))
    bytes=$((bytes + $(stat -c %s "$f")))
done < <(find "$src" -type f -print0 | sort -z)
secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')

# Rotation: a new KEK version becomes primary, every object moves to it by
# rewriting one key slot in place, and still decrypts to the same bytes.
build/dcmseal key rotate archive-kek >/dev/null
rot_start=$EPOCHREALTIME
build/dcmseal rewrap -r "$work/enc" 2>"$work/rewrap.log"
rot_secs=$(awk -v a="$rot_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
rotated=0
while IFS= read -r -d '' e; do
    rel=${e#"$work/enc/"}
    rel=${rel%.dcms}
    build/dcmseal decrypt --force "$e" -o "$work/dec/$rel"
    if cmp -s "$src/$rel" "$work/dec/$rel" &&
        build/dcmseal inspect --json "$e" | grep -q '"version":2'; then
        rotated=$((rotated + 1))
    fi
done < <(find "$work/enc" -type f -name '*.dcms' -print0)

echo
echo "dcmseal demo: token 'dcmseal-demo' in $work/hsm, key archive-kek (RSA-3072)"
echo "  source:      $src"
echo "  objects:     $files ($dicom DICOM with bound identity, $opaque opaque)"
echo "  bytes:       $bytes"
echo "  round trip:  $same of $files byte-identical after decrypt"
echo "  time:        ${secs}s for encrypt + decrypt + inspect, one process each"
echo "  notices:     $(grep -c 'not DICOM' "$work/notices.log") files not DICOM (see $work/notices.log)"
echo "  rotation:    key rotate, then rewrap -r moved $files objects to v2 in ${rot_secs}s ($(tail -1 "$work/rewrap.log" | sed 's/^dcmseal: rewrap: //'))"
echo "               $rotated of $files decrypt byte-identical under v2"
build/dcmseal key list archive-kek | sed 's/^/  key:         /'
echo "  output:      $work/enc (encrypted), $work/dec (decrypted)"
echo "  inspect one: build/dcmseal inspect $(find "$work/enc" -name '*.dcm.dcms' | sort | head -1)"
[ "$same" -eq "$files" ] && [ "$files" -gt 0 ] && [ "$rotated" -eq "$files" ]
