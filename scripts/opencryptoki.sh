# A project-local openCryptoki software token (Debian's opencryptoki 3.8.1:
# libopencryptoki.so.0, the slot daemon pkcsslotd and the software token
# libpkcs11_sw.so). Sourced by the tests (tests/integration/token.sh); run,
# it gives a command a token (see the end).
#
# openCryptoki has its paths built in: /etc/opencryptoki (slot config),
# /var/lib/opencryptoki (token data), /var/lock/opencryptoki (lock files),
# /run/pkcsslotd.{socket,pid} (the daemon), a System V shared memory segment
# keyed by a fixed path, and POSIX shared memory in /dev/shm. So the token
# lives in private mount, IPC and PID namespaces (unshare, as root), where
# all of those are replaced by directories under DIR: the machine's own
# files and any other openCryptoki stay untouched, suites run side by side,
# and the slot daemon goes with the namespace however the script ends.
#
#   ock_enter "$@"          re-runs the calling script ($0) in fresh
#                           namespaces, unless it already runs in them
#                           (then it returns)
#   ock_token DIR LABEL     in there, once: starts pkcsslotd with one
#                           software token slot, initialises token LABEL
#                           (new SO PIN, user PIN in DIR/pin, 0600) and
#                           exports DCMSEAL_TOKEN
#   ock_stop, ock_start     stop the daemon, and start it again: new
#                           processes cannot open the token meanwhile
#   OCK_MODULE              the PKCS#11 module

OCK_MODULE=${OCK_MODULE:-/usr/lib/x86_64-linux-gnu/opencryptoki/libopencryptoki.so.0}
# The SO PIN C_InitToken of a new software token expects.
OCK_DEFAULT_SO_PIN=87654321

ock_enter() {
    [ -n "${DCMSEAL_OCK_NS:-}" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "opencryptoki: the token needs a private mount namespace: run as root" >&2
        exit 1
    fi
    # The group the package's postinst creates: pkcsslotd refuses to start
    # without it, and its files and socket belong to it.
    if ! getent group pkcs11 >/dev/null; then
        echo "opencryptoki: no 'pkcs11' group (is the opencryptoki package installed?)" >&2
        exit 1
    fi
    # The script runs as PID 1 of the new PID namespace; when it ends, or
    # unshare is killed (a test timeout), everything in there goes too.
    DCMSEAL_OCK_NS=1 exec unshare --mount --ipc --pid --fork --kill-child --mount-proc \
        --propagation private -- "$BASH" "$0" "$@"
}

ock_token() {
    local dir=$1 label=$2 root=$1/ock so_pin
    [ -n "${DCMSEAL_OCK_NS:-}" ] || { echo "ock_token: call ock_enter first" >&2; return 1; }
    # One software token per namespace: its data directory is built in.
    [ -z "${OCK_PIDFILE:-}" ] || { echo "ock_token: a token runs already" >&2; return 1; }
    mkdir -p "$root/etc" "$root/lib/swtok/TOK_OBJ" "$root/run/lock/opencryptoki/swtok"
    chmod 700 "$dir"
    cat > "$root/etc/opencryptoki.conf" <<CONF
slot 0
{
stdll = libpkcs11_sw.so
description = "dcmseal test token"
}
CONF
    # As the package's tmpfiles.d sets them up.
    chgrp -R pkcs11 "$root/lib" "$root/run/lock/opencryptoki"
    chmod -R 0770 "$root/lib" "$root/run/lock/opencryptoki"
    # /var/lock is a link to /run/lock: the fresh /run holds both the
    # daemon's socket and the lock files.
    mount -t tmpfs -o mode=1777,size=64m tmpfs /dev/shm &&
        mount --bind "$root/etc" /etc/opencryptoki &&
        mount --bind "$root/lib" /var/lib/opencryptoki &&
        mount --bind "$root/run" /run || {
        echo "opencryptoki: cannot set up the private mounts" >&2
        return 1
    }
    OCK_PIDFILE=/run/pkcsslotd.pid
    ock_start || { echo "opencryptoki: pkcsslotd did not start" >&2; return 1; }
    # The software token takes PINs of 4 to 8 characters.
    (umask 077; od -An -N4 -tx1 /dev/urandom | tr -d ' \n' > "$dir/pin")
    so_pin=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
    # pkcs11-tool takes PINs only as arguments; this is a throwaway token in
    # a private namespace, and dcmseal itself reads the PIN from a file.
    pkcs11-tool --module "$OCK_MODULE" --slot 0 --init-token --label "$label" \
        --so-pin "$OCK_DEFAULT_SO_PIN" >/dev/null 2>&1 &&
        pkcs11-tool --module "$OCK_MODULE" --slot 0 --login --login-type so \
            --so-pin "$OCK_DEFAULT_SO_PIN" --change-pin --new-pin "$so_pin" >/dev/null 2>&1 &&
        pkcs11-tool --module "$OCK_MODULE" --slot 0 --login --login-type so --so-pin "$so_pin" \
            --init-pin --new-pin "$(cat "$dir/pin")" >/dev/null 2>&1 || {
        echo "opencryptoki: cannot initialise token '$label'" >&2
        return 1
    }
    export DCMSEAL_TOKEN="pkcs11:token=$label?module-path=$OCK_MODULE&pin-source=file:$dir/pin"
}

ock_start() {
    /usr/sbin/pkcsslotd && [ -S /run/pkcsslotd.socket ]
}

ock_stop() {
    local pid
    pid=$(cat "${OCK_PIDFILE:-/nonexistent}" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null
}

# Run, not sourced: scripts/opencryptoki.sh DIR LABEL [COMMAND...] runs
# COMMAND (a shell by default) with a fresh token LABEL in DIR and
# DCMSEAL_TOKEN set; the token goes when it ends.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -eu
    if [ $# -lt 2 ]; then
        echo "usage: $0 DIR LABEL [COMMAND...]" >&2
        exit 64
    fi
    ock_enter "$@"
    dir=$1 label=$2
    shift 2
    mkdir -p "$dir"
    trap ock_stop EXIT
    ock_token "$dir" "$label"
    "${@:-${SHELL:-bash}}"
fi
