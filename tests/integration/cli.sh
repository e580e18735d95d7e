#!/usr/bin/env bash
# Drives build/dcmseal against SoftHSM tokens made in a temporary directory.
#   cli.sh DCMSEAL CORPUS_DIR
DCMSEAL=$1
CORPUS=$2
NAME=cli
. "$(dirname "$0")/lib.sh"

softhsm_token "$tmp/hsm" cli-test
MAIN_TOKEN=$DCMSEAL_TOKEN
expect 0 "key create" "$DCMSEAL" key create kek --bits 2048
expect 0 "key create 3072" "$DCMSEAL" key create big --bits 3072
expect 64 "key create 4096 refused" "$DCMSEAL" key create huge --bits 4096
expect 64 "duplicate key refused" "$DCMSEAL" key create kek --bits 2048
expect 0 "key list" "$DCMSEAL" key list --json
check "key list shows both keys" grep -q '"name":"big","version":1,"bits":3072' "$tmp/out"
export DCMSEAL_KEY=kek

# ---- round trip of every corpus file ----------------------------------------
mkdir -p "$tmp/corpus"
if [ -d "$CORPUS" ]; then
    cp -r "$CORPUS"/. "$tmp/corpus/"
else
    echo "note: $CORPUS absent, using generated samples"
    "$here/../../scripts/make-samples.sh" "$tmp/corpus" >/dev/null
fi
n=0 same=0 opaque=0
while IFS= read -r -d '' f; do
    n=$((n + 1))
    sum=$(sha256sum < "$f")
    if "$DCMSEAL" encrypt "$f" -o "$tmp/x.dcms" 2>"$tmp/err" &&
        "$DCMSEAL" decrypt "$tmp/x.dcms" -o "$tmp/x.out" &&
        cmp -s "$f" "$tmp/x.out" && [ "$(sha256sum < "$f")" = "$sum" ]; then
        same=$((same + 1))
    else
        fail "round trip $f"
    fi
    grep -q "opaque object" "$tmp/err" && opaque=$((opaque + 1))
    # No UID and no patient name in plain text in the encrypted file.
    for tag in 0008,0018 0020,000d 0010,0010; do
        v=$(dcmdump -q +P "$tag" "$f" 2>/dev/null | sed -n 's/.*\[\(.*\)\].*/\1/p' | head -1)
        if [ ${#v} -ge 4 ] && grep -qF -- "$v" "$tmp/x.dcms"; then
            fail "$f: $tag value in plain text in the encrypted file"
        fi
    done
    rm -f "$tmp/x.dcms" "$tmp/x.out"
done < <(find "$tmp/corpus" -type f -print0)
check "corpus round trip ($same of $n)" [ "$n" -gt 0 ] && [ "$same" -eq "$n" ]
echo "corpus: $same of $n files byte-identical, $opaque opaque"

dcm=$(find "$tmp/corpus" -name 'CT1_UNC.explicit_little_endian.dcm' | head -1)
[ -n "$dcm" ] || dcm=$(find "$tmp/corpus" -type f -name 'IM*' | head -1)
cp "$dcm" "$tmp/in.dcm"
in_sum=$(sha256sum < "$tmp/in.dcm")

# ---- inspect, verify, verbose -------------------------------------------------
expect 0 "encrypt" "$DCMSEAL" -v encrypt "$tmp/in.dcm" -o "$tmp/in.dcms"
check "verbose names the fallback" grep -q "RSA-OAEP sha1 (fallback: the token refused SHA-256)" "$tmp/err"
expect 0 "inspect" "$DCMSEAL" inspect --json "$tmp/in.dcms"
check "inspect json" grep -q '"kind":"dicom","key":{"name":"kek","version":1,"oaep":"sha1"' "$tmp/out"
expect 0 "inspect text" "$DCMSEAL" inspect "$tmp/in.dcms"
check "inspect shows the mechanism" grep -q "wrap mechanism:  RSA-OAEP sha1" "$tmp/out"
expect 0 "verify" "$DCMSEAL" verify "$tmp/in.dcms"
check "verify checks the identity" grep -q "DICOM identity matches" "$tmp/out"
expect 0 "encrypt under the 3072 key" "$DCMSEAL" encrypt --key big "$tmp/in.dcm" -o "$tmp/big.dcms"
expect 0 "decrypt the 3072 object" "$DCMSEAL" decrypt "$tmp/big.dcms" -o "$tmp/big.out"
check "3072 round trip" cmp -s "$tmp/in.dcm" "$tmp/big.out"
expect 69 "OAEP SHA-256 demanded of SoftHSM" "$DCMSEAL" encrypt --oaep sha256 "$tmp/in.dcm" -o "$tmp/sha256.dcms"
check "no output after a refused wrap" [ ! -e "$tmp/sha256.dcms" ]

# ---- outputs are atomic and inputs untouched ---------------------------------
expect 64 "existing output kept" "$DCMSEAL" encrypt "$tmp/in.dcm" -o "$tmp/in.dcms"
expect 0 "--force replaces" "$DCMSEAL" encrypt --force "$tmp/in.dcm" -o "$tmp/in.dcms"
expect 64 "output is the input" "$DCMSEAL" encrypt --force "$tmp/in.dcm" -o "$tmp/in.dcm"
check "input untouched" [ "$(sha256sum < "$tmp/in.dcm")" = "$in_sum" ]
check "no temporary files left" [ -z "$(find "$tmp" -maxdepth 1 -name '.*dcmseal-*')" ]
mkdir "$tmp/ro" && chmod 500 "$tmp/ro"
if [ "$(id -u)" -ne 0 ]; then
    expect 74 "unwritable output directory" "$DCMSEAL" encrypt "$tmp/in.dcm" -o "$tmp/ro/x.dcms"
fi
expect 74 "missing input" "$DCMSEAL" encrypt "$tmp/nope.dcm" -o "$tmp/nope.dcms"
check "missing input: one line naming the file" one_line_naming "$tmp/nope.dcm"

# ---- tampering and truncation: 65, and no output ------------------------------
size=$(stat -c %s "$tmp/in.dcms")
cp "$tmp/in.dcms" "$tmp/bad.dcms"
printf '\x01' | dd of="$tmp/bad.dcms" bs=1 seek=$((size - 40)) conv=notrunc status=none
expect 65 "tampered payload" "$DCMSEAL" decrypt "$tmp/bad.dcms" -o "$tmp/bad.out"
check "tampered: one line naming the file" one_line_naming "$tmp/bad.dcms"
check "tampered: no output" [ ! -e "$tmp/bad.out" ]
expect 65 "tampered payload (verify)" "$DCMSEAL" verify "$tmp/bad.dcms"
head -c $((size - 100)) "$tmp/in.dcms" > "$tmp/short.dcms"
expect 65 "truncated" "$DCMSEAL" decrypt "$tmp/short.dcms" -o "$tmp/short.out"
check "truncated: no output" [ ! -e "$tmp/short.out" ]
expect 65 "not a dcmseal file" "$DCMSEAL" decrypt "$tmp/in.dcm" -o "$tmp/plain.out"
expect 65 "inspect of a non-dcmseal file" "$DCMSEAL" inspect "$tmp/in.dcm"
: > "$tmp/empty"
expect 65 "empty file" "$DCMSEAL" decrypt "$tmp/empty" -o "$tmp/empty.out"
# A wrapped DEK altered with its slot checksum recomputed gets past the
# checksum and must be refused by the token's OAEP decoding: 65, not 69.
cp "$tmp/in.dcms" "$tmp/slot.dcms"
printf '\xff' | dd of="$tmp/slot.dcms" bs=1 seek=$((128 + 120 + 7)) conv=notrunc status=none
dd if="$tmp/slot.dcms" bs=1 skip=128 count=992 status=none | openssl dgst -sha256 -binary |
    dd of="$tmp/slot.dcms" bs=1 seek=$((128 + 992)) conv=notrunc status=none
expect 65 "forged wrapped key" "$DCMSEAL" decrypt "$tmp/slot.dcms" -o "$tmp/slot.out"
check "forged wrapped key: no output" [ ! -e "$tmp/slot.out" ]

# ---- non-DICOM input ---------------------------------------------------------
printf 'hello, not DICOM\n' > "$tmp/notes.txt"
expect 0 "non-DICOM encrypts" "$DCMSEAL" encrypt "$tmp/notes.txt" -o "$tmp/notes.dcms"
check "non-DICOM notice" grep -q "notes.txt: encrypted as an opaque object (not DICOM" "$tmp/err"
expect 0 "inspect opaque" "$DCMSEAL" inspect --json "$tmp/notes.dcms"
check "opaque kind" grep -q '"kind":"opaque"' "$tmp/out"
expect 65 "--strict refuses non-DICOM" "$DCMSEAL" encrypt --strict "$tmp/notes.txt" -o "$tmp/strict.dcms"
check "--strict: no output" [ ! -e "$tmp/strict.dcms" ]
expect 0 "--strict takes DICOM" "$DCMSEAL" encrypt --strict "$tmp/in.dcm" -o "$tmp/strict2.dcms"

# ---- streaming through pipes, larger than a segment -------------------------
big=$(find "$tmp/corpus" -type f -size +100k | head -1)
[ -n "$big" ] || { head -c 300000 /dev/urandom > "$tmp/rand.bin"; big=$tmp/rand.bin; }
cat "$big" | "$DCMSEAL" encrypt --segment-size 4096 - -o - 2>/dev/null |
    "$DCMSEAL" decrypt - -o - > "$tmp/piped.out"
check "pipe round trip ($(stat -c %s "$big") bytes, 4 KiB segments)" cmp -s "$big" "$tmp/piped.out"
cat "$big" | "$DCMSEAL" encrypt - -o "$tmp/piped.dcms" 2>/dev/null
expect 0 "pipe-encrypted object verifies" "$DCMSEAL" verify "$tmp/piped.dcms"

# ---- identity: what DCMTK reads is bound with its data set's UIDs (issue 12) --
# Objects built with DCMTK's tools: UIDs with VR UN, data sets without
# preamble, a meta header that disagrees, a 2 MiB private element, every UID
# after the first MiB or after the pixel data (tests/support/identity_cases.sh).
bash "$here/../support/identity_cases.sh" "$tmp/cases"
mkdir "$tmp/ids"
for f in "$tmp/cases"/*.dcm; do
    name=$(basename "$f") x=$tmp/ids/$(basename "$f")
    expect 0 "$name: encrypt" "$DCMSEAL" encrypt "$f" -o "$x.dcms"
    case $name in
    meta-differs.dcm | after-pixels*)
        check "$name: one notice, the data set's UID is bound" one_line_naming \
            "$f: encrypted (DICOM); note: the meta header's (0002,0003) differs from the data set's SOP Instance UID; the data set's is bound" ;;
    *) check "$name: bound, no notice ($(head -c 200 "$tmp/err"))" [ ! -s "$tmp/err" ] ;;
    esac
    expect 0 "$name: decrypt" "$DCMSEAL" decrypt "$x.dcms" -o "$x.out"
    check "$name: the same bytes back" cmp -s "$f" "$x.out"
    expect 0 "$name: verify" "$DCMSEAL" verify "$x.dcms"
    check "$name: verify checks the identity" grep -q "DICOM identity matches" "$tmp/out"
done
# encrypt -r also finds cases/deflated/: skipping 2 MiB of a deflated data set
# means inflating it, which counts against the 1 MiB limit: opaque.
expect 0 "encrypt -r of the cases" "$DCMSEAL" encrypt -r "$tmp/cases" -o "$tmp/cases.enc"
check "encrypt -r: notices name the files whose meta header differs" \
    [ "$(grep -c "encrypted (DICOM); note: the meta header's (0002,0003) differs" "$tmp/err")" -eq 3 ]
check "encrypt -r: one opaque" [ "$(grep -c "encrypted as an opaque object" "$tmp/err")" -eq 1 ]
check "encrypt -r: the notice says why" grep -q \
    "deflated/private-2m.dcm: encrypted as an opaque object (incomplete identity: the identity is not within the first 1048576 bytes of elements (the probe's limit))" "$tmp/err"
expect 0 "verify -r of the cases" "$DCMSEAL" verify -r "$tmp/cases.enc"
check "verify -r: every identity checked" [ "$(grep -c "DICOM identity matches" "$tmp/out")" -eq 10 ]
# Of a pipe, the probe has the first MiB, which does not hold this identity.
cat "$tmp/cases/big-private.dcm" | "$DCMSEAL" encrypt - -o "$tmp/piped-id.dcms" 2>"$tmp/err"
check "pipe beyond the first MiB: opaque, and the notice says why" grep -q \
    "encrypted as an opaque object (incomplete identity: the identity is not within the first 1048576 bytes, and the input cannot be read further)" "$tmp/err"
expect 0 "pipe beyond the first MiB: verify" "$DCMSEAL" verify "$tmp/piped-id.dcms"
check "pipe beyond the first MiB: verify says opaque" grep -q "OK (opaque" "$tmp/out"
expect 0 "pipe beyond the first MiB: decrypt" "$DCMSEAL" decrypt "$tmp/piped-id.dcms" -o "$tmp/piped-id.out"
check "pipe beyond the first MiB: the same bytes back" cmp -s "$tmp/cases/big-private.dcm" "$tmp/piped-id.out"

# ---- keys and tokens: 69, and no output --------------------------------------
expect 69 "unknown key" "$DCMSEAL" encrypt --key nosuch "$tmp/in.dcm" -o "$tmp/nokey.dcms"
check "unknown key: no output" [ ! -e "$tmp/nokey.dcms" ]
check "unknown key: one line naming the file and key" one_line_naming "$tmp/in.dcm: key 'nosuch'"
softhsm_token "$tmp/hsm2" other-token # a key of the same name, but another key
expect 0 "impostor key" "$DCMSEAL" key create kek --bits 2048
expect 69 "wrong key" "$DCMSEAL" decrypt "$tmp/in.dcms" -o "$tmp/wrong.out"
check "wrong key names the key" grep -q "kek" "$tmp/err"
check "wrong key: no output" [ ! -e "$tmp/wrong.out" ]
softhsm_token "$tmp/hsm3" empty-token
expect 69 "missing key" "$DCMSEAL" decrypt "$tmp/in.dcms" -o "$tmp/missing.out"
check "missing key: no output" [ ! -e "$tmp/missing.out" ]
check "missing key: one line naming the file" one_line_naming "$tmp/in.dcms"

export SOFTHSM2_CONF=$tmp/hsm/softhsm2.conf DCMSEAL_TOKEN=$MAIN_TOKEN
expect 0 "back on the right token" "$DCMSEAL" decrypt "$tmp/in.dcms" -o "$tmp/right.out"
(umask 077; printf 'wrong-pin' > "$tmp/badpin")
expect 69 "wrong PIN" "$DCMSEAL" decrypt --token "${MAIN_TOKEN%%&pin-source=*}&pin-source=file:$tmp/badpin" "$tmp/in.dcms" -o "$tmp/pin.out"
check "wrong PIN: not echoed" not grep -q "wrong-pin" "$tmp/err"
check "wrong PIN: one line naming the file" one_line_naming "$tmp/in.dcms"
expect 64 "pin-value refused" "$DCMSEAL" key list --token "${MAIN_TOKEN%%&pin-source=*}&pin-value=1234"
expect 69 "no PIN" env -u DCMSEAL_PIN "$DCMSEAL" key list --token "${MAIN_TOKEN%%&pin-source=*}"
DCMSEAL_PIN=$(cat "$tmp/hsm/pin") expect 0 "PIN from DCMSEAL_PIN" "$DCMSEAL" key list --token "${MAIN_TOKEN%%&pin-source=*}"
expect 69 "module that fails to load" "$DCMSEAL" key list --token "pkcs11:token=cli-test?module-path=$tmp/nosuch.so&pin-source=file:$tmp/hsm/pin"
mv "$tmp/hsm/tokens" "$tmp/hsm/tokens.away" && mkdir "$tmp/hsm/tokens"
expect 69 "token directory moved away" "$DCMSEAL" decrypt "$tmp/in.dcms" -o "$tmp/moved.out"
check "token moved away: no output" [ ! -e "$tmp/moved.out" ]
rmdir "$tmp/hsm/tokens" && mv "$tmp/hsm/tokens.away" "$tmp/hsm/tokens"
expect 0 "token back" "$DCMSEAL" decrypt "$tmp/in.dcms" -o "$tmp/moved.out"

# ---- usage -------------------------------------------------------------------
expect 0 "--help" "$DCMSEAL" --help
check "--help lists the commands" grep -q "^  key create  " "$tmp/out"
expect 64 "no command" "$DCMSEAL"
expect 64 "unknown command" "$DCMSEAL" frobnicate
expect 64 "missing -o" "$DCMSEAL" encrypt "$tmp/in.dcm"
expect 64 "bad segment size" "$DCMSEAL" encrypt --segment-size 12 "$tmp/in.dcm" -o "$tmp/seg.dcms"
expect 64 "no token" env -u DCMSEAL_TOKEN "$DCMSEAL" key list

finish
