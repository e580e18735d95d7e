#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds,
# makes a project-local SoftHSM token with an RSA-3072 KEK in it, encrypts
# every sample file, decrypts them again, proves the round trip
# byte-identical, and prints a summary.
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

echo
echo "dcmseal demo: token 'dcmseal-demo' in $work/hsm, key archive-kek (RSA-3072)"
echo "  source:      $src"
echo "  objects:     $files ($dicom DICOM with bound identity, $opaque opaque)"
echo "  bytes:       $bytes"
echo "  round trip:  $same of $files byte-identical after decrypt"
echo "  time:        ${secs}s for encrypt + decrypt + inspect, one process each"
echo "  output:      $work/enc (encrypted), $work/dec (decrypted)"
echo "  inspect one: build/dcmseal inspect $(find "$work/enc" -name '*.dcms' | sort | head -1)"
[ "$same" -eq "$files" ] && [ "$files" -gt 0 ]
