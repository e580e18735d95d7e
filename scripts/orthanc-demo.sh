#!/usr/bin/env bash
# dcmseal inside Orthanc, on this machine: installs what is missing and
# builds (scripts/bootstrap.sh), makes a SoftHSM token with a KEK in
# build/orthanc-demo/ (nothing in /etc is used or touched), starts an
# Orthanc with the dcmseal storage plugin on free loopback ports (HTTP only,
# remote access off, no DICOM port), stores ../shared/corpus (or DIR; without
# either, samples made with DCMTK) through REST, reads every instance back
# and compares it byte for byte, shows that no file in the storage is
# plain, and stops Orthanc. docs/ORTHANC.md explains the configuration.
#
#   scripts/orthanc-demo.sh [--keep] [DIR]
#
# --keep leaves Orthanc running and prints its address and how to stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
keep=0
if [ "${1:-}" = --keep ]; then keep=1; shift; fi
scripts/bootstrap.sh >&2

demo=$root/build/orthanc-demo
dcmseal=$root/build/dcmseal
plugin=$root/build/orthanc/libOrthancDcmseal.so
client="python3 $root/tests/integration/orthanc_client.py"
if [ -f "$demo/orthanc.pid" ] && kill -0 "$(cat "$demo/orthanc.pid")" 2>/dev/null; then
    echo "orthanc-demo: an earlier demo Orthanc still runs: kill $(cat "$demo/orthanc.pid")" >&2
    exit 1
fi
rm -rf "$demo"
mkdir -p "$demo"

# The inputs.
src=${1:-$root/../shared/corpus}
if [ ! -d "$src" ]; then
    src=$demo/samples
    scripts/make-samples.sh "$src" >/dev/null
fi
mapfile -t files < <(find "$src" -type f | sort)

# A token of its own, and a key.
. scripts/softhsm.sh
softhsm_token "$demo/hsm" orthanc-demo
"$dcmseal" key create demo-kek --bits 3072 >/dev/null

# Orthanc on a free loopback port, the index beside (not inside) the
# storage, as the plugin requires. Some corpus files are one instance in
# several transfer syntaxes: the last one stored stays.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$demo/orthanc.json" <<JSON
{
  "Name": "dcmseal-demo",
  "StorageDirectory": "$demo/storage",
  "IndexDirectory": "$demo/index",
  "HttpPort": $port,
  "RemoteAccessAllowed": false,
  "DicomServerEnabled": false,
  "AuthenticationEnabled": false,
  "MaximumStorageCacheSize": 0,
  "OverwriteInstances": true,
  "Plugins": [ "$plugin" ],
  "Dcmseal": {
    "Token": "$DCMSEAL_TOKEN",
    "Key": "demo-kek"
  }
}
JSON
setsid Orthanc "$demo/orthanc.json" > "$demo/orthanc.log" 2>&1 &
echo $! > "$demo/orthanc.pid"
url=http://127.0.0.1:$port
stop() { kill "$(cat "$demo/orthanc.pid")" 2>/dev/null || true; }
for _ in $(seq 300); do
    curl -sf "$url/system" >/dev/null 2>&1 && break
    if ! kill -0 "$(cat "$demo/orthanc.pid")" 2>/dev/null; then
        echo "orthanc-demo: Orthanc did not start:" >&2
        tail -5 "$demo/orthanc.log" >&2
        exit 1
    fi
    sleep 0.1
done
[ "$keep" -eq 1 ] || trap stop EXIT
grep -o "dcmseal: storage .*" "$demo/orthanc.log" | sed 's/^/orthanc-demo: /'

# Store, read back, compare.
$client upload "$url" "$demo/uploads.json" "${files[@]}" | sed 's/^/orthanc-demo: /'
$client files "$url" "$demo/uploads.json" | sed 's/^/orthanc-demo: read back, /'
stored=$(find "$demo/storage" -type f | wc -l)
plain=$(python3 - "$demo/storage" <<'PY'
import os, sys
print(sum(1 for d, _, fs in os.walk(sys.argv[1]) for f in fs
          if open(os.path.join(d, f), "rb").read(8) != b"\x89DCMSEAL"))
PY
)
echo "orthanc-demo: $stored files in $demo/storage, $plain of them not dcmseal objects"
"$dcmseal" verify -r -q "$demo/storage"
curl -sf "$url/dcmseal/status" | python3 -c '
import json, sys
d = json.load(sys.stdin)
c, a = d["dek_cache"], d["attachments"]
print("orthanc-demo: key {!r} v{} on token {!r}; {} stored, {} whole and {} range reads; "
      "DEK cache: {} hits, {} misses".format(d["key"], d["primary_version"], d["token"],
      a["stored"], a["read_whole"], a["read_range"], c["hits"], c["misses"]))'
[ "$plain" -eq 0 ]
if [ "$keep" -eq 1 ]; then
    echo "orthanc-demo: Orthanc runs at $url (log: $demo/orthanc.log); stop it with: kill $(cat "$demo/orthanc.pid")"
fi
