#!/usr/bin/env bash
# Known answers run by the token (SoftHSM, or openCryptoki with
# DCMSEAL_TEST_TOKEN=opencryptoki), through dcmseal's own code:
#  - Wycheproof RSA-OAEP: each test key imported into the token, each
#    ciphertext unwrapped by dcmseal_kek_unwrap (tests/support/token_vectors.c).
#    A valid vector with the empty label (dcmseal's) must give its message;
#    every other one is bad data (65), never a key or token error (69).
#    SHA-1 runs on every token; SHA-256 where the token does it, and where
#    it does not, every vector is refused as a key error (the token's
#    capability), never as bad data.
#  - dcmseal's format vectors (tests/vectors: RSA-OAEP SHA-256, mechanism 2,
#    under kat-kek.pem, imported as key 'kat' v1): decrypt to the known plain
#    text, verify, inspect; then rotation by a version the token makes.
#   vectors.sh DCMSEAL TOKEN_VECTORS WYCHEPROOF_DIR KAT_DIR
DCMSEAL=$1
TOKEN_VECTORS=$2
WYCHEPROOF=$3
KAT=$4
NAME=vectors
. "$(dirname "$0")/lib.sh"

export DCMSEAL_RETRY_MAX=1
test_token "$tmp/hsm" vectors-test

# ---- Wycheproof RSA-OAEP through the token --------------------------------------
python3 - "$WYCHEPROOF" "$TOKEN_OAEP" "$tmp" > "$tmp/wycheproof.cmds" <<'PY'
import json, sys
wp, token_oaep, tmp = sys.argv[1:4]
for name, sha in (("rsa_oaep_2048_sha1_mgf1sha1", "sha1"),
                  ("rsa_oaep_2048_sha256_mgf1sha256", "sha256"),
                  ("rsa_oaep_3072_sha256_mgf1sha256", "sha256")):
    doc = json.load(open(f"{wp}/{name}_test.json"))
    for i, g in enumerate(doc["testGroups"]):
        pem = f"{tmp}/{name}.{i}.pem"
        with open(pem, "w") as f:
            f.write(g["privateKeyPem"])
        print("key", f"wp-{name.replace('_', '-')}", i + 1, pem)
        for t in g["tests"]:
            if sha == "sha256" and token_oaep == "sha1":
                expect = "key"
            elif t["result"] == "valid" and t["label"] == "":
                expect = "ok"
            else:
                expect = "auth"
            print("unwrap", sha, expect, f"{sha}-{g['keySize']}#{t['tcId']}", t["ct"] or "-",
                  t["msg"])
PY
expect 0 "Wycheproof RSA-OAEP vectors through the token" "$TOKEN_VECTORS" < "$tmp/wycheproof.cmds"
cat "$tmp/out"
# count EXPECT: how many vectors expect EXPECT, and how many ended so.
wanted() { grep -c "^unwrap [a-z0-9]* $1 " "$tmp/wycheproof.cmds"; }
ended() { sed -n "s/^token_vectors: \([0-9]*\) $1\$/\1/p" "$tmp/out"; }
nvec=$(grep -c '^unwrap' "$tmp/wycheproof.cmds")
check "every vector ran ($nvec), as expected" \
    [ "$nvec" -ge 100 ] && [ "$(ended ok)" = "$(wanted ok)" ] && [ "$(ended auth)" = "$(wanted auth)" ]
if [ "$TOKEN_OAEP" = sha256 ]; then
    check "SHA-256 vectors decrypted in the token ($(grep -c '^unwrap sha256 ok ' "$tmp/wycheproof.cmds"))" \
        [ "$(grep -c '^unwrap sha256 ok ' "$tmp/wycheproof.cmds")" -ge 20 ]
else
    check "SHA-256 vectors refused as the token's capability ($(wanted key))" \
        [ "$(wanted key)" -ge 70 ] && [ "$(ended key)" = "$(wanted key)" ]
fi

# ---- dcmseal's format vectors ------------------------------------------------------
echo "key kat 1 $KAT/kat-kek.pem" | "$TOKEN_VECTORS" > "$tmp/import.out" 2>&1 ||
    fail "importing kat-kek.pem: $(cat "$tmp/import.out")"
mkdir -p "$tmp/kat"
for f in "$KAT"/kat-*.dcms; do cp "$f" "$tmp/kat/"; done
nkat=$(ls "$tmp/kat" | wc -l)
check "the format vectors are there ($nkat)" [ "$nkat" -ge 3 ]
# plain NAME: the known plain text of vector NAME (README.md: (i*31+7) mod 256).
plain() {
    local len
    len=$(awk -v n="$1" '$1 == "name" { cur = $3 } cur == n && $1 == "plain_len" { print $3 }' "$KAT/kat.txt")
    python3 -c 'import sys; n = int(sys.argv[1]); sys.stdout.buffer.write(bytes((i * 31 + 7) % 256 for i in range(n)))' "$len"
}
for f in "$tmp"/kat/*.dcms; do
    name=$(basename "$f" .dcms)
    check "$name records mechanism 2 (slot A byte 20)" [ "$(od -An -tu1 -j $((128 + 20)) -N1 "$f" | tr -d ' ')" = 2 ]
    if [ "$TOKEN_OAEP" = sha256 ]; then
        expect 0 "$name: decrypt in the token" "$DCMSEAL" decrypt "$f" -o "$tmp/$name.out"
        check "$name: the known plain text" cmp -s "$tmp/$name.out" <(plain "$name")
        # The DICOM-bound vector binds an identity to bytes that are not
        # DICOM: verify's identity check is not for it.
        [ "$name" = kat-3seg-dicom ] || expect 0 "$name: verify" "$DCMSEAL" verify "$f"
    else
        # The token cannot do SHA-256: a key error naming the mechanism, not
        # bad data and not an unavailable token.
        expect 69 "$name: decrypt on a token without SHA-256" "$DCMSEAL" decrypt "$f" -o "$tmp/$name.out"
        check "$name: says the token lacks RSA-OAEP-SHA256" grep -q "does not support RSA-OAEP-SHA256" "$tmp/err"
        check "$name: no output" [ ! -e "$tmp/$name.out" ]
    fi
done
expect 0 "inspect a format vector" "$DCMSEAL" inspect --json "$tmp/kat/kat-2seg-exact.dcms"
check "inspect: key kat v1, RSA-OAEP sha256" grep -q '"key":{"name":"kat","version":1,"oaep":"sha256"' "$tmp/out"

# Rotation: the token makes 'kat' v2; the vectors move to it and still open.
if [ "$TOKEN_OAEP" = sha256 ]; then
    expect 0 "key rotate kat" "$DCMSEAL" key rotate kat --bits 2048
    expect 0 "rewrap the format vectors" "$DCMSEAL" rewrap -r "$tmp/kat"
    for f in "$tmp"/kat/*.dcms; do
        name=$(basename "$f" .dcms)
        expect 0 "$name: decrypt after the rewrap" "$DCMSEAL" decrypt "$f" -o "$tmp/$name.v2"
        check "$name: still the known plain text" cmp -s "$tmp/$name.v2" <(plain "$name")
        check "$name: under v2, mechanism 2" bash -c '"$1" inspect --json "$2" | grep -q "\"name\":\"kat\",\"version\":2,\"oaep\":\"sha256\""' _ "$DCMSEAL" "$f"
    done
fi

finish
