#!/usr/bin/env bash
# The plugin while the dcmseal command works on the same storage directory:
#  - `key rotate`: new files move to the new KEK version within KeyRefresh,
#    without a restart;
#  - `rewrap -r`, again and again, under a load of uploads and reads: no
#    request fails, and everything reads back identical afterwards;
#  - migration: a plain Orthanc's storage directory served by the plugin
#    (ServePlainFiles) while `encrypt --in-place -r` runs under load;
#  - SIGKILL of Orthanc during uploads: every object is whole or absent.
#   orthanc_live.sh DCMSEAL PLUGIN CORPUS
DCMSEAL=$1
PLUGIN=$2
CORPUS=$3
NAME=orthanc-live
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/orthanc_lib.sh"

net_token "$tmp/hsm" orthanc-live
expect 0 "key create" "$DCMSEAL" key create kek --bits 2048
export DCMSEAL_KEY=kek
fresh_copies "$tmp/seed" 40
fresh_copies "$tmp/fresh1" 100
fresh_copies "$tmp/fresh2" 100
for round in 1 2 3; do fresh_copies "$tmp/fresh3/$round" 60; done
count() { python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$1"; }

# ---- rotation: new files move to the new version -----------------------------
phase "rotation: new files move to the new version"
check "Orthanc with the plugin starts" orthanc_start live "$(section '"KeyRefresh": 1')"
$CLIENT upload "$(url live)" "$tmp/seed.json" "$tmp"/seed/*.dcm > "$tmp/out"
check "seeded ($(count "$tmp/seed.json") instances)" [ "$(count "$tmp/seed.json")" -eq 40 ]
check "all under v1" [ "$(kek_versions "$tmp/live/storage")" = "v1 $(count "$tmp/seed.json")" ]
expect 0 "key rotate" "$DCMSEAL" key rotate kek
sleep 1.5
one=$(ls "$tmp"/fresh1/*.dcm | head -1)
$CLIENT upload "$(url live)" "$tmp/one.json" "$one" > "$tmp/out"
id=$(python3 -c 'import json,sys; print(list(json.load(open(sys.argv[1])))[0])' "$tmp/one.json")
check "a file stored after KeyRefresh is under v2" \
    bash -c "'$DCMSEAL' verify '$(file_of live "$id")' | grep -q \"key 'kek' v2\""
check "the log says so" grep -q "new files are now wrapped under key 'kek' v2 (was v1)" "$tmp/live/log"
orthanc_stop live

# ---- rewrap -r under load ----------------------------------------------------
phase "rewrap -r under load"
# Uploads of new instances and reads of the seeded ones, while rewrap -r
# moves every object between v1 and v2 and back, as fast as it can.
check "Orthanc restarts" orthanc_start live "$(section '"KeyRefresh": 1, "DekCacheMaxAge": 1')"
$CLIENT load "$(url live)" "$tmp/seed.json" 10 4 "$tmp/fresh1" "$tmp/made1.json" > "$tmp/load.log" 2>&1 &
load=$!
rewraps=0 rewrap_failed=0
while kill -0 "$load" 2>/dev/null; do
    for v in 1 2; do
        "$DCMSEAL" rewrap -r -q --to-version "$v" "$tmp/live/storage" > /dev/null 2>> "$tmp/rewrap.log" ||
            rewrap_failed=$((rewrap_failed + 1))
        rewraps=$((rewraps + 1))
    done
done
wait "$load"
load_rc=$?
cat "$tmp/load.log"
check "no request failed while rewrap -r ran $rewraps times" [ "$load_rc" -eq 0 ]
check "rewrap -r itself did not fail ($rewrap_failed)" [ "$rewrap_failed" -eq 0 ]
check "rewrap ran repeatedly during the load" [ "$rewraps" -ge 4 ]
expect 0 "a last rewrap -r to the primary" "$DCMSEAL" rewrap -r -q "$tmp/live/storage"
n=$(count_files "$tmp/live/storage")
check "every object is under v2 and authenticates ($n)" [ "$(kek_versions "$tmp/live/storage")" = "v2 $n" ]
check "... one per instance" [ "$n" -eq "$(curl -sf "$(url live)/instances" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" ]
check "the seeded instances read back identical" $CLIENT files "$(url live)" "$tmp/seed.json"
check "those uploaded under load too" $CLIENT files "$(url live)" "$tmp/made1.json"
check "nothing plain in the storage" all_sealed "$tmp/live/storage"
orthanc_stop live

# ---- migration: a plain Orthanc's storage, encrypted while served ------------
phase "migration: a plain Orthanc's storage, encrypted while served"
check "a plain Orthanc starts" orthanc_start mig
$CLIENT upload "$(url mig)" "$tmp/mig.json" "$tmp"/seed/*.dcm > "$tmp/out"
orthanc_stop mig
plain=$(count_files "$tmp/mig/storage")
check "its storage is plain DICOM ($plain files)" not all_sealed "$tmp/mig/storage"
# The plugin, refusing plain files by default, on the same folders.
check "Orthanc with the plugin on the plain storage" orthanc_start mig "$(section)"
check "plain files are refused by default" $CLIENT expect "$(url mig)" GET \
    "/instances/$(python3 -c 'import json,sys; print(list(json.load(open(sys.argv[1])))[0])' "$tmp/mig.json")/file" 500
orthanc_stop mig
check "... and served while migrating" orthanc_start mig "$(section '"ServePlainFiles": true')"
check "every plain instance is served" $CLIENT files "$(url mig)" "$tmp/mig.json"
$CLIENT load "$(url mig)" "$tmp/mig.json" 8 4 "$tmp/fresh2" "$tmp/made2.json" > "$tmp/load2.log" 2>&1 &
load=$!
sleep 1
expect 0 "encrypt --in-place -r while Orthanc serves" "$DCMSEAL" encrypt --in-place -r -q "$tmp/mig/storage"
wait "$load"
load_rc=$?
cat "$tmp/load2.log"
check "no request failed during the migration" [ "$load_rc" -eq 0 ]
check "afterwards everything is sealed" all_sealed "$tmp/mig/storage"
expect 0 "verify -r accepts it" "$DCMSEAL" verify -r -q "$tmp/mig/storage"
check "plain files were served on the way" status mig 'd["attachments"]["plain_read"] > 0'
orthanc_stop mig
check "with plain files refused again" orthanc_start mig "$(section)"
check "everything old is served" $CLIENT files "$(url mig)" "$tmp/mig.json"
check "and everything new" $CLIENT files "$(url mig)" "$tmp/made2.json"
orthanc_stop mig

# ---- SIGKILL during uploads --------------------------------------------------
phase "SIGKILL during uploads"
# Each kill leaves objects that are whole or absent, never torn or
# half-named; a restarted Orthanc reads every instance its index lists.
for round in 1 2 3; do
    check "round $round: Orthanc starts" orthanc_start kill "$(section)"
    [ "$round" -eq 1 ] && $CLIENT upload "$(url kill)" "$tmp/kseed.json" "$tmp"/seed/*.dcm > "$tmp/out"
    before=$(count_files "$tmp/kill/storage")
    $CLIENT load "$(url kill)" "$tmp/kseed.json" 30 4 "$tmp/fresh3/$round" "$tmp/made3.json" \
        > /dev/null 2>&1 &
    load=$!
    # Killed once uploads are flowing: a few new objects are in.
    for _ in $(seq 300); do
        [ "$(count_files "$tmp/kill/storage")" -ge $((before + 3 * round)) ] && break
        sleep 0.05
    done
    orthanc_stop kill KILL
    kill "$load"
    wait "$load"
    check "round $round: every object under the storage authenticates" \
        "$DCMSEAL" verify -r -q "$tmp/kill/storage"
    check "round $round: no temporary file left" \
        [ "$(find "$tmp/kill/storage" -name '.*' -type f | wc -l)" -eq 0 ]
    check "round $round: Orthanc comes back" orthanc_start kill "$(section)"
    check "round $round: every indexed instance reads back" $CLIENT index "$(url kill)"
    orthanc_stop kill
done
check "the kills came during uploads: not all fresh instances got in" \
    [ "$(count_files "$tmp/kill/storage")" -lt $((40 + 3 * 60)) ]

finish
