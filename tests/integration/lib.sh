# Sourced by the integration tests: a temporary directory $tmp, counters,
# the checks, and tokens of the implementation DCMSEAL_TEST_TOKEN names
# (token.sh). The caller sets DCMSEAL and NAME, then sources this.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/token.sh"
token_enter "$@"

tmp=$(mktemp -d "/tmp/dcmseal-$NAME.XXXXXX")
trap 'token_stop; rm -rf "$tmp"' EXIT
[ "$TOKEN_IMPL" = softhsm ] || echo "$NAME: against $TOKEN_IMPL ($TOKEN_MODULE)"
passed=0 failed=0
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
check() { local what=$1; shift; if "$@"; then ok; else fail "$what"; fi; }
not() { ! "$@"; }

# expect CODE WHAT CMD...: runs CMD, checks its exit code; stdout is kept in
# $tmp/out and stderr in $tmp/err.
expect() {
    local code=$1 what=$2; shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ "$rc" -eq "$code" ]; then ok; else fail "$what: exit $rc, wanted $code: $(head -c 300 "$tmp/err")"; fi
}

# The error is one line that names the file.
one_line_naming() {
    [ "$(wc -l < "$tmp/err")" -eq 1 ] && grep -qF -- "$1" "$tmp/err"
}

# token_with_key DIR LABEL KEY: a fresh token in DIR with an RSA-2048 key
# KEY, which the commands that follow use by default (DCMSEAL_KEY).
token_with_key() {
    test_token "$1" "$2"
    "$DCMSEAL" key create "$3" --bits 2048 >/dev/null || fail "key create"
    export DCMSEAL_KEY=$3
}

# temp_name NAME PID: the temporary name that dcmseal process PID on this
# machine gives an output NAME (see dcmseal_temp_state); dead_pid: the PID
# of a process that is gone.
temp_name() {
    local host
    host=$(python3 -c 'import socket
h = 0x811c9dc5
for b in socket.gethostname().encode(): h = ((h ^ b) * 0x01000193) & 0xffffffff
print("%08x" % h)')
    printf '.%s.dcmseal-%s-%s-abc123' "$1" "$host" "$2"
}
dead_pid() {
    true &
    local pid=$!
    wait "$pid"
    echo "$pid"
}

# How many objects under $1 have anything but zeros in their inactive slot
# (FORMAT.md: the active slot is the intact one with the higher generation).
old_slots_left() {
    python3 - "$1" <<'PY'
import hashlib, os, sys
def intact(s):
    return s[:4] == b"SLOT" and hashlib.sha256(s[:992]).digest() == s[992:]
left = 0
for d, _, fs in os.walk(sys.argv[1]):
    for f in fs:
        b = open(os.path.join(d, f), "rb").read(2176)
        a, c = b[128:1152], b[1152:2176]
        ga = int.from_bytes(a[8:16], "big") if intact(a) else -1
        gc = int.from_bytes(c[8:16], "big") if intact(c) else -1
        left += any((c if ga >= gc else a))
print(left)
PY
}

# The closing line that CI reads; the exit status says whether all passed.
finish() {
    echo "$NAME: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
