# Sourced, not run. A project-local SoftHSM2 token: nothing in /etc is used
# or touched, because SOFTHSM2_CONF points at a config inside DIR.
#
#   softhsm_token DIR LABEL   creates DIR/softhsm2.conf, DIR/tokens, a token
#                             LABEL with a random user PIN in DIR/pin (0600),
#                             and exports SOFTHSM2_CONF and DCMSEAL_TOKEN.

SOFTHSM_MODULE=${SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}

softhsm_token() {
    local dir=$1 label=$2
    mkdir -p "$dir/tokens"
    chmod 700 "$dir"
    cat > "$dir/softhsm2.conf" <<CONF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
    export SOFTHSM2_CONF="$dir/softhsm2.conf"
    (umask 077; od -An -N8 -tx1 /dev/urandom | tr -d ' \n' > "$dir/pin")
    local so_pin
    so_pin=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
    # softhsm2-util takes PINs only as arguments; this is a throwaway token
    # in a private directory, and dcmseal itself reads the PIN from a file.
    softhsm2-util --init-token --free --label "$label" \
        --so-pin "$so_pin" --pin "$(cat "$dir/pin")" >/dev/null
    export DCMSEAL_TOKEN="pkcs11:token=$label?module-path=$SOFTHSM_MODULE&pin-source=file:$dir/pin"
}
