#!/usr/bin/env bash
# A key outage, as a network HSM has them: the p11-kit server that exports
# the token stops (with the connections it serves) and starts again later.
# Meanwhile uploads fail (REST: 500; C-STORE: a failure status) and leave
# nothing behind, in the storage or in the index; reads of instances that no
# cache holds fail with 500; the log says so once. Once the token answers
# again, the same Orthanc serves both, without a restart.
#   orthanc_outage.sh DCMSEAL PLUGIN CORPUS
DCMSEAL=$1
PLUGIN=$2
CORPUS=$3
NAME=orthanc-outage
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/orthanc_lib.sh"

# Each failing token call gives up after the library's retries (pkcs11.h):
# fewer of them keep the outage short.
export DCMSEAL_RETRY_MAX=2
net_token "$tmp/hsm" orthanc-outage
expect 0 "key create" "$DCMSEAL" key create kek --bits 2048
# DICOM files only, each a different instance: before the outage, during
# it (refused) and after it.
mapfile -t all < <(for f in "$CORPUS"/dwv/*.dcm; do
    dcmdump -q -s +P 0008,0018 "$f" 2>/dev/null | head -1 | sed "s|^|$f |"
done | sort -u -k4,4 | cut -d' ' -f1 | sort)
before=("${all[@]:0:8}")
during_rest=${all[8]}
during_cstore=${all[9]}

# Cached DEKs live one second: the instances stored before the outage are
# in no cache by the time it starts.
check "Orthanc with the plugin starts" orthanc_start o "$(section '"DekCacheMaxAge": 1')"
$CLIENT upload "$(url o)" "$tmp/before.json" "${before[@]}" > "$tmp/out"
check "uploads before the outage" [ "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$tmp/before.json")" -eq 8 ]
sleep 2.5
check "no DEK is cached any more" status o 'd["dek_cache"]["entries"] == 0'
files_before=$(count_files "$tmp/o/storage")
instances_before=$(curl -sf "$(url o)/instances" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')

# ---- the outage --------------------------------------------------------------
phase "the outage"
hsm_stop
check "REST upload during the outage: 500" $CLIENT expect "$(url o)" POST /instances 500 "$during_rest"
storescu -v -aet DCMSEALSCU -aec ORTHANC 127.0.0.1 "$(dicom_port o)" "$during_cstore" > "$tmp/storescu.log" 2>&1
check "C-STORE during the outage: a failure status" \
    grep -Eq "Received Store Response \((Failed|Refused|Error|Out of Resources)" "$tmp/storescu.log"
check "nothing was stored, not even in part" [ "$(count_files "$tmp/o/storage")" -eq "$files_before" ]
check "the index lists nothing new" [ "$(curl -sf "$(url o)/instances" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" -eq "$instances_before" ]
for uid_file in "$during_rest" "$during_cstore"; do
    uid=$(dcmdump -q -s +P 0008,0018 "$uid_file" | sed 's/.*\[\(.*\)\].*/\1/')
    check "the index does not know $(basename "$uid_file")" \
        [ "$(curl -sf -X POST --data "$uid" "$(url o)/tools/lookup")" = "[]" ]
done
python3 -c 'import json,sys; [print(i) for i in json.load(open(sys.argv[1]))]' "$tmp/before.json" > "$tmp/ids"
reads_failed=0
t0=$(date +%s.%N)
while read -r id; do
    $CLIENT expect "$(url o)" GET "/instances/$id/file" 500 > /dev/null && reads_failed=$((reads_failed + 1))
done < "$tmp/ids"
echo "8 failing reads took $(echo "$(date +%s.%N) - $t0" | bc) s"
check "every read during the outage: 500 ($reads_failed of 8)" [ "$reads_failed" -eq 8 ]
check "status shows the outage" status o 'd["outage"]["active"] and d["outage"]["count"] == 1'
check "the log says it once, not per request" \
    [ "$(grep -c "dcmseal: token 'orthanc-outage' is unavailable" "$tmp/o/log")" -eq 1 ]
check "the log names the cause" grep -q "is unavailable (.*CKR_" "$tmp/o/log"
check "no per-request token error in the log" not grep -q "cannot store attachment\|cannot read attachment" "$tmp/o/log"

# ---- recovery: the same process, no operator action --------------------------
phase "recovery: the same process, no operator action"
hsm_start
check "REST upload after the outage" $CLIENT expect "$(url o)" POST /instances 200 "$during_rest"
storescu -v -aet DCMSEALSCU -aec ORTHANC 127.0.0.1 "$(dicom_port o)" "$during_cstore" > "$tmp/storescu2.log" 2>&1
check "C-STORE after the outage: success" grep -q "Received Store Response (Success)" "$tmp/storescu2.log"
check "reads after the outage: byte for byte" $CLIENT files "$(url o)" "$tmp/before.json"
check "the log says the token is back, once" \
    [ "$(grep -c "dcmseal: token 'orthanc-outage' answers again" "$tmp/o/log")" -eq 1 ]
check "status: over" status o 'not d["outage"]["active"]'
check "the Orthanc process is the same one" kill -0 "$(cat "$tmp/o/pid")"
check "nothing plain in the storage" all_sealed "$tmp/o/storage"
expect 0 "verify -r accepts the storage directory" "$DCMSEAL" verify -r -q "$tmp/o/storage"

# ---- a second outage is logged again -----------------------------------------
phase "a second outage is logged again"
hsm_stop
check "a read in the second outage fails" $CLIENT expect "$(url o)" GET "/instances/$(head -1 "$tmp/ids")/file" 500
hsm_start
check "and succeeds after it" $CLIENT expect "$(url o)" GET "/instances/$(head -1 "$tmp/ids")/file" 200
check "two outages, two lines each way" \
    [ "$(grep -c "is unavailable" "$tmp/o/log")" -eq 2 ] && [ "$(grep -c "answers again" "$tmp/o/log")" -eq 2 ]
orthanc_stop o
finish
