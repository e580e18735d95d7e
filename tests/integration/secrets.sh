#!/usr/bin/env bash
# A process that keeps its secrets (docs/SECURITY.md): no core dumps, not
# open to ptrace by processes of the same user, key material in a locked
# heap kept out of dumps, a PIN taken from the environment removed from it,
# and pin-source files that others could read or write refused.
#   secrets.sh DCMSEAL
DCMSEAL=$1
NAME=secrets
. "$(dirname "$0")/lib.sh"

token_with_key "$tmp/hsm" secrets-test k
pin=$tmp/hsm/pin
bare=${DCMSEAL_TOKEN%%&pin-source=*}
printf "some bytes\n" > "$tmp/plain"
"$DCMSEAL" encrypt -q "$tmp/plain" -o "$tmp/obj.dcms" 2>/dev/null || fail "encrypt"

# blocked_on FIFO CMD...: runs CMD in the background, where it blocks
# opening FIFO (each command opens its input only after its set-up), and
# sets $pid once it is there.
blocked_on() {
    local fifo=$1
    shift
    rm -f "$fifo" && mkfifo "$fifo"
    "$@" >"$tmp/blocked.out" 2>"$tmp/blocked.err" &
    pid=$!
    for _ in $(seq 200); do
        # The kernel function an open(2) of a FIFO waits in for a writer.
        [ "$(cat "/proc/$pid/wchan" 2>/dev/null)" = wait_for_partner ] && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
# release FIFO FILE: lets the blocked command read FILE, then waits for it.
release() { cat "$2" > "$1"; wait "$pid"; }

# ---- no core dumps, not dumpable, keys in a locked heap kept out of dumps -----
# Run as another user when we are root, so that /proc tells "not dumpable"
# (its files then belong to root) from "dumpable" (they belong to the user).
as=()
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
    as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    chmod 755 "$tmp"
fi
if blocked_on "$tmp/fifo" "${as[@]}" "$DCMSEAL" inspect "$tmp/fifo"; then
    check "RLIMIT_CORE is 0" grep -Eq '^Max core file size +0 +0 ' "/proc/$pid/limits"
    if [ ${#as[@]} -gt 0 ] || [ "$(id -u)" -ne 0 ]; then
        check "not dumpable: /proc/PID belongs to root ($(stat -c %U "/proc/$pid/status"))" \
            [ "$(stat -c %u "/proc/$pid/status")" -eq 0 ]
    fi
    if [ -r "/proc/$pid/smaps" ]; then
        # OpenSSL's secure heap: one mapping both locked (lo) and excluded
        # from core dumps (dd).
        check "a secure heap: a mapping locked and excluded from dumps" \
            grep -Eq '^VmFlags:.* lo( |$).* dd( |$)|^VmFlags:.* dd( |$).* lo( |$)' "/proc/$pid/smaps"
    fi
    release "$tmp/fifo" "$tmp/obj.dcms" >/dev/null
else
    fail "inspect did not block on its FIFO: $(head -c 300 "$tmp/blocked.err")"
    kill "$pid" 2>/dev/null
fi
chmod 700 "$tmp"

# ---- a PIN from the environment leaves it once read ------------------------------
# /proc/PID/environ shows the environment the process started with; unsetenv
# alone would leave the PIN there (and children would inherit it).
env_pin_gone() { # WHAT VAR URI
    local what=$1 var=$2 uri=$3
    rm -f "$tmp/dec.out"
    if ! blocked_on "$tmp/fifo" env "$var=$(cat "$pin")" "$DCMSEAL" decrypt --token "$uri" \
        "$tmp/fifo" -o "$tmp/dec.out"; then
        fail "$what: decrypt did not get to its input: $(head -c 300 "$tmp/blocked.err")"
        return
    fi
    check "$what: not in /proc/PID/environ once the token is open" \
        not grep -aqF "$(cat "$pin")" "/proc/$pid/environ"
    check "$what: the name is gone too" not grep -aq "$var=" "/proc/$pid/environ"
    release "$tmp/fifo" "$tmp/obj.dcms"
    check "$what: and the login worked (decrypt exit $?)" cmp -s "$tmp/plain" "$tmp/dec.out"
}
env_pin_gone DCMSEAL_PIN DCMSEAL_PIN "$bare"
env_pin_gone "pin-source=env:" TEST_SECRETS_PIN "$bare&pin-source=env:TEST_SECRETS_PIN"

# ---- pin-source files that others could read or swap are refused ----------------
chmod 644 "$pin"
expect 69 "a pin-source readable by all" "$DCMSEAL" key list
check "one line naming the file and the cause" one_line_naming "$pin"
check "it says what is wrong and how to fix it" grep -q "accessible to group or others (mode 0644); chmod 600 it" "$tmp/err"
chmod 640 "$pin"
expect 69 "a pin-source readable by the group" "$DCMSEAL" key list
check "group-readable: one line" one_line_naming "mode 0640"
chmod 604 "$pin"
expect 69 "a pin-source readable by others only" "$DCMSEAL" key list
chmod 400 "$pin"
expect 0 "a pin-source readable by its owner only (0400)" "$DCMSEAL" key list
chmod 600 "$pin"
expect 0 "a pin-source of mode 0600" "$DCMSEAL" key list
if [ "$(id -u)" -eq 0 ]; then
    chown 65534 "$pin"
    expect 69 "a pin-source owned by another user" "$DCMSEAL" key list
    check "not owned: one line naming the owner" one_line_naming "owned by uid 65534"
    chown 0 "$pin"
fi
# The PIN is never what the error shows.
check "no error showed the PIN" not grep -rqF "$(cat "$pin")" "$tmp/err" "$tmp/blocked.err"

finish
