#!/usr/bin/env bash
# Bad input at the command line, against a SoftHSM token made in a temporary
# directory:
#  - damaged objects (truncated at several places, empty, huge length fields,
#    wrong magic, a future version, random bytes, format v2's origin proof
#    and metadata fields) given to decrypt, inspect,
#    verify and rewrap: exit 65, one line on stderr naming the file and the
#    cause, no crash (exit >= 128, sanitizer report), no hang, no output
#    file, the input unchanged;
#  - DICOM that DCMTK cannot parse (a corrupt element length, a data set cut
#    short, a value DCMTK throws on) is still encrypted, as an opaque object, and decrypts to the
#    same bytes;
#  - a bad option is one line on stderr, exit 64.
#   badinput.sh DCMSEAL CORPUS_DIR
DCMSEAL=$1
CORPUS=$2
NAME=badinput
. "$(dirname "$0")/lib.sh"

# Under -DDCMSEAL_ASAN=ON: DCMTK's own leak when it throws (tests/fuzz/lsan.supp).
export LSAN_OPTIONS="suppressions=$here/../fuzz/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

softhsm_token "$tmp/hsm" badinput-test
expect 0 "key create" "$DCMSEAL" key create kek --bits 2048
export DCMSEAL_KEY=kek
mkdir -p "$tmp/bad" "$tmp/outdir"

# put FILE OFFSET HEX: overwrites bytes of FILE at OFFSET ("ff ff" etc.).
put() {
    local hex
    hex=$(printf '\\x%s' $3)
    printf "$hex" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# flip FILE OFFSET: inverts the byte at OFFSET.
flip() {
    local b
    b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
    put "$1" "$2" "$(printf '%02x' $((b ^ 255)))"
}
# reslot FILE SLOT: recomputes the checksum of key slot 0 or 1 after an edit,
# so that the damage is in the fields, not the checksum.
reslot() {
    local at=$((128 + $2 * 1024))
    dd if="$1" bs=1 skip="$at" count=992 status=none | openssl dgst -sha256 -binary |
        dd of="$1" bs=1 seek=$((at + 992)) conv=notrunc status=none
}

# run CMD FILE ARGS...: runs dcmseal CMD on FILE with a time limit, output
# (if any) into an empty directory; the exit code goes to $rc, stderr to
# $tmp/err. A timeout is exit 124.
run() {
    local cmd=$1 file=$2
    shift 2
    case $cmd in
    decrypt) set -- decrypt "$file" -o "$tmp/outdir/out" "$@" ;;
    rewrap) set -- rewrap --jobs 1 "$file" "$@" ;;
    *) set -- "$cmd" "$file" "$@" ;;
    esac
    timeout 20 "$DCMSEAL" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

# What every refusal must look like: CODE, and the error as one line naming
# FILE with a cause after it.
refused() {
    local code=$1 cmd=$2 file=$3 what=$4
    local prefix="dcmseal: $file: "
    if [ "$rc" -ne "$code" ]; then
        fail "$what: $cmd: exit $rc, wanted $code: $(head -c 300 "$tmp/err")"
    elif [ "$(grep -cF -- "$prefix" "$tmp/err")" -ne 1 ] ||
        [ "$(wc -l < "$tmp/err")" -ne 1 ] ||
        ! grep -F -- "$prefix" "$tmp/err" | awk -v n=${#prefix} 'length($0) < n + 8 { exit 1 }'; then
        fail "$what: $cmd: the error is not one line naming the file: $(head -c 300 "$tmp/err")"
    else
        ok
    fi
}

# No crash, no sanitizer report, no output, the input as it was.
clean() {
    local cmd=$1 file=$2 sum=$3 what=$4
    check "$what: $cmd: no crash (exit $rc)" [ "$rc" -lt 124 ]
    check "$what: $cmd: no sanitizer report" not grep -qE 'Sanitizer|runtime error' "$tmp/err"
    check "$what: $cmd: no output left" [ -z "$(ls -A "$tmp/outdir")" ]
    check "$what: $cmd: input unchanged" [ "$(sha256sum < "$file")" = "$sum" ]
    rm -rf "$tmp/outdir" && mkdir "$tmp/outdir"
}

# bad WHAT FILE [CMD...]: FILE must be refused with 65 by every CMD (default:
# all four commands).
bad() {
    local what=$1 file=$2 sum cmd
    shift 2
    (($#)) || set -- decrypt inspect verify rewrap
    sum=$(sha256sum < "$file")
    for cmd in "$@"; do
        run "$cmd" "$file"
        refused 65 "$cmd" "$file" "$what"
        clean "$cmd" "$file" "$sum" "$what"
    done
}

# header_only WHAT FILE: damage past the preamble that a command reading only
# the preamble cannot see (inspect shows the header, rewrap finds the object
# already under the key): exit 0 or 65, but never a crash, output or change.
header_only() {
    local what=$1 file=$2 sum cmd
    sum=$(sha256sum < "$file")
    for cmd in inspect rewrap; do
        run "$cmd" "$file"
        check "$what: $cmd: exit 0 or 65 (exit $rc)" test "$rc" -eq 0 -o "$rc" -eq 65
        clean "$cmd" "$file" "$sum" "$what"
    done
}

# ---- a good object to damage -------------------------------------------------
# 4 KiB segments: 4096 + 4096 + 1808 plain-text bytes, 12224 bytes sealed.
head -c 10000 /dev/urandom > "$tmp/plain"
expect 0 "encrypt" "$DCMSEAL" encrypt --segment-size 4096 "$tmp/plain" -o "$tmp/good.dcms"
good=$tmp/good.dcms
size=$(stat -c %s "$good")
check "sealed size" [ "$size" -eq 12224 ]
expect 0 "the good object verifies" "$DCMSEAL" verify "$good"
cut_at() { head -c "$2" "$good" > "$tmp/bad/$1"; echo "$tmp/bad/$1"; }
copy() { cp "$good" "$tmp/bad/$1"; echo "$tmp/bad/$1"; }

# ---- truncation --------------------------------------------------------------
bad "zero-length" "$(cut_at empty 0)"
bad "truncated inside the header" "$(cut_at in-header 100)"
bad "truncated inside slot A" "$(cut_at in-slot-a 628)"
bad "truncated inside slot B" "$(cut_at in-slot-b 1700)"
bad "truncated after the key slots" "$(cut_at no-payload 2176)"
# 9 bytes into the last segment: shorter than a tag, so the size alone shows it.
bad "truncated inside the last tag" "$(cut_at in-last-tag $((2176 + 2 * 4112 + 9)))"
# Where only authentication can tell, the commands that read the payload
# refuse it, and the others must not fail open.
f=$(cut_at mid-segment $((2176 + 4112 + 2000)))
bad "truncated mid-segment" "$f" decrypt verify
header_only "truncated mid-segment" "$f"
f=$(cut_at before-last-tag $((size - 16)))
bad "truncated just before the last tag" "$f" decrypt verify
header_only "truncated just before the last tag" "$f"
f=$(cut_at at-segment-boundary $((2176 + 2 * 4112)))
bad "truncated at a segment boundary" "$f" decrypt verify
header_only "truncated at a segment boundary" "$f"

# ---- magic, version, length fields ------------------------------------------
f=$(copy wrong-magic) && put "$f" 1 "58"
bad "wrong magic" "$f"
f=$(copy future-version) && put "$f" 8 "00 03"
bad "future version" "$f"
check "future version: the message names the version" grep -q "version 3" "$tmp/err"
f=$(copy header-length) && put "$f" 10 "ff ff"
bad "header length 65535" "$f"
f=$(copy segment-4g) && put "$f" 16 "ff ff ff ff"
bad "segment size 4 GiB - 1" "$f"
f=$(copy segment-2g) && put "$f" 16 "80 00 00 00"
bad "segment size 2 GiB" "$f"
# The largest legal segment size: the header parses, the payload cannot
# authenticate under it.
f=$(copy segment-16m) && put "$f" 16 "01 00 00 00"
bad "segment size 16 MiB" "$f" decrypt verify
header_only "segment size 16 MiB" "$f"
f=$(copy flags) && put "$f" 12 "80 00 00 00"
bad "unknown header flag" "$f"
f=$(copy wrapped-length) && put "$f" $((128 + 22)) "ff ff" && reslot "$f" 0
bad "wrapped key length 65535" "$f"
f=$(copy name-length) && put "$f" $((128 + 21)) "ff" && reslot "$f" 0
bad "key name length 255" "$f"
f=$(copy slot-checksum) && put "$f" $((128 + 1000)) "00"
bad "slot checksum" "$f"

# ---- format v2: origin proof and metadata fields ------------------------------
check "the good object is format v2 with a proof" \
    [ "$(od -An -tx1 -j 8 -N2 "$good" | tr -d ' ')" = 0002 ]
f=$(copy origin-kind) && put "$f" $((128 + 632)) "02" && reslot "$f" 0
bad "slot origin field 2" "$f"
f=$(copy origin-reserved) && put "$f" $((128 + 633)) "01" && reslot "$f" 0
bad "slot origin reserved byte" "$f"
f=$(copy proof-in-v1-slot) && put "$f" $((128 + 632)) "00" && reslot "$f" 0
bad "slot origin 0 with a proof left in it" "$f"
f=$(copy meta-length) && put "$f" 20 "00 00 01 10"
bad "metadata length without the flag" "$f"
f=$(copy meta-flag) && put "$f" 12 "00 00 00 02"
bad "metadata flag without a length" "$f"
f=$(copy meta-odd) && put "$f" 12 "00 00 00 02" && put "$f" 20 "00 00 01 11"
bad "metadata length not whole blocks" "$f"
# Well-formed, but not what the token proved: the header parses (inspect
# shows it), and every command that opens the object refuses it.
for at in $((128 + 636 + 7)) $((128 + 300)) 60 100; do
    f=$(copy "proof-$at") && flip "$f" "$at"
    [ "$at" -gt 128 ] && reslot "$f" 0
    bad "changed byte $at (proof, wrapped key, identity tag, commitment)" "$f" decrypt verify rewrap
    check "changed byte $at: not made with this archive's keys" \
        grep -q "not made with this archive's keys" "$tmp/err"
    header_only "changed byte $at" "$f"
done
f=$(copy proof-stripped) && put "$f" $((128 + 632)) "00" &&
    dd if=/dev/zero of="$f" bs=1 seek=$((128 + 636)) count=32 conv=notrunc status=none &&
    reslot "$f" 0
bad "v2 with its proof stripped" "$f" decrypt verify rewrap
check "stripped: not made with this archive's keys" grep -q "not made with this archive's keys: format v2 without an origin proof" "$tmp/err"

# ---- not dcmseal at all -----------------------------------------------------
for n in 1 100 2176 5000 20000; do
    head -c "$n" /dev/urandom > "$tmp/bad/random-$n"
    bad "random ($n bytes)" "$tmp/bad/random-$n"
done
# The right magic, then noise.
{ head -c 8 "$good"; head -c 3000 /dev/urandom; } > "$tmp/bad/magic-then-noise"
bad "magic, then random bytes" "$tmp/bad/magic-then-noise"
printf 'not a dcmseal object\n' > "$tmp/bad/text"
bad "a text file" "$tmp/bad/text"

# ---- a slot generation no writer makes ---------------------------------------
# Rewrap writes the other slot with the next generation: from the largest
# there is none, and a wrapped-around generation 0 would be a damaged slot,
# so the object would silently stay under the old key.
f=$(copy generation-max) && put "$f" $((128 + 8)) "ff ff ff ff ff ff ff ff" && reslot "$f" 0
expect 0 "generation 2^64-1: decrypts" "$DCMSEAL" decrypt "$f" -o "$tmp/gen.out"
check "generation 2^64-1: same bytes" cmp -s "$tmp/plain" "$tmp/gen.out"
expect 0 "key rotate" "$DCMSEAL" key rotate kek
bad "generation 2^64-1" "$f" rewrap

# ---- DICOM that DCMTK cannot parse is still encrypted (opaque) -----------------
src=$CORPUS/dwv/dwv-test-simple.dcm
if [ ! -f "$src" ]; then
    "$here/../../scripts/make-samples.sh" "$tmp/gen" >/dev/null
    src=$tmp/gen/IM00001
fi
# Implicit VR: every length field is 4 bytes, so one can claim 4 GiB.
dcmconv +ti "$src" "$tmp/implicit.dcm"
# The byte offset of the first (0008,0018) tag after the meta header.
offset_of_sop_instance() {
    od -An -tx1 -v "$1" | tr -s ' ' '\n' | grep -v '^$' |
        awk '{ b[NR] = $1 } END { for (i = 133; i + 3 <= NR; i++)
                 if (b[i] b[i + 1] b[i + 2] b[i + 3] == "08001800") { print i - 1; exit } }'
}
at=$(offset_of_sop_instance "$tmp/implicit.dcm")
check "found (0008,0018) in the implicit VR file" [ -n "$at" ]
cp "$tmp/implicit.dcm" "$tmp/corrupt-length.dcm"
put "$tmp/corrupt-length.dcm" $((at + 4)) "f0 ff ff ff"
# Cut inside the data set, well before the pixel data.
head -c $((at + 40)) "$tmp/implicit.dcm" > "$tmp/cut-dataset.dcm"
# The magic, then a meta header that is noise.
{ head -c 128 /dev/zero; printf 'DICM'; head -c 500 /dev/urandom; } > "$tmp/noise-meta.dcm"
# A directory record DCMTK throws an exception on (found by fuzz_probe).
cp "$here/../fuzz/regressions/probe/directory-record-dcmtk-throws" "$tmp/dcmtk-throws.dcm"
for f in "$tmp/corrupt-length.dcm" "$tmp/cut-dataset.dcm" "$tmp/noise-meta.dcm" \
    "$tmp/dcmtk-throws.dcm"; do
    what=$(basename "$f")
    sum=$(sha256sum < "$f")
    timeout 20 "$DCMSEAL" encrypt "$f" -o "$f.dcms" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    check "$what: encrypted (exit $rc): $(head -c 200 "$tmp/err")" [ "$rc" -eq 0 ]
    check "$what: one notice naming it opaque" one_line_naming "$f: encrypted as an opaque object ("
    check "$what: the notice says opaque" grep -q "opaque object" "$tmp/err"
    check "$what: no sanitizer report" not grep -qE 'Sanitizer|runtime error' "$tmp/err"
    expect 0 "$what: inspect" timeout 20 "$DCMSEAL" inspect --json "$f.dcms"
    check "$what: inspect says opaque" grep -q '"kind":"opaque"' "$tmp/out"
    expect 0 "$what: verify" timeout 20 "$DCMSEAL" verify "$f.dcms"
    expect 0 "$what: decrypt" timeout 20 "$DCMSEAL" decrypt "$f.dcms" -o "$f.out"
    check "$what: the same bytes back" cmp -s "$f" "$f.out"
    check "$what: input unchanged" [ "$(sha256sum < "$f")" = "$sum" ]
    expect 65 "$what: --strict refuses it" timeout 20 "$DCMSEAL" encrypt --strict "$f" -o "$f.strict"
    check "$what: --strict: no output" [ ! -e "$f.strict" ]
done

# ---- bad options: one line, and it is ours ---------------------------------
for args in "decrypt --bogus $good -o $tmp/x" "decrypt --segment-size 4096 $good -o $tmp/x" \
    "rewrap --jobs" "inspect -z $good" "verify --token"; do
    expect 64 "usage: $args" timeout 20 "$DCMSEAL" $args
    check "usage: $args: one line" [ "$(wc -l < "$tmp/err")" -eq 1 ]
    check "usage: $args: it names the option" grep -qE -- '(--bogus|--segment-size|--jobs|-z|--token)' "$tmp/err"
done

finish
