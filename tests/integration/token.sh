# Sourced by lib.sh and bench/bench.py: the PKCS#11 implementation a suite
# runs against, chosen with one variable:
#
#   DCMSEAL_TEST_TOKEN=softhsm        SoftHSM 2 (the default; scripts/softhsm.sh)
#   DCMSEAL_TEST_TOKEN=opencryptoki   openCryptoki's software token
#                                     (scripts/opencryptoki.sh), in private
#                                     namespaces: root only, one token a suite
#
#   token_enter "$@"       first thing in a script: re-runs it where the
#                          implementation needs (openCryptoki: its own
#                          namespaces); returns at once for SoftHSM
#   test_token DIR LABEL   a new token LABEL, its user PIN in DIR/pin; exports
#                          DCMSEAL_TOKEN and TOKEN_MODULE (the module's path)
#   token_stop             stops what test_token started (call it at exit)
#   token_outage DIR       the token of test_token DIR goes away as far as the
#   token_back DIR         implementation lets a test do it, and comes back:
#                          SoftHSM's token directory is moved away;
#                          openCryptoki's slot daemon stops (no new process
#                          opens the token) and starts again
#   TOKEN_IMPL             softhsm or opencryptoki
#
# What each one is known to answer, for the suites to expect (docs/HSM.md
# has the whole table; hsm.sh holds hsm-check to these):
#   TOKEN_OAEP     the RSA-OAEP variant dcmseal wraps with: sha1 on SoftHSM
#                  2.6.1, which refuses SHA-256; sha256 on openCryptoki
#   TOKEN_REWRAP   in-token, or host where the token refuses dcmseal's
#                  unwrap template (openCryptoki 3.8.1: CKR_ATTRIBUTE_READ_ONLY)
#   TOKEN_ORIGIN_MECHS  pass where the origin key keeps CKA_ALLOWED_MECHANISMS
#                  and the token enforces it (SoftHSM 2.6.1), fail where it
#                  does not (openCryptoki 3.8.1 makes the key, and HMAC-SHA1
#                  with it still works)
_token_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$_token_here/../../scripts/softhsm.sh"
. "$_token_here/../../scripts/opencryptoki.sh"

TOKEN_IMPL=${DCMSEAL_TEST_TOKEN:-softhsm}
case $TOKEN_IMPL in
softhsm) TOKEN_MODULE=$SOFTHSM_MODULE TOKEN_OAEP=sha1 TOKEN_REWRAP=in-token TOKEN_ORIGIN_MECHS=pass ;;
opencryptoki)
    TOKEN_MODULE=$OCK_MODULE TOKEN_OAEP=sha256 TOKEN_REWRAP=host TOKEN_ORIGIN_MECHS=fail
    # Under -DDCMSEAL_ASAN=ON: openCryptoki 3.8.1 leaks in C_Decrypt and
    # C_Finalize, and its libraries are unloaded by then, so LeakSanitizer
    # sees "<unknown module>" frames no suppression can name. dcmseal's own
    # memory is leak-checked by the same suites on SoftHSM.
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
    ;;
*)
    echo "DCMSEAL_TEST_TOKEN=$TOKEN_IMPL: softhsm or opencryptoki" >&2
    exit 1
    ;;
esac
export TOKEN_MODULE

token_enter() {
    if [ "$TOKEN_IMPL" = opencryptoki ]; then ock_enter "$@"; fi
}

test_token() {
    case $TOKEN_IMPL in
    softhsm) softhsm_token "$1" "$2" ;;
    opencryptoki) ock_token "$1" "$2" ;;
    esac
}

token_stop() {
    if [ "$TOKEN_IMPL" = opencryptoki ]; then ock_stop; fi
}

token_outage() {
    case $TOKEN_IMPL in
    softhsm) mv "$1/tokens" "$1/tokens.away" && mkdir "$1/tokens" ;;
    opencryptoki) ock_stop ;;
    esac
}

token_back() {
    case $TOKEN_IMPL in
    softhsm) rmdir "$1/tokens" && mv "$1/tokens.away" "$1/tokens" ;;
    opencryptoki) ock_start ;;
    esac
}
