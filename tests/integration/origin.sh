#!/usr/bin/env bash
# Origin proofs at the command line (docs/FORMAT.md "Origin proof"), against a
# SoftHSM token made in a temporary directory:
#  - forgeries made from the KEK's public half alone (a public key is no
#    secret: KEKs made before their lockdown show it without the PIN) by an
#    independent writer of docs/FORMAT.md (forge.py),
#    with the real UIDs of a DICOM file and an altered patient name: decrypt,
#    verify and rewrap refuse them (65, "not made with this archive's keys",
#    no output, the file unchanged);
#  - the same writer's format v1 object opens where the name's policy allows
#    it (so the forgery is right in every other byte) and is refused where
#    it requires origin;
#  - a name made before origin keys (its origin objects removed behind
#    dcmseal's back): format v1 with a notice, key upgrade, rewrap --upgrade,
#    key policy --require-origin;
#  - rotation never strands a proof: rotate, rewrap -r, disable and destroy
#    the old version, and every object still verifies;
#  - inspect shows the version and the proof, and checks it with the token.
#   origin.sh DCMSEAL CORPUS_DIR
DCMSEAL=$1
CORPUS=$2
NAME=origin
. "$(dirname "$0")/lib.sh"
FORGE=$here/forge.py

export DCMSEAL_RETRY_MAX=1
token_with_key "$tmp/hsm" origin-test kek
label=origin-test
pin=$tmp/hsm/pin
p11() { pkcs11-tool --module "$TOKEN_MODULE" --token-label "$label" "$@" 2>/dev/null; }
sha() { sha256sum < "$1"; }

# A DICOM file with all three UIDs, and a copy with another patient name.
src=
for f in $(find "$CORPUS" -name '*.dcm' -size -300k 2>/dev/null | sort); do
    n=$(dcmdump -q -Un +P 0008,0016 +P 0008,0018 +P 0020,000d "$f" 2>/dev/null | grep -c '\[')
    [ "$n" -eq 3 ] && { src=$f; break; }
done
if [ -z "$src" ]; then
    "$here/../../scripts/make-samples.sh" "$tmp/gen" >/dev/null
    src=$(find "$tmp/gen" -type f | sort | head -1)
fi
uids=$(dcmdump -q -Un +P 0008,0016 +P 0008,0018 +P 0020,000d "$src" |
    sed 's/^[^[]*\[\([^]]*\)\].*/\1/' | paste -sd,)
check "three UIDs read from $src ($uids)" [ "$(echo "$uids" | tr ',' '\n' | grep -c .)" -eq 3 ]
cp "$src" "$tmp/altered.dcm"
dcmodify -nb -m "(0010,0010)=FORGED^PATIENT" "$tmp/altered.dcm" >/dev/null 2>&1
check "the altered copy differs" not cmp -s "$src" "$tmp/altered.dcm"
check "and keeps the UIDs" [ "$(dcmdump -q -Un +P 0008,0016 +P 0008,0018 +P 0020,000d \
    "$tmp/altered.dcm" | sed 's/^[^[]*\[\([^]]*\)\].*/\1/' | paste -sd,)" = "$uids" ]

# ---- the genuine object -----------------------------------------------------
mkdir -p "$tmp/archive"
expect 0 "encrypt" "$DCMSEAL" encrypt "$src" -o "$tmp/archive/genuine.dcms"
expect 0 "inspect" "$DCMSEAL" inspect "$tmp/archive/genuine.dcms"
check "format v2" grep -q '^format: *dcmseal v2' "$tmp/out"
check "a proof, not checked without the token" grep -q '^origin proof: *present, not checked' "$tmp/out"
expect 0 "inspect --token" "$DCMSEAL" inspect --token "$DCMSEAL_TOKEN" "$tmp/archive/genuine.dcms"
check "checked in the token" grep -q "^origin proof: *verified in token '$label'" "$tmp/out"
expect 0 "inspect --json --token" "$DCMSEAL" inspect --json --token "$DCMSEAL_TOKEN" "$tmp/archive/genuine.dcms"
check "json: version and origin" grep -q '"format_version":2,.*"origin":"verified"' "$tmp/out"
expect 0 "verify the genuine object" "$DCMSEAL" verify "$tmp/archive/genuine.dcms"
check "verify: identity and origin" grep -q "OK (DICOM identity matches, origin verified, key 'kek' v1)" "$tmp/out"

# ---- the public half ------------------------------------------------------------
# A KEK made now keeps its public half private (docs/KEYS.md), so the forger
# is handed it here; it is no secret (exported, or read without the PIN from
# a KEK made before), and the forger uses nothing else.
p11 --read-object --type pubkey --label kek -o "$tmp/pub.der"
check "a KEK made now: its public half is not readable without the PIN" [ ! -s "$tmp/pub.der" ]
p11 --login --pin "$(cat "$pin")" --read-object --type pubkey --label kek -o "$tmp/pub.der"
check "public key read" [ -s "$tmp/pub.der" ]
fp=$(openssl pkey -pubin -inform DER -in "$tmp/pub.der" -outform DER | sha256sum | cut -c1-64)
expect 0 "key list" "$DCMSEAL" key list kek --json
check "it is the KEK's (fingerprint $fp)" grep -q "\"fingerprint\":\"$fp\"" "$tmp/out"

# forge OUT FORMAT PROOF: the altered file, the real UIDs, the public key.
forge() {
    python3 "$FORGE" --pubkey "$tmp/pub.der" --name kek --kek-version 1 --format "$2" \
        --proof "$3" --oaep "$TOKEN_OAEP" --uids "$uids" "$tmp/altered.dcm" "$1"
}
forge "$tmp/forged-v2.dcms" 2 random
forge "$tmp/forged-v2-bare.dcms" 2 none
forge "$tmp/forged-v1.dcms" 1 none
check "the forger wrote three objects" [ -s "$tmp/forged-v2.dcms" ] && [ -s "$tmp/forged-v2-bare.dcms" ] && [ -s "$tmp/forged-v1.dcms" ]
expect 0 "inspect reads the forgery's header" "$DCMSEAL" inspect "$tmp/forged-v2.dcms"
check "its key and fingerprint are the real ones" grep -q "sha256:$fp" "$tmp/out"

# refused FILE WHAT: decrypt, verify, rewrap (also --upgrade) and inspect
# --token say "not made with this archive's keys", exit 65, no output, the
# file as it was.
refused() {
    local f=$1 what=$2 sum
    sum=$(sha "$f")
    expect 65 "$what: decrypt" "$DCMSEAL" decrypt "$f" -o "$tmp/forged.out"
    check "$what: decrypt: one line, not made with this archive's keys" \
        one_line_naming "$f: not made with this archive's keys"
    check "$what: decrypt: no output" [ ! -e "$tmp/forged.out" ]
    expect 65 "$what: verify" "$DCMSEAL" verify "$f"
    check "$what: verify: not made with this archive's keys" \
        grep -q "$f: not made with this archive's keys" "$tmp/err"
    check "$what: verify: no OK line" not grep -q OK "$tmp/out"
    expect 65 "$what: rewrap" "$DCMSEAL" rewrap "$f"
    check "$what: rewrap: not made with this archive's keys" \
        grep -q "$f: not made with this archive's keys" "$tmp/err"
    expect 65 "$what: rewrap --upgrade" "$DCMSEAL" rewrap --upgrade "$f"
    expect 65 "$what: inspect --token" "$DCMSEAL" inspect --token "$DCMSEAL_TOKEN" "$f"
    check "$what: the file is as it was" [ "$(sha "$f")" = "$sum" ]
}
refused "$tmp/forged-v2.dcms" "forged v2 with a made-up proof"
refused "$tmp/forged-v2-bare.dcms" "forged v2 without a proof"
refused "$tmp/forged-v1.dcms" "forged v1 under a name that requires origin"
check "forged v1: the message says why" grep -q "format v1 without an origin proof, and key 'kek' requires one" "$tmp/err"

# The forgery is right in every byte but the proof: where the policy allows
# format v1, it opens, with a notice, to the altered content, and its DICOM
# identity checks. Only the proof stands in the way.
expect 0 "policy: allow unproven objects" "$DCMSEAL" key policy kek --no-require-origin
expect 0 "forged v1 opens without the policy" "$DCMSEAL" decrypt "$tmp/forged-v1.dcms" -o "$tmp/forged.out"
check "with a notice that it has no origin proof" grep -q "forged-v1.dcms: notice: no origin proof" "$tmp/err"
check "to the altered content" cmp -s "$tmp/altered.dcm" "$tmp/forged.out"
rm -f "$tmp/forged.out"
expect 0 "and verifies" "$DCMSEAL" verify "$tmp/forged-v1.dcms"
check "verify: identity matches, no origin" grep -q "OK (DICOM identity matches, no origin proof, key 'kek' v1)" "$tmp/out"
refused "$tmp/forged-v2.dcms" "forged v2, policy off"
expect 0 "policy: require origin again" "$DCMSEAL" key policy kek --require-origin
expect 0 "key policy shows it" "$DCMSEAL" key policy kek
check "required" grep -q "origin proofs required" "$tmp/out"
refused "$tmp/forged-v1.dcms" "forged v1, policy back on"

# ---- a name made before origin keys --------------------------------------------
expect 0 "create legacy" "$DCMSEAL" key create legacy --bits 2048
# What an earlier dcmseal left: a key pair, nothing else.
for id in "dcmseal-origin:legacy:v1" "dcmseal-names:legacy"; do
    p11 --login --pin "$(cat "$pin")" --delete-object --type secrkey --label legacy \
        --id "$(printf %s "$id" | od -An -tx1 | tr -d ' \n')" >/dev/null
done
p11 --login --pin "$(cat "$pin")" --delete-object --type data --label legacy \
    --application-label dcmseal-origin-policy >/dev/null
expect 0 "key list legacy" "$DCMSEAL" key list legacy --json
check "no origin key, no policy" grep -q '"origin_key":false' "$tmp/out" && grep -q '"require_origin":false' "$tmp/out"
expect 0 "encrypt under legacy" "$DCMSEAL" encrypt --key legacy "$src" -o "$tmp/archive/old.dcms"
check "encrypt says it writes v1" grep -q "notice: key 'legacy' v1 has no origin key: written in format v1" "$tmp/err"
expect 0 "inspect old" "$DCMSEAL" inspect "$tmp/archive/old.dcms"
check "old: format v1, no proof" grep -q '^format: *dcmseal v1' "$tmp/out" && grep -q '^origin proof: *none' "$tmp/out"
expect 0 "decrypt old" "$DCMSEAL" decrypt "$tmp/archive/old.dcms" -o "$tmp/old.out"
check "old: a notice" grep -q "notice: no origin proof" "$tmp/err"
check "old: the same bytes" cmp -s "$src" "$tmp/old.out"
expect 69 "concealed names need an origin key" "$DCMSEAL" encrypt --key legacy -r "$CORPUS" -o "$tmp/nope" --conceal-names
expect 0 "key upgrade legacy" "$DCMSEAL" key upgrade legacy
check "upgrade: two keys added" grep -q "2 keys added" "$tmp/out"
expect 0 "key upgrade again" "$DCMSEAL" key upgrade legacy
check "upgrade again: nothing to add" grep -q "nothing to add" "$tmp/out"
expect 0 "encrypt after the upgrade" "$DCMSEAL" encrypt --key legacy "$src" -o "$tmp/archive/new.dcms"
check "no notice now" not grep -q notice "$tmp/err"
expect 0 "inspect new" "$DCMSEAL" inspect "$tmp/archive/new.dcms"
check "new: format v2" grep -q '^format: *dcmseal v2' "$tmp/out"
# A damaged v1 object is never given a proof.
cp "$tmp/archive/old.dcms" "$tmp/damaged.dcms"
printf '\x01' | dd of="$tmp/damaged.dcms" bs=1 seek=3000 conv=notrunc status=none
sum=$(sha "$tmp/damaged.dcms")
expect 65 "rewrap --upgrade of a damaged v1 object" "$DCMSEAL" rewrap --upgrade "$tmp/damaged.dcms"
check "the damaged object is as it was" [ "$(sha "$tmp/damaged.dcms")" = "$sum" ]
expect 0 "rewrap without --upgrade leaves v1 unproven" "$DCMSEAL" rewrap "$tmp/archive/old.dcms"
expect 0 "inspect old" "$DCMSEAL" inspect "$tmp/archive/old.dcms"
check "still no proof" grep -q '^origin proof: *none' "$tmp/out"
expect 0 "rewrap --upgrade -r" "$DCMSEAL" -v rewrap --upgrade -r "$tmp/archive"
check "one object upgraded" grep -q "old.dcms: .*origin proof added" "$tmp/err"
expect 0 "inspect --token old" "$DCMSEAL" inspect --token "$DCMSEAL_TOKEN" "$tmp/archive/old.dcms"
check "old: still format v1, its proof verifies" grep -q '^format: *dcmseal v1' "$tmp/out" && grep -q "^origin proof: *verified" "$tmp/out"
expect 0 "policy on legacy" "$DCMSEAL" key policy legacy --require-origin
expect 0 "the upgraded object opens under the policy" "$DCMSEAL" decrypt "$tmp/archive/old.dcms" -o "$tmp/old2.out"
check "without a notice" not grep -q notice "$tmp/err"
p11 --login --pin "$(cat "$pin")" --read-object --type pubkey --label legacy -o "$tmp/pub-legacy.der"
python3 "$FORGE" --pubkey "$tmp/pub-legacy.der" --name legacy --kek-version 1 --format 1 \
    --proof none --oaep "$TOKEN_OAEP" --uids "$uids" "$tmp/altered.dcm" "$tmp/forged-legacy.dcms"
expect 65 "a new v1 forgery under legacy is refused" "$DCMSEAL" decrypt "$tmp/forged-legacy.dcms" -o "$tmp/fl.out"
check "no output" [ ! -e "$tmp/fl.out" ]

# ---- rotation never strands a proof ---------------------------------------------
expect 0 "key rotate kek" "$DCMSEAL" key rotate kek
expect 0 "key rotate legacy" "$DCMSEAL" key rotate legacy
expect 0 "rewrap -r" "$DCMSEAL" rewrap -r "$tmp/archive"
for k in kek legacy; do
    expect 0 "disable $k v1" "$DCMSEAL" key disable "$k" 1
    expect 0 "destroy $k v1" "$DCMSEAL" key destroy "$k" 1 --archive "$tmp/archive"
done
expect 0 "every object still verifies" "$DCMSEAL" verify -r "$tmp/archive"
check "three objects, all verified" grep -q "verify: 3 files: 3 verified" "$tmp/err"
check "each with its origin" [ "$(grep -c 'origin verified' "$tmp/out")" -eq 3 ]

finish
