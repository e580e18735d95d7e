#!/usr/bin/env bash
# A round trip of the CLI under valgrind memcheck: no error, no leak.
#   valgrind.sh DCMSEAL CORPUS_DIR
DCMSEAL=$1
CORPUS=$2
NAME=valgrind
. "$(dirname "$0")/lib.sh"

token_with_key "$tmp/hsm" vg-test k
mkdir -p "$tmp/src/sub"
dcm=$(find "$CORPUS" -name '*.dcm' 2>/dev/null | head -2)
[ -n "$dcm" ] || { "$here/../../scripts/make-samples.sh" "$tmp/samples" >/dev/null; dcm=$(find "$tmp/samples" -name '*.dcm' | head -2); }
for f in $dcm; do cp "$f" "$tmp/src/sub/"; done
head -c 700000 /dev/urandom > "$tmp/src/big.bin"
one=$(find "$tmp/src/sub" -type f | head -1)

# Leaks of every kind are errors; the suppressions cover what the
# libraries keep for the life of the process (see valgrind.supp).
vg() {
    valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
        --errors-for-leak-kinds=definite,indirect --track-fds=no \
        --suppressions="$here/valgrind.supp" "$DCMSEAL" "$@"
}
expect 0 "encrypt one file" vg encrypt "$one" -o "$tmp/one.enc"
expect 0 "decrypt one file" vg decrypt "$tmp/one.enc" -o "$tmp/one.out"
check "one file round trip" cmp -s "$one" "$tmp/one.out"
expect 0 "encrypt -r, two workers" vg encrypt -r --jobs 2 "$tmp/src" -o "$tmp/enc" --report "$tmp/r.jsonl"
expect 0 "verify -r" vg verify -r -q --jobs 2 "$tmp/enc"
expect 0 "decrypt -r" vg decrypt -r --jobs 2 "$tmp/enc" -o "$tmp/dec"
check "tree round trip" diff -r "$tmp/src" "$tmp/dec"
"$DCMSEAL" key rotate k >/dev/null
expect 0 "rewrap -r" vg rewrap -r --jobs 2 "$tmp/enc"
expect 0 "inspect" vg inspect --json "$tmp/one.enc"
cp "$tmp/enc/big.bin" "$tmp/bad.enc"
printf '\x01' | dd of="$tmp/bad.enc" bs=1 seek=500000 conv=notrunc 2>/dev/null
expect 65 "a tampered object fails cleanly" vg decrypt "$tmp/bad.enc" -o "$tmp/bad.out"
check "and leaves no output" [ ! -e "$tmp/bad.out" ]
finish
