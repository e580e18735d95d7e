#!/usr/bin/env bash
# Soft delete and purge protection, against a SoftHSM token made in a
# temporary directory: key disable records when (in the token), a name's
# retention holds key destroy back until it has passed (a month later is
# faketime's), purge protection keeps it from shrinking (and the token
# itself refuses to remove it), key destroy wants --archive or
# --no-archive-check, and on a terminal the key name typed.
#   retention.sh DCMSEAL CORPUS_DIR
DCMSEAL=$1
CORPUS=$2
NAME=retention
. "$(dirname "$0")/lib.sh"
on_a_terminal=$here/../support/on_a_terminal.py

softhsm_token "$tmp/hsm" retention-test
pin=$tmp/hsm/pin
# The token's data objects of one dcmseal application, as pkcs11-tool sees them.
data_objects() {
    pkcs11-tool --module "$SOFTHSM_MODULE" --token-label retention-test --login --pin "$(cat "$pin")" \
        --list-objects --type data 2>/dev/null | grep -c "application: *'$1'"
}
# json EXPR: EXPR on k = the versions of key list --json, by version.
json() {
    "$DCMSEAL" key list kek --json > "$tmp/list.json" &&
        python3 -c "import json,sys; k = {v['version']: v for v in json.load(open(sys.argv[1]))}; sys.exit(0 if ($1) else 1)" "$tmp/list.json"
}
# later DAYS CMD...: CMD with the clock DAYS days ahead (libfaketime). Under
# a sanitizer build its runtime has to come first among the preloads.
faketime_lib=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -1)
asan_lib=$(ldd "$DCMSEAL" | sed -n 's/^\t*libasan\.so[^ ]* => \([^ ]*\) .*/\1/p')
check "libfaketime is there ($faketime_lib)" [ -n "$faketime_lib" ]
later() { env LD_PRELOAD="${asan_lib:+$asan_lib:}$faketime_lib" FAKETIME="+$1d" "${@:2}"; }

expect 0 "key create" "$DCMSEAL" key create kek --bits 2048
for v in 2 3 4; do expect 0 "rotate to v$v" "$DCMSEAL" key rotate kek; done
check "no retention, nothing disabled" json 'k[1]["retention_days"] == 0 and k[1]["disabled_at"] is None'

# ---- key disable records when, in the token ----------------------------------
expect 0 "disable v1" "$DCMSEAL" key disable kek 1
check "key list --json: disabled just now" \
    json "__import__('datetime').datetime.strptime(k[1]['disabled_at'], '%Y-%m-%dT%H:%M:%SZ').timestamp() > $(date +%s) - 600"
check "key list: the date in the DISABLED column" \
    bash -c '"$1" key list kek | grep -Eq "^kek +v1 +RSA-2048 +disabled +- +$(date -u +%Y-%m-%d) "' _ "$DCMSEAL"
check "recorded in the token (pkcs11-tool sees it)" [ "$(data_objects dcmseal-kek-disabled)" -eq 1 ]
first=$(python3 -c "import json,sys; print([v for v in json.load(open(sys.argv[1])) if v['version'] == 1][0]['disabled_at'])" "$tmp/list.json")
later 3 "$DCMSEAL" key disable kek 1 > /dev/null
check "disabling again keeps the first time" json "k[1]['disabled_at'] == '$first'"
expect 0 "enable v1" "$DCMSEAL" key enable kek 1
check "enable removes the record" [ "$(data_objects dcmseal-kek-disabled)" -eq 0 ]
check "key list: enabled, no date" json 'k[1]["disabled_at"] is None and k[1]["state"] == "enabled"'
expect 0 "disable v1 again" "$DCMSEAL" key disable kek 1

# ---- key destroy needs --archive or --no-archive-check ------------------------
expect 64 "destroy with neither --archive nor --no-archive-check" "$DCMSEAL" key destroy kek 1
check "says what to give" one_line_naming "give --archive DIR for every place that may hold objects under 'kek' v1, or --no-archive-check"
expect 64 "destroy with both" "$DCMSEAL" key destroy kek 1 --archive "$tmp" --no-archive-check
check "the key is still there" json '1 in k'

# ---- retention ------------------------------------------------------------------
expect 0 "key policy: none yet" "$DCMSEAL" key policy kek
check "key policy says so" grep -q "no minimum decryption version, no retention" "$tmp/out"
expect 0 "retention 30 days" "$DCMSEAL" key policy kek --retention 30
check "key policy shows it" grep -q "key 'kek' on token 'retention-test': retention 30 days$" "$tmp/out"
check "key list shows it under the table" bash -c '"$1" key list | grep -qx "kek: retention 30 days"' _ "$DCMSEAL"
check "key list --json: on every version" json 'all(v["retention_days"] == 30 for v in k.values())'
check "kept in the token" [ "$(data_objects dcmseal-kek-retention)" -eq 1 ]
expect 64 "destroy right after disable" "$DCMSEAL" key destroy kek 1 --no-archive-check
check "says until when" grep -q "key 'kek' v1 is within its retention of 30 days: disabled since .* UTC, it may be destroyed from $(date -u -d '+30 days' +%Y-%m-%d)" "$tmp/err"
expect 64 "destroy 29 days later" later 29 "$DCMSEAL" key destroy kek 1 --no-archive-check
check "v1 is still there" json '1 in k'
expect 0 "destroy 31 days later" later 31 "$DCMSEAL" key destroy kek 1 --no-archive-check
check "v1 is gone, and its record" json '1 not in k and 2 in k' && [ "$(data_objects dcmseal-kek-disabled)" -eq 0 ]
expect 64 "destroy an enabled version, a month later" later 31 "$DCMSEAL" key destroy kek 2 --no-archive-check
# A version disabled without a record (an older dcmseal, a lost record):
# the retention cannot be counted, so destroy waits for a new disable.
expect 0 "disable v2" "$DCMSEAL" key disable kek 2
pkcs11-tool --module "$SOFTHSM_MODULE" --token-label retention-test --login --pin "$(cat "$pin")" \
    --delete-object --type data --application-label dcmseal-kek-disabled >/dev/null 2>&1
check "its record removed behind dcmseal's back" [ "$(data_objects dcmseal-kek-disabled)" -eq 0 ]
expect 64 "destroy without a record, a year later" later 365 "$DCMSEAL" key destroy kek 2 --no-archive-check
check "says it is not recorded, and how to record it" grep -q "when it was disabled is not recorded .* 'key disable kek 2' records it now" "$tmp/err"
expect 0 "disable v2 again: recorded now" "$DCMSEAL" key disable kek 2
expect 64 "and the retention counts from now" later 29 "$DCMSEAL" key destroy kek 2 --no-archive-check

# ---- purge protection ---------------------------------------------------------------
expect 0 "shorten to 10 days (no protection yet)" "$DCMSEAL" key policy kek --retention 10
expect 64 "purge protection without a retention" "$DCMSEAL" key policy kek --retention 0 --purge-protection
expect 0 "purge protection" "$DCMSEAL" key policy kek --purge-protection
check "key policy: 10 days, protected by the token" grep -q "retention 10 days, purge protection (the token refuses to remove it)" "$tmp/out"
check "key list --json: protected" json 'k[3]["purge_protection"] is True and k[3]["purge_locked"] is True and k[3]["retention_days"] == 10'
expect 64 "shorten under purge protection" "$DCMSEAL" key policy kek --retention 5
check "says why" one_line_naming "key 'kek' has purge protection: its retention of 10 days cannot be shortened, nor removed"
expect 64 "remove under purge protection" "$DCMSEAL" key policy kek --retention 0
expect 0 "lengthen under purge protection" "$DCMSEAL" key policy kek --retention 20
check "20 days now" json 'k[3]["retention_days"] == 20'
# Not even pkcs11-tool, with the PIN, can take it away.
pkcs11-tool --module "$SOFTHSM_MODULE" --token-label retention-test --login --pin "$(cat "$pin")" \
    --delete-object --type data --application-label dcmseal-kek-retention > "$tmp/p11" 2>&1
check "pkcs11-tool cannot destroy the retention object" grep -q "C_DestroyObject() failed" "$tmp/p11"
check "still protected, still 20 days" json 'k[3]["purge_protection"] is True and k[3]["retention_days"] == 20'
expect 64 "destroy v2 after 15 days" later 15 "$DCMSEAL" key destroy kek 2 --no-archive-check
check "names purge protection" grep -q "purge protection: the retention cannot be shortened" "$tmp/err"

# ---- on a terminal, the key name is typed -----------------------------------------------
expect 0 "disable v3" "$DCMSEAL" key disable kek 3
later_cmd=(env LD_PRELOAD="${asan_lib:+$asan_lib:}$faketime_lib" FAKETIME=+21d)
expect 64 "a wrong name typed" "$on_a_terminal" "Type the key name" "kex" \
    "${later_cmd[@]}" "$DCMSEAL" key destroy kek 3 --no-archive-check
check "the prompt names key, version and token" grep -q "key 'kek' v3 on token 'retention-test' will be destroyed for good" "$tmp/out"
check "not destroyed, and says so" grep -q "kek: not destroyed: the name typed was not 'kek'" "$tmp/out"
check "v3 is still there" json '3 in k'
expect 0 "the right name typed" "$on_a_terminal" "Type the key name" "kek" \
    "${later_cmd[@]}" "$DCMSEAL" key destroy kek 3 --no-archive-check
check "destroyed" grep -q "key 'kek' v3 destroyed on token 'retention-test'" "$tmp/out"
check "v3 is gone" json '3 not in k'
# The archive check still comes first, also on a terminal.
mkdir -p "$tmp/archive"
expect 0 "disable v2 for good" "$DCMSEAL" key disable kek 2
expect 0 "an object under v4" "$DCMSEAL" encrypt --key kek "$0" -o "$tmp/archive/x.dcms"
expect 0 "rotate to v5" "$DCMSEAL" key rotate kek
expect 0 "disable v4" "$DCMSEAL" key disable kek 4
expect 64 "destroy v4 while an object needs it" "$on_a_terminal" "Type the key name" "kek" \
    "${later_cmd[@]}" "$DCMSEAL" key destroy kek 4 --archive "$tmp/archive"
check "refused before any prompt" not grep -q "Type the key name" "$tmp/out"
check "counts the object" grep -q "1 object under $tmp/archive still depends on it" "$tmp/out"

finish
