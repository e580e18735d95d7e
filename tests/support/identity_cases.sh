#!/usr/bin/env bash
# Builds, with DCMTK's own tools, the DICOM objects whose identity dcmseal
# once read wrongly (issue 12), so that no binary file is kept in the
# repository. Each is a file DCMTK reads (dcmdump shows the UIDs below).
#
#   identity_cases.sh OUTDIR
#
# Every object carries SOP Class CLASS, SOP Instance INSTANCE and Study
# STUDY in its data set; where the meta header says otherwise, its
# (0002,0003) is META_INSTANCE. tests/unit/test_dicomio.c,
# tests/unit/test_engine.c and tests/integration/cli.sh check what is bound.
#
#   base.dcm                Part 10, explicit VR little endian, in tag order
#   un-vr.dcm               the three UIDs with VR UN, as GDCM writes them
#   raw-implicit.dcm        base's data set alone (no preamble, no meta
#   raw-explicit.dcm        header), implicit and explicit VR little endian
#   meta-differs.dcm        (0002,0003) META_INSTANCE, (0008,0018) INSTANCE
#   big-private.dcm         a 2 MiB private element before the Study UID
#   meta-private.dcm        a 2 MiB (0002,0102) in the meta header: every
#                           data-set UID lies after the first 2 MiB
#   after-pixels.dcm        out of order: the three UIDs after 1.5 MiB of
#                           Pixel Data, (0002,0003) META_INSTANCE
#   after-pixels-small.dcm  the same with 64 bytes of Pixel Data
#   deflated/private-512k.dcm, deflated/private-2m.dcm
#                           deflated, with a private element of 512 KiB or
#                           2 MiB before the Study UID
set -euo pipefail
out=$1
CLASS=1.2.840.10008.5.1.4.1.1.7
INSTANCE=1.2.826.0.1.3680043.10.1001.2
META_INSTANCE=1.2.826.0.1.3680043.10.1001.9
STUDY=1.2.826.0.1.3680043.10.1001.1
SERIES=1.2.826.0.1.3680043.10.1001.3

mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# VR UN holds bytes, written by dump2dcm as hex: the UID, NUL-padded to even.
hex() {
    local s=$1
    [ $((${#s} % 2)) -eq 0 ] || s+=$'\0'
    printf '%s' "$s" | od -An -tx1 -v | tr -s ' \n' '\\\\' | sed 's/^\\//; s/\\$//'
}

# The elements of a small image, Pixel Data of $1 bytes read from a file.
pixels() {
    head -c "$1" /dev/zero > "$work/pixels-$1"
    cat <<EOF
(0028,0002) US 1
(0028,0004) CS [MONOCHROME2]
(0028,0010) US 1
(0028,0011) US $(($1 / 2))
(0028,0100) US 16
(0028,0101) US 16
(0028,0102) US 15
(0028,0103) US 0
(7fe0,0010) OW =$work/pixels-$1
EOF
}

# The meta header's UIDs ($1: its SOP Instance UID).
meta() {
    cat <<EOF
(0002,0002) UI [$CLASS]
(0002,0003) UI [$1]
EOF
}

dcm() { # NAME [dump2dcm options]: the dump on stdin becomes OUTDIR/NAME
    local name=$1
    shift
    cat > "$work/dump"
    dump2dcm -q "$@" "$work/dump" "$out/$name"
}

image() { # META_UID: an image whose meta header's (0002,0003) is META_UID
    meta "$1"
    cat <<EOF
(0008,0016) UI [$CLASS]
(0008,0018) UI [$INSTANCE]
(0010,0010) PN [Secret^Patient]
(0020,000d) UI [$STUDY]
(0020,000e) UI [$SERIES]
EOF
    pixels 64
}
image "$INSTANCE" | dcm base.dcm +te

{
    meta "$INSTANCE"
    cat <<EOF
(0008,0016) UN $(hex "$CLASS")
(0008,0018) UN $(hex "$INSTANCE")
(0010,0010) PN [Secret^Patient]
(0020,000d) UN $(hex "$STUDY")
EOF
    pixels 64
} | dcm un-vr.dcm +te

dcmconv -q -F +ti "$out/base.dcm" "$out/raw-implicit.dcm"
dcmconv -q -F +te "$out/base.dcm" "$out/raw-explicit.dcm"

# dump2dcm keeps the meta header it is given (dcmodify would rewrite it).
image "$META_INSTANCE" | dcm meta-differs.dcm +te

private() { # SIZE: an image with a private element of SIZE bytes before its study
    head -c "$1" /dev/zero > "$work/private-$1"
    meta "$INSTANCE"
    cat <<EOF
(0008,0016) UI [$CLASS]
(0008,0018) UI [$INSTANCE]
(0010,0010) PN [Secret^Patient]
(0019,0010) LO [DCMSEAL TEST]
(0019,1001) OB =$work/private-$1
(0020,000d) UI [$STUDY]
EOF
    pixels 64
}
private $((2 * 1024 * 1024)) | dcm big-private.dcm +te
# Deflated, skipping a value means inflating it, which counts against the
# probe's limit of 1 MiB: the first is bound, the second is not.
mkdir -p "$out/deflated"
private $((512 * 1024)) | dcm deflated/private-512k.dcm +td
private $((2 * 1024 * 1024)) | dcm deflated/private-2m.dcm +td

{
    meta "$INSTANCE"
    cat <<EOF
(0002,0100) UI [$SERIES]
(0002,0102) OB =$work/private-$((2 * 1024 * 1024))
(0008,0016) UI [$CLASS]
(0008,0018) UI [$INSTANCE]
(0010,0010) PN [Secret^Patient]
(0020,000d) UI [$STUDY]
EOF
    pixels 64
} | dcm meta-private.dcm +te

# Out of order: DCMTK writes in tag order, so the UIDs are a second data set
# written alone and appended after the first one's Pixel Data.
cat <<EOF | dcm uids.raw +te -F
(0008,0016) UI [$CLASS]
(0008,0018) UI [$INSTANCE]
(0020,000d) UI [$STUDY]
EOF
for size in $((1536 * 1024)):after-pixels.dcm 64:after-pixels-small.dcm; do
    {
        meta "$META_INSTANCE"
        echo "(0010,0010) PN [Secret^Patient]"
        pixels "${size%%:*}"
    } | dcm head.dcm +te
    cat "$out/head.dcm" "$out/uids.raw" > "$out/${size#*:}"
done
rm -f "$out/head.dcm" "$out/uids.raw"

# What DCMTK reads in each is what the tests expect to be bound.
for f in "$out"/*.dcm "$out"/deflated/*.dcm; do
    dcmdump -q "$f" > /dev/null || { echo "identity_cases.sh: DCMTK cannot read $f" >&2; exit 1; }
done
