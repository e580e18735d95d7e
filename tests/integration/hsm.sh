#!/usr/bin/env bash
# hsm-check and bench against a token made in a temporary directory
# (SoftHSM, or openCryptoki with DCMSEAL_TEST_TOKEN=opencryptoki): directly,
# through p11-kit's proxy module, and through the fault-injecting module (a
# refused key generation, tokens without in-token rewrap); and hsm-check's
# verdict on in-token rewrap held against what rewrap and bench then do.
#   hsm.sh DCMSEAL FAULTY_PKCS11_SO P11_KIT_PROXY_SO
DCMSEAL=$1
FAULTY=$2
PROXY=$3
NAME=hsm
. "$(dirname "$0")/lib.sh"

export DCMSEAL_RETRY_MAX=0
test_token "$tmp/hsm" hsm-test
pin=$tmp/hsm/pin
direct=$DCMSEAL_TOKEN

# Every object a logged-in user sees on the token, of any kind, so that a
# leftover that is no dcmseal KEK counts too. (A throwaway token: its PIN
# may go on this command line.)
objects() {
    pkcs11-tool --module "$TOKEN_MODULE" --token-label hsm-test --login --pin "$(cat "$pin")" \
        --list-objects 2>/dev/null | grep -c 'Object;\|^Data object'
}
# py EXPR: evaluates EXPR with d = the JSON in $tmp/out; fails on no JSON.
py() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($1) else 1)" "$tmp/out"; }
# line VERDICT ID [CKR [CLASS]]: the text report has that head line; CLASS
# is required, optional or - (information).
line() { grep -Eq "^($1) +($2) +(${4:-required|optional|-}) +(${3:-CKR_[A-Z0-9_]+|-})\$" "$tmp/out"; }

# said TEXT: the text report says TEXT, however its lines were wrapped.
said() { tr -s ' \n' '  ' < "$tmp/out" | grep -qF -- "$1"; }

# A key of the user's own that neither command may touch.
expect 0 "key create" "$DCMSEAL" key create kek --bits 2048
"$DCMSEAL" key list --json > "$tmp/keys.before"
before=$(objects)
# Its two halves, its origin key, the name's concealment key and its
# require-origin policy object.
check "the token holds the user's key ($before objects)" [ "$before" -eq 5 ]

# untouched WHAT: the user's key is as it was and nothing else is left.
untouched() {
    "$DCMSEAL" key list --json > "$tmp/keys.after"
    check "$1: key list unchanged" cmp -s "$tmp/keys.before" "$tmp/keys.after"
    check "$1: no object left on the token" [ "$(objects)" -eq "$before" ]
}

# ---- hsm-check -----------------------------------------------------------------
# hsm_check WHERE: the same verdicts, whichever module reaches the token.
hsm_check() {
    local where=$1
    expect 0 "$where: hsm-check" "$DCMSEAL" hsm-check
    cp "$tmp/out" "$tmp/check.txt"
    check "$where: names the token" grep -q "^dcmseal hsm-check: token 'hsm-test'" "$tmp/out"
    for id in keygen-rsa2048 keygen-rsa3072 oaep-sha1 oaep disabled-refused private-not-readable \
        private-not-wrappable private-attributes-locked public-half-locked origin-hmac sessions \
        cleanup; do
        check "$where: $id passes" line pass "$id"
    done
    check "$where: SHA-1 works" line pass oaep-sha1 CKR_OK
    if [ "$TOKEN_OAEP" = sha1 ]; then
        check "$where: SHA-256 refused with a CKR code" line fail oaep-sha256 'CKR_(ARGUMENTS_BAD|MECHANISM_PARAM_INVALID|MECHANISM_INVALID)'
        check "$where: says the fallback" said "falls back to RSA-OAEP SHA-1"
    else
        check "$where: SHA-256 works" line pass oaep-sha256 CKR_OK
        check "$where: says SHA-256" said "dcmseal wraps with RSA-OAEP SHA-256/MGF1-SHA256"
    fi
    check "$where: the mixed variant is information" line info oaep-sha256-mgf1-sha1
    if [ "$TOKEN_REWRAP" = in-token ]; then
        check "$where: in-token rewrap passes" line pass rewrap-in-token CKR_OK
    else
        check "$where: in-token rewrap refused, the host path named" line fail rewrap-in-token CKR_ATTRIBUTE_READ_ONLY optional &&
            said "refused (optional: \`rewrap\` moves each data key through host memory"
    fi
    check "$where: the disabled key is refused by the token" line pass disabled-refused CKR_KEY_FUNCTION_NOT_PERMITTED
    check "$where: the private exponent is sensitive" line pass private-not-readable CKR_ATTRIBUTE_SENSITIVE
    check "$where: origin proofs in the token, a wrong one refused" line pass origin-hmac CKR_OK required &&
        said "a wrong one refused (CKR_SIGNATURE_INVALID), its value unreadable (CKR_ATTRIBUTE_SENSITIVE)"
    if [ "$TOKEN_ORIGIN_MECHS" = pass ]; then
        check "$where: the origin key does HMAC-SHA256 only" line pass origin-mechanisms CKR_MECHANISM_INVALID optional
    else
        check "$where: the origin key's allowed mechanism not kept: optional, said" \
            line fail origin-mechanisms CKR_OK optional &&
            said "not kept; HMAC-SHA1 with the origin key: accepted"
    fi
    if [ "$TOKEN_IMPL" = softhsm ]; then
        check "$where: PKCS#1 v1.5 refused by the token" line pass allowed-mechanisms CKR_MECHANISM_INVALID
        check "$where: the public half cannot be changed" line pass public-half-locked CKR_ACTION_PROHIBITED
        check "$where: a 16-byte key is not unwrapped as a data key" line pass unwrap-length CKR_WRAPPED_KEY_INVALID
        check "$where: saying how" grep -q "C_UnwrapKey refuses CKA_VALUE_LEN (CKR_ATTRIBUTE_READ_ONLY)" "$tmp/out"
    else
        # openCryptoki 3.8.1 refuses CKA_ALLOWED_MECHANISMS at generation:
        # the key takes PKCS#1 v1.5, which the check must say.
        check "$where: allowed mechanisms not enforced, said" line fail allowed-mechanisms CKR_OK optional &&
            said "the key can serve as a padding oracle or sign"
        check "$where: the public half cannot be changed" line pass public-half-locked CKR_ATTRIBUTE_READ_ONLY
    fi
    check "$where: usable" grep -q '^usable: yes' "$tmp/out"
    check "$where: every check has a head line (verdict, class, code) and its detail below" \
        [ "$(grep -Evc '^(pass|fail|info) +[a-z0-9-]+ +(required|optional|-) +(CKR_[A-Z0-9_]+|-)$|^      +[^ ]' "$tmp/out")" -eq 2 ]
    check "$where: every line fits an 80-column terminal" [ "$(awk 'length > 80' "$tmp/out" | wc -l)" -eq 0 ]
    check "$where: what dcmseal needs is required" line pass keygen-rsa2048 CKR_OK required
    check "$where: what it does without is optional" line 'pass|fail' oaep-sha256 'CKR_[A-Z_]+' optional
    check "$where: facts are neither" line info oaep-sha256-mgf1-sha1 'CKR_[A-Z_]+' -
    # The optional checks that failed, as the verdict line names them.
    local optional_failed
    optional_failed=$(sed -n 's/^fail  \([a-z0-9-]*\) *optional .*/\1/p' "$tmp/out" | paste -sd, | sed 's/,/, /g')
    check "$where: usable, and the optional failures named as such (${optional_failed:-none})" \
        python3 -c 'import sys; t = open(sys.argv[1]).read(); u = " ".join(t[t.index("usable:"):].split()); o = sys.argv[2]
sys.exit(0 if u.startswith("usable: yes -- every required check passed") and (u.endswith("Optional checks that failed (dcmseal does without them, as their lines say): " + o) if o else u.endswith("every optional check passed too")) else 1)' "$tmp/out" "$optional_failed"

    expect 0 "$where: hsm-check --json" "$DCMSEAL" hsm-check --json
    check "$where: json parses, usable" py 'd["usable"] is True and d["token"] == "hsm-test"'
    check "$where: json sessions > 1" py '[c["count"] for c in d["checks"] if c["id"] == "sessions"][0] > 1'
    check "$where: json SHA-256 verdict ($TOKEN_OAEP)" \
        py '[c for c in d["checks"] if c["id"] == "oaep-sha256"][0]["ckr"].startswith("CKR_") and [c for c in d["checks"] if c["id"] == "oaep-sha256"][0]["verdict"] == ("pass" if "'$TOKEN_OAEP'" == "sha256" else "fail")'
    check "$where: json has the verdicts of the text run" python3 -c '
import json, re, sys
text = [tuple(l.split()[:2]) for l in open(sys.argv[1]) if re.match(r"(pass|fail|info) ", l)]
js = [(c["verdict"], c["id"]) for c in json.load(open(sys.argv[2]))["checks"]]
sys.exit(0 if text == js and len(js) >= 14 else 1)' "$tmp/check.txt" "$tmp/out"
    untouched "$where: after hsm-check"
}
hsm_check direct

# ---- failures: no token, wrong PIN, required checks failing ----------------------
expect 69 "hsm-check, no such token" "$DCMSEAL" hsm-check \
    --token "pkcs11:token=nosuch?module-path=$TOKEN_MODULE&pin-source=file:$pin"
check "no such token: one line" one_line_naming "no token labelled 'nosuch'"
(umask 077; echo 00000000 > "$tmp/badpin")
expect 69 "hsm-check, wrong PIN" "$DCMSEAL" hsm-check \
    --token "pkcs11:token=hsm-test?module-path=$TOKEN_MODULE&pin-source=file:$tmp/badpin"
check "wrong PIN: one line" one_line_naming "CKR_PIN_INCORRECT"
check "wrong PIN: no report" [ ! -s "$tmp/out" ]
expect 64 "hsm-check with an argument" "$DCMSEAL" hsm-check extra
expect 64 "bench with a bad session count" "$DCMSEAL" bench --sessions 1,0
expect 64 "bench --keep with --key" "$DCMSEAL" bench --key kek --keep

# Through the fault-injecting module: the token refuses the first key
# generation, so a required check fails (exit 69), and what the check made
# before and after is still destroyed.
export FAULTY_PKCS11_MODULE=$TOKEN_MODULE FAULTY_PKCS11_PLAN=$tmp/plan
faulty="pkcs11:token=hsm-test?module-path=$FAULTY&pin-source=file:$pin"
echo 'C_GenerateKeyPair CKR_DEVICE_MEMORY 1' > "$tmp/plan"
expect 69 "hsm-check, key generation refused" "$DCMSEAL" hsm-check --token "$faulty"
check "refused keygen: the line says so" line fail keygen-rsa2048 CKR_DEVICE_MEMORY
check "refused keygen: the others still ran" line pass keygen-rsa3072 CKR_OK
check "refused keygen: not usable, names it as required" grep -q '^usable: NO -- required checks failed: keygen-rsa2048' "$tmp/out"
check "refused keygen: cleanup passes" line pass cleanup CKR_OK
untouched "after the refused keygen"
# A token without in-token rewrap is still usable: dcmseal falls back.
echo 'C_UnwrapKey CKR_FUNCTION_NOT_SUPPORTED 1000' > "$tmp/plan"
expect 0 "hsm-check, no in-token rewrap" "$DCMSEAL" hsm-check --token "$faulty"
check "no in-token rewrap: fail, optional" line fail rewrap-in-token CKR_FUNCTION_NOT_SUPPORTED optional
check "no in-token rewrap: says the host fallback" said "optional: \`rewrap\` moves each data key through host memory"
check "no in-token rewrap: usable" grep -q '^usable: yes' "$tmp/out"
expect 0 "bench, no in-token rewrap" "$DCMSEAL" bench --token "$faulty" --objects 5 --sessions 1 --bits 2048 --json
check "bench: in-token rewrap n/a, host path measured" py 'd["in_token_rewrap"] is False and [r["objects_per_s"] for r in d["results"] if r["operation"] == "rewrap-in-token"] == [None] and [r for r in d["results"] if r["operation"] == "rewrap-host"][0]["objects_per_s"] > 0'
untouched "after the faulty bench"
rm -f "$tmp/plan"

# ---- bench -----------------------------------------------------------------------
# The rows of the path the token takes have numbers; where it refuses
# in-token rewrap, that row says n/a and why.
rows_ok() { # objects/s and ratio > 0, p99 >= p50 >= 0
    local n=0 s op
    for s in 1 2; do
        for op in 'unwrap (C_Decrypt)' 'rewrap in token' 'rewrap via host' 'wrap new DEK' \
            'origin proof (Sign)' 'proof check (Verify)' 'unwrap + check' 'rewrap + proofs'; do
            if [ "$op" = 'rewrap in token' ] && [ "$TOKEN_REWRAP" = host ]; then
                grep -q "^$(printf '%8d  %-20s' "$s" "$op") *n/a   (refused: C_UnwrapKey: CKR_ATTRIBUTE_READ_ONLY; rewrap goes via host)" "$tmp/out" &&
                    n=$((n + 1))
                continue
            fi
            awk -v s="$s" -v op="$op" '
                index($0, sprintf("%8d  %-20s ", s, op)) == 1 { n = split($0, f, / +/);
                    if (f[n-3] > 0 && f[n-2] >= 0 && f[n-1] >= f[n-2] && f[n] > 0) ok = 1 }
                END { exit !ok }' "$tmp/out" && n=$((n + 1))
        done
    done
    [ "$n" -eq 16 ]
}
expect 0 "bench" "$DCMSEAL" bench --objects 20 --sessions 1,2 --bits 2048
check "bench: header names the scratch key" grep -q "scratch key 'dcmseal-bench-[0-9a-f]*' v1 -> v2, RSA-2048, RSA-OAEP $TOKEN_OAEP" "$tmp/out"
check "bench: 14 rows, numbers > 0" rows_ok
untouched "after bench"
expect 0 "bench --json" "$DCMSEAL" bench --objects 20 --sessions 1,2 --bits 2048 --json
in_token=$([ "$TOKEN_REWRAP" = in-token ] && echo True || echo False)
check "bench json: 16 results, numbers > 0 but a refused path's" py 'len(d["results"]) == 16 and all((r["objects_per_s"] is None) if r["operation"] == "rewrap-in-token" and not '$in_token' else (r["objects_per_s"] > 0 and r["p50_ms"] > 0 and r["p99_ms"] >= r["p50_ms"] and r["ratio_to_unwrap"] > 0) for r in d["results"])'
check "bench json: both session counts, every operation" py 'sorted((r["sessions"], r["operation"]) for r in d["results"]) == sorted((s, o) for s in (1, 2) for o in ("unwrap", "rewrap-in-token", "rewrap-host", "wrap", "prove", "check", "unwrap+check", "rewrap+proofs"))'
check "bench json: the origin proof is measured" py 'all(r["objects_per_s"] > 0 for r in d["results"] if r["operation"] in ("prove", "check", "unwrap+check"))'
check "bench json: the path the token takes ($TOKEN_REWRAP), and why" py 'd["in_token_rewrap"] is '$in_token' and (d["rewrap_refusal"] is None) == '$in_token' and d["scratch"] is True and d["kept"] is False'
untouched "after bench --json"
expect 0 "bench --key (an existing key, read only)" "$DCMSEAL" bench --key kek --objects 5 --sessions 1 --json
check "bench --key: uses it" py 'd["key"] == "kek" and d["scratch"] is False and len(d["results"]) == 8'
untouched "after bench --key"
expect 0 "bench --keep" "$DCMSEAL" bench --objects 5 --sessions 1 --bits 2048 --keep
kept=$(sed -n "s/.*kept scratch key '\([^']*\)'.*/\1/p" "$tmp/err")
check "bench --keep: says which key" [ -n "$kept" ]
expect 0 "key list after --keep" "$DCMSEAL" key list
check "bench --keep: v1 and v2 stay" [ "$(grep -c "^$kept " "$tmp/out")" -eq 2 ]
for v in 1 2; do expect 0 "disable kept v$v" "$DCMSEAL" key disable "$kept" $v; done
for v in 1 2; do expect 0 "destroy kept v$v" "$DCMSEAL" key destroy "$kept" $v --no-archive-check; done
untouched "after removing the kept key"

# ---- through p11-kit's proxy module ------------------------------------------------
# The module comes from p11-kit's configuration: a user config under a
# temporary HOME names it. p11-kit 0.24 reads no user config for root;
# there Debian's softhsm2 package registers SoftHSM system-wide instead, and
# openCryptoki, which Debian does not register, is registered in its
# private mount namespace (a directory of our own on the system one).
mkdir -p "$tmp/home/.config/pkcs11/modules"
echo "module: $TOKEN_MODULE" > "$tmp/home/.config/pkcs11/modules/token.module"
export HOME=$tmp/home
if [ "$TOKEN_IMPL" = opencryptoki ]; then
    mount --bind "$tmp/home/.config/pkcs11/modules" /usr/share/p11-kit/modules ||
        fail "registering openCryptoki in the namespace"
elif [ "$(id -u)" -eq 0 ]; then
    echo "proxy: running as root, SoftHSM registered by the system config"
fi
manufacturer=$([ "$TOKEN_IMPL" = opencryptoki ] && echo IBM || echo SoftHSM)
check "p11-kit registers $TOKEN_IMPL" bash -c 'p11-kit list-modules 2>/dev/null | grep -q "library-manufacturer: $1"' _ "$manufacturer"
export DCMSEAL_TOKEN="pkcs11:token=hsm-test?module-path=$PROXY&pin-source=file:$pin"
hsm_check proxy
expect 0 "proxy: bench" "$DCMSEAL" bench --objects 10 --sessions 1,2 --bits 2048
check "proxy: bench rows" rows_ok
untouched "proxy: after bench"
export DCMSEAL_TOKEN=$direct

# ---- hsm-check's verdict on in-token rewrap is what rewrap does -------------------
# verdict_then_rewrap WHAT TOKEN_URI: hsm-check on the token, then a rewrap of
# an object there; the check's verdict must match the path rewrap takes and
# says, and bench's.
n_obj=0
verdict_then_rewrap() {
    local what=$1 uri=$2 verdict required
    expect 0 "$what: hsm-check --json" "$DCMSEAL" hsm-check --token "$uri" --json
    verdict=$(python3 -c 'import json,sys; c=[c for c in json.load(open(sys.argv[1]))["checks"] if c["id"] == "rewrap-in-token"][0]; print(c["verdict"], c["required"])' "$tmp/out")
    n_obj=$((n_obj + 1))
    echo "verdict $n_obj" > "$tmp/v$n_obj"
    "$DCMSEAL" encrypt --token "$uri" --key verdict --force "$tmp/v$n_obj" -o "$tmp/v$n_obj.dcms" 2>/dev/null
    "$DCMSEAL" key rotate --token "$uri" verdict >/dev/null
    expect 0 "$what: rewrap" "$DCMSEAL" rewrap --token "$uri" "$tmp/v$n_obj.dcms"
    case $verdict in
    "pass False")
        check "$what: pass, and rewrap stays in the token, says nothing" [ ! -s "$tmp/err" ] ;;
    "fail False")
        check "$what: optional fail, and rewrap says the host path once" \
            [ "$(grep -c "through host memory (the token refused in-token rewrap: C_" "$tmp/err")" -eq 1 ] ;;
    *) fail "$what: rewrap-in-token verdict '$verdict' on a token that rewraps" ;;
    esac
    expect 0 "$what: bench" "$DCMSEAL" bench --token "$uri" --key verdict --objects 3 --sessions 1 --json
    check "$what: bench's path is the verdict's" py 'd["in_token_rewrap"] == ("'"$verdict"'" == "pass False")'
}
"$DCMSEAL" key create verdict --bits 2048 >/dev/null || fail "key create verdict"
verdict_then_rewrap "$TOKEN_IMPL" "$direct"
# A token that rewraps inside, through the fault module: a refused unwrap
# template (what openCryptoki answers), a refused C_WrapKey, a token that
# leaves the unwrapped key readable; each a fallback, decided at the first
# object. (openCryptoki refuses before any of these would show.)
faults=()
[ "$TOKEN_REWRAP" = in-token ] && faults=('C_UnwrapKey CKR_ATTRIBUTE_READ_ONLY 1'
    'C_WrapKey CKR_KEY_UNEXTRACTABLE 1' 'C_UnwrapKey SENSITIVE_IGNORED 1')
for fault in "${faults[@]}"; do
    # Each process counts the plan's calls afresh: every command meets the
    # fault at its first call.
    echo "$fault" > "$tmp/plan"
    verdict_then_rewrap "$fault" "$faulty"
done
# An answer that stops rewrap makes the check required, and the token unusable.
echo 'C_UnwrapKey CKR_DEVICE_ERROR 100000' > "$tmp/plan"
expect 69 "in-token rewrap failing: hsm-check" "$DCMSEAL" hsm-check --token "$faulty"
check "in-token rewrap failing: required" grep -q '^usable: NO .*rewrap-in-token' "$tmp/out"
"$DCMSEAL" key rotate --token "$direct" verdict >/dev/null
expect 69 "in-token rewrap failing: rewrap stops" "$DCMSEAL" rewrap --token "$faulty" "$tmp/v1.dcms"
check "in-token rewrap failing: as the token, not a fallback" grep -q "CKR_DEVICE_ERROR" "$tmp/err"
rm -f "$tmp/plan"

finish
