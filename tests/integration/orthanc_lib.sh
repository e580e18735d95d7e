# Sourced by the Orthanc suites after lib.sh: a network-HSM token path and
# Orthanc servers of their own, on free loopback ports, with their storage
# in $tmp. The caller sets DCMSEAL, PLUGIN (libOrthancDcmseal.so) and
# CORPUS, then sources lib.sh and this.
#
#   net_token DIR LABEL   a SoftHSM token (softhsm_token) exported by
#                         `p11-kit server` on DIR/sock, as a network HSM;
#                         sets NET_TOKEN (its URI through p11-kit's client
#                         module) and DCMSEAL_TOKEN (the same, for the CLI)
#   hsm_stop / hsm_start  the outage, and the recovery
#   orthanc_start NAME [PLUGIN_JSON] [EXTRA_JSON]
#                         an Orthanc in $tmp/NAME; with PLUGIN_JSON, the
#                         plugin is loaded with that "Dcmseal" section
#   orthanc_stop NAME [SIGNAL]
#   url NAME, dicom_port NAME
# Orthanc takes relative paths from its configuration's folder.
PLUGIN=$(realpath "$PLUGIN")
CORPUS=$(realpath "$CORPUS")
ORTHANC_BIN=${ORTHANC_BIN:-Orthanc}
P11_CLIENT=${P11_CLIENT:-$(pkg-config --variable=p11_module_path p11-kit-1)/p11-kit-client.so}
DICOMWEB=${DICOMWEB:-/usr/share/orthanc/plugins/libOrthancDicomWeb.so}
CLIENT="python3 $here/orthanc_client.py"

# Everything this suite started is stopped on exit, whatever happened.
declare -a started_pids=()
orthanc_cleanup() {
    for p in "${started_pids[@]}"; do
        kill -KILL -- "-$p" 2>/dev/null
    done
    # DCMSEAL_KEEP_TMP=1 keeps the servers' logs and storage for a look.
    if [ -n "${DCMSEAL_KEEP_TMP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap orthanc_cleanup EXIT

# phase WHAT: a line in the log with the seconds since the suite started,
# so that a slow CI run shows where its time went.
phase() { echo "--- $* (+${SECONDS}s)"; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

hsm_dir=""
hsm_label=""
hsm_pid=""
hsm_start() {
    rm -f "$hsm_dir/sock"
    # A session of its own: stopping it takes the p11-kit-remote children
    # that serve the open connections too, as when an HSM goes away.
    setsid p11-kit server -f -n "$hsm_dir/sock" -p "$SOFTHSM_MODULE" \
        "pkcs11:token=$hsm_label" > "$hsm_dir/server.log" 2>&1 &
    hsm_pid=$!
    started_pids+=("$hsm_pid")
    for _ in $(seq 100); do
        [ -S "$hsm_dir/sock" ] && return 0
        sleep 0.05
    done
    fail "p11-kit server did not start: $(cat "$hsm_dir/server.log")"
    return 1
}
hsm_stop() {
    kill -TERM -- "-$hsm_pid" 2>/dev/null
    wait "$hsm_pid" 2>/dev/null
    hsm_pid=""
}
net_token() {
    hsm_dir=$1 hsm_label=$2
    softhsm_token "$hsm_dir" "$hsm_label"
    hsm_start || return 1
    export P11_KIT_SERVER_ADDRESS="unix:path=$hsm_dir/sock"
    NET_TOKEN="pkcs11:token=$hsm_label?module-path=$P11_CLIENT&pin-source=file:$hsm_dir/pin"
    export DCMSEAL_TOKEN=$NET_TOKEN
}

url() { echo "http://127.0.0.1:$(cat "$tmp/$1/http")"; }
dicom_port() { cat "$tmp/$1/dicom"; }

# orthanc_start NAME [PLUGIN_JSON] [EXTRA_JSON]: EXTRA_JSON is more
# top-level members, e.g. '"OverwriteInstances": true'; ORTHANC_ENV is
# VAR=VALUE words for Orthanc's environment. Returns non-zero
# when Orthanc exits or does not answer within 30 s ($tmp/NAME/log says
# why).
orthanc_start() {
    local name=$1 section=${2:-} extra=${3:-} dir=$tmp/$1 plugins
    mkdir -p "$dir"
    free_port > "$dir/http"
    free_port > "$dir/dicom"
    plugins="\"$DICOMWEB\""
    [ -n "$section" ] && plugins="$plugins, \"$PLUGIN\""
    cat > "$dir/orthanc.json" <<JSON
{
  "Name": "dcmseal-test-$name",
  "StorageDirectory": "$dir/storage",
  "IndexDirectory": "$dir/index",
  "HttpPort": $(cat "$dir/http"),
  "DicomPort": $(cat "$dir/dicom"),
  "DicomAet": "ORTHANC",
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false,
  "HttpServerEnabled": true,
  "MaximumStorageCacheSize": 0,
  "StorageCompression": false,
  "DicomModalities": { "scu": ["DCMSEALSCU", "127.0.0.1", 1] },
  "DicomWeb": { "Enable": true, "Root": "/dicom-web/" },
  "Plugins": [ $plugins ]${section:+,
  \"Dcmseal\": $section}${extra:+,
  $extra}
}
JSON
    # The CLI's DCMSEAL_TOKEN and DCMSEAL_KEY would be the plugin's
    # fallbacks: only what ORTHANC_ENV names reaches Orthanc.
    env -u DCMSEAL_TOKEN -u DCMSEAL_KEY ${ORTHANC_ENV:-} \
        setsid "$ORTHANC_BIN" --verbose "$dir/orthanc.json" > "$dir/log" 2>&1 &
    echo $! > "$dir/pid"
    started_pids+=("$(cat "$dir/pid")")
    for _ in $(seq 300); do
        curl -sf "$(url "$name")/system" >/dev/null 2>&1 && return 0
        kill -0 "$(cat "$dir/pid")" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

orthanc_stop() {
    local dir=$tmp/$1 sig=${2:-TERM} pid
    pid=$(cat "$dir/pid")
    kill "-$sig" "$pid" 2>/dev/null
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

# The plugin's section for the network token, with more members if given.
section() {
    echo "{ \"Token\": \"$NET_TOKEN\", \"Key\": \"${KEY:-kek}\"${1:+, $1} }"
}

# Every file under DIR starts with dcmseal's magic; none is DICOM.
all_sealed() {
    python3 - "$1" <<'PY'
import os, sys
bad = []
n = 0
for d, _, fs in os.walk(sys.argv[1]):
    for f in fs:
        n += 1
        with open(os.path.join(d, f), "rb") as fh:
            head = fh.read(132)
        if not head.startswith(b"\x89DCMSEAL") or head[128:132] == b"DICM":
            bad.append(os.path.join(d, f))
print(f"{n} files, {len(bad)} not sealed: {bad[:3]}")
sys.exit(0 if n > 0 and not bad else 1)
PY
}

# The number of files under DIR.
count_files() { find "$1" -type f | wc -l; }

# stat_of NAME PATH: one value of the plugin's /dcmseal/status, e.g.
# '["dek_cache"]["hits"]'.
stat_of() {
    curl -sf "$(url "$1")/dcmseal/status" | python3 -c "import json,sys; print(json.load(sys.stdin)$2)"
}

# status NAME EXPR: EXPR over the plugin's /dcmseal/status JSON (as d).
status() {
    curl -sf "$(url "$1")/dcmseal/status" | python3 -c \
        "import json,sys; d=json.load(sys.stdin); sys.exit(0 if ($2) else 1)"
}

# fresh_copies DIR N: N DICOM files in DIR, copies of the corpus's small
# dwv files that Orthanc takes (those with study, series and SOP instance
# UIDs), each with a new SOP Instance UID (dcmodify -gin): instances Orthanc
# has not seen.
fresh_sources=()
fresh_copies() {
    local dir=$1 n=$2 i=0 f
    if [ "${#fresh_sources[@]}" -eq 0 ]; then
        for f in $(find "$CORPUS/dwv" -name '*.dcm' -size -600k | sort); do
            [ "$(dcmdump -q -s +P 0020,000d +P 0020,000e +P 0008,0018 "$f" 2>/dev/null |
                grep -c '\[[0-9.]*\]')" -eq 3 ] && fresh_sources+=("$f")
        done
    fi
    mkdir -p "$dir"
    while [ "$i" -lt "$n" ]; do
        cp "${fresh_sources[$((i % ${#fresh_sources[@]}))]}" "$dir/$(printf 'f%05d.dcm' "$i")"
        i=$((i + 1))
    done
    dcmodify -q -gin -nb "$dir"/*.dcm
}

# kek_versions DIR: "vN count" lines for the objects under DIR, from
# verify -r (which authenticates each one on the way).
kek_versions() {
    "$DCMSEAL" verify -r "$1" 2>/dev/null | sed -n "s/.*key '[^']*' \(v[0-9]*\)).*/\1/p" | sort | uniq -c | awk '{print $2, $1}'
}

# file_of_attachment NAME INSTANCE ATTACHMENT: its path in the storage.
file_of_attachment() {
    local uuid
    uuid=$(curl -sf "$(url "$1")/instances/$2/attachments/$3/info" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["Uuid"])')
    echo "$tmp/$1/storage/${uuid:0:2}/${uuid:2:2}/$uuid"
}

# file_of NAME INSTANCE: the storage path of an instance's DICOM file.
file_of() { file_of_attachment "$1" "$2" dicom; }
