#!/usr/bin/env bash
# The Orthanc plugin against a plain Orthanc given the same files: the
# corpus through REST and C-STORE, read back through REST (file, tags, a
# rendered frame), DICOMweb WADO-RS and C-GET, byte for byte. The token is
# reached as a network HSM: p11-kit server exports SoftHSM on a Unix socket
# and the plugin loads p11-kit's client module. Also: nothing plain under
# the storage directory, verify -r accepts it, deletes remove files, plain
# files are refused unless migration is on, bad configurations stop
# Orthanc, and the DEK cache keeps repeated reads off the token.
#   orthanc_store.sh DCMSEAL PLUGIN CORPUS
DCMSEAL=$1
PLUGIN=$2
CORPUS=$3
NAME=orthanc-store
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/orthanc_lib.sh"

net_token "$tmp/hsm" orthanc-store
expect 0 "key create" "$DCMSEAL" key create kek --bits 2048
mapfile -t files < <(find "$CORPUS" -type f | sort)

# ---- the corpus through REST -------------------------------------------------
phase "the corpus through REST"
# Several corpus files are one instance in other transfer syntaxes: both
# servers keep the last one.
check "plain Orthanc starts" orthanc_start plain "" '"OverwriteInstances": true'
check "Orthanc with the plugin starts" orthanc_start sealed "$(section)" '"OverwriteInstances": true'
check "the plugin says where and how it seals" grep -q "dcmseal: storage $tmp/sealed/storage sealed with key 'kek' v1" "$tmp/sealed/log"
$CLIENT upload "$(url plain)" "$tmp/plain.json" "${files[@]}" > "$tmp/out"
$CLIENT upload "$(url sealed)" "$tmp/sealed.json" "${files[@]}" >> "$tmp/out"
check "both accept the same files" cmp -s "$tmp/plain.json" "$tmp/sealed.json"
check "the plugin is loaded" $CLIENT expect "$(url sealed)" GET /plugins/dcmseal 200
check "REST: every read matches plain Orthanc and the originals" \
    $CLIENT compare "$(url sealed)" "$(url plain)" "$tmp/sealed.json"
check "tags were read through range reads" status sealed 'd["attachments"]["read_range"] > 0'
check "nothing under the storage directory is plain" all_sealed "$tmp/sealed/storage"
expect 0 "verify -r accepts the storage directory" "$DCMSEAL" verify -r -q "$tmp/sealed/storage"
stored=$(count_files "$tmp/sealed/storage")

# ---- the same corpus through C-STORE, which overwrites each instance ---------
phase "the same corpus through C-STORE, which overwrites each instance"
n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$tmp/sealed.json")
stored_before=$(stat_of sealed '["attachments"]["stored"]')
# storescu cannot send some corpus files (transfer syntaxes it does not
# convert); both servers get the same ones.
for name in sealed plain; do
    storescu -v -aet DCMSEALSCU -aec ORTHANC +sd +r -nh 127.0.0.1 "$(dicom_port $name)" \
        "$CORPUS" > "$tmp/storescu-$name.log" 2>&1
done
sent=$(grep -c "Received Store Response (Success)" "$tmp/storescu-sealed.log")
check "C-STORE: some instances were sent ($sent)" [ "$sent" -gt 0 ]
check "C-STORE: the same instances reached plain Orthanc" \
    [ "$(grep -c "Received Store Response (Success)" "$tmp/storescu-plain.log")" -eq "$sent" ]
check "C-STORE wrote a new object for each instance sent" \
    status sealed "d['attachments']['stored'] >= $stored_before + $sent"
check "C-STORE: the objects they replaced were removed" [ "$(count_files "$tmp/sealed/storage")" -eq "$stored" ]
check "C-STORE: every read matches plain Orthanc" \
    $CLIENT compare "$(url sealed)" "$(url plain)" "$tmp/sealed.json" any
check "C-STORE: still nothing plain" all_sealed "$tmp/sealed/storage"

# ---- C-GET -------------------------------------------------------------------
phase "C-GET"
# Each study, retrieved from both servers, arrives as the same files.
cget() {
    local name=$1 out=$tmp/cget-$1
    mkdir -p "$out"
    curl -sf "$(url "$name")/studies?expand" | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    print(s["MainDicomTags"]["StudyInstanceUID"])' | sort | while read -r study; do
        getscu -aet DCMSEALSCU -aec ORTHANC -S -k QueryRetrieveLevel=STUDY \
            -k StudyInstanceUID="$study" -od "$out" 127.0.0.1 "$(dicom_port "$name")" \
            >> "$tmp/getscu-$name.log" 2>&1
    done
}
cget sealed
cget plain
# getscu takes only what Orthanc can send it uncompressed: both servers
# send the same.
check "C-GET retrieved instances" [ "$(count_files "$tmp/cget-sealed")" -gt 0 ]
check "C-GET: the same files as from plain Orthanc" diff -r -q "$tmp/cget-sealed" "$tmp/cget-plain"

# ---- the DEK cache -----------------------------------------------------------
phase "the DEK cache"
# Reading one instance three times costs the token at most one unwrap.
first=$(python3 -c 'import json,sys; print(sorted(json.load(open(sys.argv[1])))[0])' "$tmp/sealed.json")
curl -sf "$(url sealed)/dcmseal/status" > "$tmp/before.json"
for _ in 1 2 3; do curl -sf "$(url sealed)/instances/$first/file" -o /dev/null; done
curl -sf "$(url sealed)/dcmseal/status" > "$tmp/after.json"
check "repeated reads hit the DEK cache" python3 -c '
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
hits = b["dek_cache"]["hits"] - a["dek_cache"]["hits"]
calls = b["sessions"]["token_calls"] - a["sessions"]["token_calls"]
sys.exit(0 if hits >= 2 and calls <= 1 else 1)' "$tmp/before.json" "$tmp/after.json"

# ---- attachments that are not DICOM ------------------------------------------
phase "attachments that are not DICOM"
# A user's attachment (here a JSON report) is sealed too, as an opaque
# object, and comes back as it went in.
printf '{"report": "no acute findings", "patient": "Doe^Jane"}' > "$tmp/report.json"
curl -sf -X PUT --data-binary @"$tmp/report.json" "$(url sealed)/instances/$first/attachments/1025" > /dev/null
check "a custom attachment is stored" $CLIENT expect "$(url sealed)" GET "/instances/$first/attachments/1025/data" 200
curl -sf "$(url sealed)/instances/$first/attachments/1025/data" -o "$tmp/report.back"
check "... and reads back as it went in" cmp -s "$tmp/report.json" "$tmp/report.back"
check "no patient name in clear anywhere in the storage" not grep -rq "Doe^Jane" "$tmp/sealed/storage"
report=$(file_of_attachment sealed "$first" 1025)
check "it is an opaque object" bash -c "'$DCMSEAL' inspect '$report' | grep -qi opaque"

# ---- a tampered object, and two swapped ones ---------------------------------
phase "a tampered object, and two swapped ones"
victim=$(python3 -c 'import json,sys; print(sorted(json.load(open(sys.argv[1])))[2])' "$tmp/sealed.json")
other=$(python3 -c 'import json,sys; print(sorted(json.load(open(sys.argv[1])))[3])' "$tmp/sealed.json")
vfile=$(file_of sealed "$victim")
ofile=$(file_of sealed "$other")
cp "$vfile" "$tmp/victim.keep"
python3 - "$vfile" <<'PY'
import os, sys
with open(sys.argv[1], "r+b") as f:
    f.seek(os.path.getsize(sys.argv[1]) - 100)
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 1]))
PY
check "a tampered object: 500" $CLIENT expect "$(url sealed)" GET "/instances/$victim/file" 500
check "... logged with its attachment and the cause" \
    grep -q "cannot read attachment $(basename "$vfile"): authentication failed" "$tmp/sealed/log"
cp "$tmp/victim.keep" "$vfile"
check "restored, it reads again" $CLIENT expect "$(url sealed)" GET "/instances/$victim/file" 200
# Swapped: each decrypts (same key), under the other's uuid. Orthanc's MD5
# of each attachment catches it (docs/ORTHANC.md).
mv "$vfile" "$tmp/swap" && mv "$ofile" "$vfile" && mv "$tmp/swap" "$ofile"
check "verify-md5 catches two swapped objects" \
    not curl -sf -X POST "$(url sealed)/instances/$victim/attachments/dicom/verify-md5" -o /dev/null
mv "$vfile" "$tmp/swap" && mv "$ofile" "$vfile" && mv "$tmp/swap" "$ofile"
check "swapped back, verify-md5 passes" \
    curl -sf -X POST "$(url sealed)/instances/$victim/attachments/dicom/verify-md5" -o /dev/null

# ---- durable before acknowledged ------------------------------------------------------
# One upload traced: the object is flushed, linked under its name and its
# folder flushed, all before Orthanc writes its HTTP answer (the same
# thread, so the order of the lines is the order of the calls).
one=$(python3 -c 'import json,sys; print(sorted(json.load(open(sys.argv[1])).values())[0])' "$tmp/sealed.json")
strace -f -qq -e trace=fsync,fdatasync,linkat,renameat,write,writev,sendto,sendmsg \
    -e signal=none -s 40 -o "$tmp/strace.txt" -p "$(cat "$tmp/sealed/pid")" &
tracer=$!
sleep 1
curl -sf -X POST --data-binary @"$one" "$(url sealed)/instances" -o "$tmp/one.json"
sleep 0.3
kill "$tracer"
wait "$tracer" 2>/dev/null
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ID"])' "$tmp/one.json")
uuid=$(basename "$(file_of sealed "$id")")
check "flushed, linked, folder flushed, then answered" python3 - "$tmp/strace.txt" "$uuid" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
uuid = sys.argv[2]
link = [i for i, l in enumerate(lines) if "linkat(" in l and uuid in l]
if len(link) != 1:
    sys.exit(f"linkat of {uuid}: {len(link)} lines")
i = link[0]
tid = lines[i].split()[0]
fd = re.search(r'"/proc/self/fd/(\d+)"', lines[i]).group(1)
dirfd = re.search(r'"/proc/self/fd/\d+", (\d+),', lines[i]).group(1)
mine = [(j, l) for j, l in enumerate(lines) if l.split()[0] == tid]
before = [l for j, l in mine if j < i]
after = [l for j, l in mine if j > i]
ok_file = any(re.search(rf"\bf(data)?sync\({fd}\)\s+= 0", l) for l in before)
dir_at = next((k for k, l in enumerate(after) if re.search(rf"\bfsync\({dirfd}\)\s+= 0", l)), None)
answer_at = next((k for k, l in enumerate(after) if "HTTP/1.1 200" in l), None)
print(f"file fsync before link: {ok_file}; folder fsync at {dir_at}, answer at {answer_at}")
sys.exit(0 if ok_file and dir_at is not None and answer_at is not None and dir_at < answer_at else 1)
PY

# ---- deleting ----------------------------------------------------------------
phase "deleting"
before=$(count_files "$tmp/sealed/storage")
expect 0 "delete one instance" curl -sf -X DELETE "$(url sealed)/instances/$first"
check "its files are gone (the DICOM file and the report)" \
    [ "$(count_files "$tmp/sealed/storage")" -eq $((before - 2)) ]
check "it is gone from the index" $CLIENT expect "$(url sealed)" GET "/instances/$first" 404

# ---- a plain file in the storage directory -----------------------------------
phase "a plain file in the storage directory"
# What someone with write access to the folder could plant: refused.
victim=$(python3 -c 'import json,sys; print(sorted(json.load(open(sys.argv[1])))[1])' "$tmp/sealed.json")
planted=$(file_of sealed "$victim")
attachment=$(basename "$planted")
original=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$tmp/sealed.json" "$victim")
cp "$original" "$planted"
check "a planted plain file is refused (500)" $CLIENT expect "$(url sealed)" GET "/instances/$victim/file" 500
check "the refusal is logged with the attachment" grep -q "cannot read attachment $attachment: not a dcmseal object" "$tmp/sealed/log"
check "status counts it" status sealed 'd["attachments"]["plain_refused"] >= 1'
orthanc_stop sealed

# ---- configuration errors stop Orthanc ---------------------------------------
phase "configuration errors stop Orthanc"
bad_config() {
    local what=$1 sec=$2 extra=${3:-} log=$4
    rm -rf "$tmp/bad"
    if orthanc_start bad "$sec" "$extra"; then
        fail "$what: Orthanc started"
        orthanc_stop bad
    else
        check "$what: the log says why" grep -q "$log" "$tmp/bad/log"
    fi
}
bad_config "unknown option" "$(section '"DekCacheSise": 5')" "" "unknown option Dcmseal.DekCacheSise"
bad_config "no such key" "$(KEY=nosuch section)" "" "nosuch"
bad_config "index inside the storage" "$(section)" "\"IndexDirectory\": \"$tmp/bad/storage/db\"" \
    "is inside StorageDirectory"
bad_config "no token" '{ "Key": "kek" }' "" "no token"
# ... which DCMSEAL_TOKEN in Orthanc's environment supplies.
rm -rf "$tmp/env"
ORTHANC_ENV="DCMSEAL_TOKEN=$NET_TOKEN" check "DCMSEAL_TOKEN in the environment is the fallback" \
    orthanc_start env '{ "Key": "kek" }'
orthanc_stop env
(umask 077; echo 0000 > "$tmp/wrong-pin")
bad_config "wrong PIN" "{ \"Token\": \"${NET_TOKEN%%&pin-source=*}&pin-source=file:$tmp/wrong-pin\", \"Key\": \"kek\" }" "" "CKR_PIN_INCORRECT"

finish
