#!/usr/bin/env bash
# The built program and library carry the hardening CMakeLists.txt asks
# for, as readelf and objdump see them:
#   hardening.sh DCMSEAL LIBDCMSEAL CF_PROTECTION MODULE_ARCHIVE...
# CF_PROTECTION is 1 when the compiler took -fcf-protection (CET).
DCMSEAL=$1
LIB=$2
CET=$3
shift 3
NAME=hardening
passed=0 failed=0
check() { local what=$1; shift; if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $what"; fi; }

not() { ! "$@"; }
dyn() { readelf -dW "$1"; }
dynsyms() { readelf --dyn-syms -W "$1"; }
not_rwe() { ! readelf -lW "$1" | grep GNU_STACK | grep -q RWE; }
tmp=$(mktemp -d /tmp/dcmseal-hardening.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

for f in "$DCMSEAL" "$LIB"; do
    n=$(basename "$f")
    # Full RELRO: the GOT is read-only after start-up, every symbol bound then.
    check "$n: GNU_RELRO segment" grep -q GNU_RELRO <(readelf -lW "$f")
    check "$n: bound now (BIND_NOW)" grep -Eq '\(BIND_NOW\)|\(FLAGS\).*BIND_NOW|\(FLAGS_1\).*NOW' <(dyn "$f")
    check "$n: no executable stack" not_rwe "$f"
    check "$n: no text relocations" not grep -q TEXTREL <(dyn "$f")
    # -fstack-protector-strong leaves calls to __stack_chk_fail;
    # _FORTIFY_SOURCE turns checked libc calls into their __*_chk forms.
    check "$n: stack protector (__stack_chk_fail)" grep -q '__stack_chk_fail' <(dynsyms "$f")
    check "$n: fortified libc calls (__*_chk)" \
        grep -Eq '__(memcpy|memmove|memset|snprintf|vsnprintf|fprintf|printf|strcpy|strcat|read|pread64)_chk' <(dynsyms "$f")
done
check "dcmseal is a position-independent executable" grep -q 'FLAGS_1.*PIE' <(dyn "$DCMSEAL")

if [ "$CET" = 1 ]; then
    # Every object of ours is marked for IBT and shadow stacks. The linked
    # files keep the mark only when every input has it: Debian 12's C
    # library start files (crt1.o, crti.o) do not, so there it is dropped
    # and the kernel runs the program without CET whatever we do.
    members=0 marked=0
    for a in "$@"; do
        abs=$(realpath "$a")
        rm -rf "$tmp/ar" && mkdir "$tmp/ar" && (cd "$tmp/ar" && ar x "$abs") || continue
        for m in "$tmp"/ar/*.o; do
            members=$((members + 1))
            readelf -n "$m" | grep -q 'x86 feature: IBT, SHSTK' && marked=$((marked + 1))
        done
    done
    check "every module object is CET-marked ($marked of $members)" [ "$members" -gt 0 -a "$marked" -eq "$members" ]
    check "exported functions start with endbr64 (IBT)" \
        grep -q endbr64 <(objdump -d --no-show-raw-insn "$LIB" | grep -A1 '<dcmseal_token_open>:')
    for f in "$DCMSEAL" "$LIB"; do
        if readelf -n "$f" | grep -q 'x86 feature: IBT, SHSTK'; then
            echo "$(basename "$f"): CET-marked"
        else
            echo "$(basename "$f"): not CET-marked: the C library's start files are not"
        fi
    done
else
    echo "the compiler has no -fcf-protection: CET not checked"
fi

echo "$NAME: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
