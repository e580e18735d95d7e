#!/usr/bin/env bash
# Whole archives: encrypt, decrypt, verify and rewrap of a directory tree,
# resume after an interruption, --in-place, shards, reports, progress.
#   tree.sh DCMSEAL CORPUS_DIR
DCMSEAL=$1
CORPUS=$2
NAME=tree
. "$(dirname "$0")/lib.sh"

token_with_key "$tmp/hsm" tree-test arch

# Root may read anything; without these two capabilities it obeys the mode
# bits like everyone else, which the unreadable file needs.
unpriv() {
    if [ "$(id -u)" -eq 0 ]; then
        setpriv --bounding-set -dac_override,-dac_read_search "$@"
    else
        "$@"
    fi
}
json() { python3 -c "import json,sys; rows=[json.loads(l) for l in open(sys.argv[1])]; $2" "$1"; }

# ---- the tree ---------------------------------------------------------------
src=$tmp/src
mkdir -p "$src/corpus"
if [ -d "$CORPUS" ]; then
    cp -r "$CORPUS"/. "$src/corpus/"
else
    "$here/../../scripts/make-samples.sh" "$src/corpus" >/dev/null
fi
chmod -R u+w "$src"
dcm=$(find "$src/corpus" -name '*.dcm' | head -1)
mkdir -p "$src/PATIENT1/STUDY1/IMAGES" "$src/empty dir"
for i in 1 2 3; do cp "$dcm" "$src/PATIENT1/STUDY1/IMAGES/IM00012$i"; done
dicomdir=$(find "$src/corpus" -name DICOMDIR | head -1)
if [ -n "$dicomdir" ]; then cp "$dicomdir" "$src/PATIENT1/DICOMDIR"; fi
printf 'not DICOM at all\n' > "$src/PATIENT1/notes.txt"
: > "$src/PATIENT1/empty"
head -c 3000000 /dev/urandom > "$src/big.bin"       # twelve 256 KiB segments
printf 'x' > "$src/name with spaces & \"quotes\""
chmod 640 "$src/PATIENT1/STUDY1/IMAGES/IM000121"
chmod 600 "$src/big.bin"
echo secret > "$src/unreadable"
chmod 000 "$src/unreadable"
ln -s notes.txt "$src/PATIENT1/link"
touch -d '2001-02-03 04:05:06' "$src/PATIENT1/notes.txt"
nfiles=$(find "$src" -type f | wc -l)
nread=$((nfiles - 1))   # all but the unreadable one
(cd "$src" && find . -type f ! -name unreadable -exec sha256sum {} + | sort -k2) > "$tmp/src.sums"
cp -a "$src" "$tmp/pristine"

# ---- encrypt -r: one report line per file, unreadable reported, run goes on --
expect 74 "encrypt -r with an unreadable file" \
    unpriv "$DCMSEAL" encrypt -r "$src" -o "$tmp/enc" --report "$tmp/enc.jsonl"
check "the unreadable file is named in one line" grep -q "unreadable: cannot open: Permission denied" "$tmp/err"
check "the symlink is reported" grep -q "link: symbolic link, not followed" "$tmp/err"
check "the summary is printed" grep -q "encrypt: $((nfiles + 1)) files: $nread encrypted" "$tmp/err"
check "no progress line when stderr is not a terminal" not grep -q $'\r' "$tmp/err"
check "the source tree is untouched" diff -r "$tmp/pristine" "$src"
check "report: one line per file and a summary" \
    json "$tmp/enc.jsonl" "assert len(rows) == $nfiles + 2 and 'summary' in rows[-1]"
check "report: outcomes match what happened" json "$tmp/enc.jsonl" "
by = {r['path'].split('/src/', 1)[1]: r for r in rows[:-1]}
assert by['unreadable']['outcome'] == 'failed' and by['unreadable']['exit'] == 74, by['unreadable']
assert by['PATIENT1/link']['outcome'] == 'ignored'
assert by['PATIENT1/notes.txt']['kind'] == 'opaque' and by['PATIENT1/empty']['kind'] == 'opaque'
assert by['PATIENT1/STUDY1/IMAGES/IM000121']['kind'] == 'dicom'
assert by['big.bin']['bytes'] == 3000000 and by['big.bin']['key'] == 'arch' and by['big.bin']['version'] == 1
enc = [r for r in rows[:-1] if r['outcome'] == 'encrypted']
assert len(enc) == $nread and all(r['output'].replace('/enc/', '/src/') == r['path'] for r in enc)
s = rows[-1]['summary']
assert (s['encrypted'], s['failed'], s['ignored'], s['exit'], s['complete']) == ($nread, 1, 1, 74, True), s
assert s['opaque'] == sum(r.get('kind') == 'opaque' for r in enc)"
check "names, permission bits and times are kept" \
    [ "$(cd "$src" && find . -type f ! -name unreadable -printf '%p %m %T@\n' | sort)" = \
      "$(cd "$tmp/enc" && find . -type f -printf '%p %m %T@\n' | sort)" ]
check "empty directories are kept" [ -d "$tmp/enc/empty dir" ]
# Every file below $1 is an encrypted object.
all_sealed() {
    local f
    while IFS= read -r -d '' f; do "$DCMSEAL" inspect "$f" >/dev/null 2>&1 || return 1; done \
        < <(find "$1" -type f -print0)
}
check "every output is an encrypted object" all_sealed "$tmp/enc"
uid=$(dcmdump -q +P 0008,0018 "$dcm" 2>/dev/null | sed -n 's/.*\[\(.*\)\].*/\1/p' | head -1)
check "no SOP Instance UID in plain text in the encrypted tree" [ -n "$uid" ] && not grep -rqF -- "$uid" "$tmp/enc"

# ---- decrypt -r: the whole tree back, byte for byte ---------------------------
expect 0 "decrypt -r" "$DCMSEAL" decrypt -r "$tmp/enc" -o "$tmp/dec"
check "decrypted tree is byte-identical" \
    [ "$(cd "$tmp/dec" && find . -type f -exec sha256sum {} + | sort -k2)" = "$(cat "$tmp/src.sums")" ]
check "decrypted tree keeps times and modes" \
    [ "$(cd "$src" && find . -type f ! -name unreadable -printf '%p %m %T@\n' | sort)" = \
      "$(cd "$tmp/dec" && find . -type f -printf '%p %m %T@\n' | sort)" ]
expect 64 "output inside the input is refused" "$DCMSEAL" decrypt -r "$tmp/enc" -o "$tmp/enc/x"
expect 64 "-o with --in-place is refused" "$DCMSEAL" decrypt -r --in-place "$tmp/enc" -o "$tmp/y"
# The same with a flush per file; and what --durability takes.
expect 0 "decrypt -r --durability file" "$DCMSEAL" decrypt -r --durability file "$tmp/enc" -o "$tmp/dec-file"
check "  the same tree, times and modes as with group commit" \
    [ "$(cd "$tmp/dec" && find . -type f -printf '%p %m %T@ %s\n' | sort)" = \
      "$(cd "$tmp/dec-file" && find . -type f -printf '%p %m %T@ %s\n' | sort)" ]
check "  byte for byte" diff -r -q "$tmp/dec" "$tmp/dec-file"
expect 64 "--durability takes group or file" \
    "$DCMSEAL" decrypt -r --durability sometimes "$tmp/enc" -o "$tmp/dec-bad"
check "  and says so in one line" one_line_naming "--durability sometimes: use group or file"
check "  and writes nothing" [ ! -e "$tmp/dec-bad" ]
expect 64 "--durability is for tree runs" \
    "$DCMSEAL" decrypt --durability file "$tmp/enc/big.bin" -o "$tmp/one.bin"
check "  and says so in one line" one_line_naming "--durability is for -r and --in-place"

# ---- verify -r: every object authenticates and its identity matches -----------
expect 0 "verify -r" "$DCMSEAL" verify -r "$tmp/enc" --report "$tmp/verify.jsonl"
ndicom=$(json "$tmp/enc.jsonl" "print(sum(r.get('kind') == 'dicom' for r in rows))")
check "verify checks the identity of every DICOM object ($ndicom)" \
    [ "$(grep -c 'OK (DICOM identity matches' "$tmp/out")" -eq "$ndicom" ] && [ "$ndicom" -gt 3 ]
check "verify report" json "$tmp/verify.jsonl" "assert rows[-1]['summary']['verified'] == $nread"
cp -p "$tmp/enc/big.bin" "$tmp/big.save"
printf '\x01' | dd of="$tmp/enc/big.bin" bs=1 seek=2000000 conv=notrunc 2>/dev/null
expect 65 "verify -r finds a flipped bit" "$DCMSEAL" verify -r -q "$tmp/enc"
check "and names the file" grep -q "big.bin: " "$tmp/err"
cp -p "$tmp/big.save" "$tmp/enc/big.bin"

# ---- a re-run skips what is done; a foreign file is not overwritten ------------
expect 0 "decrypt -r again" "$DCMSEAL" decrypt -r "$tmp/enc" -o "$tmp/dec" --report "$tmp/again.jsonl"
check "the re-run skips everything" json "$tmp/again.jsonl" \
    "s = rows[-1]['summary']; assert (s['decrypted'], s['skipped']) == (0, $nread), s"
echo "someone else's file" > "$tmp/dec/big.bin"
expect 64 "an output that is not ours is kept" "$DCMSEAL" decrypt -r "$tmp/enc" -o "$tmp/dec"
check "and named" grep -q "dec/big.bin: exists and is not an earlier run's output" "$tmp/err"
check "and left as it was" grep -q "someone else's file" "$tmp/dec/big.bin"
expect 0 "--force replaces it" "$DCMSEAL" decrypt -r --force "$tmp/enc" -o "$tmp/dec"
check "with the right content" cmp -s "$src/big.bin" "$tmp/dec/big.bin"

# ---- --verify-existing: a planted output with the input's size and time ------
# The cheap rule (plain-text size and modification time) is fooled by a file
# made to match; --verify-existing decrypts and compares, and is not.
head -c 3000000 /dev/zero > "$tmp/dec/big.bin"
touch -r "$src/big.bin" "$tmp/dec/big.bin"
expect 0 "decrypt -r: the cheap rule skips a planted output" \
    "$DCMSEAL" decrypt -r "$tmp/enc" -o "$tmp/dec" --report "$tmp/planted.jsonl"
check "as already done" json "$tmp/planted.jsonl" \
    "assert [r['reason'] for r in rows[:-1] if r['path'].endswith('/big.bin')] == ['already done']"
expect 64 "decrypt -r --verify-existing refuses it" \
    "$DCMSEAL" decrypt -r --verify-existing "$tmp/enc" -o "$tmp/dec" --report "$tmp/verified.jsonl"
check "and names it" grep -q "dec/big.bin: exists with this input's size and time, but not its content" "$tmp/err"
check "and leaves it as it was" cmp -s "$tmp/dec/big.bin" <(head -c 3000000 /dev/zero)
check "the real outputs are skipped, their content checked" json "$tmp/verified.jsonl" "
skipped = [r for r in rows[:-1] if r['outcome'] == 'skipped']
assert len(skipped) == $nread - 1 and all(r['reason'] == 'already done (content verified)' for r in skipped), skipped"
expect 0 "--force replaces it" "$DCMSEAL" decrypt -r --force "$tmp/enc" -o "$tmp/dec"
expect 0 "then --verify-existing skips everything" \
    "$DCMSEAL" decrypt -r --verify-existing "$tmp/enc" -o "$tmp/dec"
check "as the summary says" grep -q "0 decrypted, $nread skipped" "$tmp/err"
# encrypt -o: an object of other content, with the input's plain size and time.
cp -p "$tmp/enc/big.bin" "$tmp/big.save"
head -c 3000000 /dev/zero > "$tmp/zeros"
"$DCMSEAL" encrypt "$tmp/zeros" -o "$tmp/zeros.enc" 2>/dev/null || fail "encrypt zeros"
cp "$tmp/zeros.enc" "$tmp/enc/big.bin"
touch -r "$src/big.bin" "$tmp/enc/big.bin"
expect 74 "encrypt -r: the cheap rule skips a planted object (74: unreadable)" \
    unpriv "$DCMSEAL" encrypt -r "$src" -o "$tmp/enc"
check "as done" not grep -q "big.bin" "$tmp/err"
expect 74 "encrypt -r --verify-existing refuses it (74: unreadable, 64 too)" \
    unpriv "$DCMSEAL" encrypt -r --verify-existing "$src" -o "$tmp/enc"
check "and names it" grep -q "enc/big.bin: exists with this input's size and time, but not its content" "$tmp/err"
cp -p "$tmp/big.save" "$tmp/enc/big.bin"

# ---- interrupted, then resumed -------------------------------------------------
# Enough small files that a run takes a while with one worker.
mkdir -p "$tmp/many"
for d in $(seq 1 8); do
    mkdir -p "$tmp/many/S$d"
    for i in $(seq 1 60); do cp "$dcm" "$tmp/many/S$d/IM$i"; done
done
nmany=480
"$DCMSEAL" encrypt -r --jobs 1 "$tmp/many" -o "$tmp/many.enc" --report "$tmp/int.jsonl" 2>"$tmp/int.err" &
pid=$!
for _ in $(seq 500); do [ "$(wc -l < "$tmp/int.jsonl" 2>/dev/null || echo 0)" -ge 40 ] && break; sleep 0.01; done
kill -TERM "$pid"
wait "$pid"
rc=$?
check "SIGTERM stops the run with 143 ($rc)" [ "$rc" -eq 143 ]
check "and says how to finish" grep -q "stopped early (Terminated); re-run the same command" "$tmp/int.err"
done1=$(json "$tmp/int.jsonl" "s = rows[-1]['summary']; assert not s['complete']; print(s['encrypted'])")
check "part of the tree was done ($done1 of $nmany)" [ "$done1" -ge 40 ] && [ "$done1" -lt "$nmany" ]
expect 0 "the same command again" "$DCMSEAL" encrypt -r --jobs 2 "$tmp/many" -o "$tmp/many.enc" --report "$tmp/res.jsonl"
check "the re-run skips what was done and does the rest" json "$tmp/res.jsonl" \
    "s = rows[-1]['summary']; assert (s['skipped'], s['encrypted']) == ($done1, $nmany - $done1), s"
expect 0 "everything decrypts" "$DCMSEAL" decrypt -r "$tmp/many.enc" -o "$tmp/many.dec"
check "byte-identical after the interruption" diff -r "$tmp/many" "$tmp/many.dec"

# ---- shards: disjoint, and together the whole tree ------------------------------
for k in 1 2 3; do
    expect 0 "verify shard $k/3" "$DCMSEAL" verify -r -q --shard "$k/3" "$tmp/many.enc" --report "$tmp/shard$k.jsonl"
done
check "shards cover every file exactly once" python3 -c "
import json, sys
paths = [json.loads(l)['path'] for k in (1, 2, 3) for l in open('$tmp/shard%d.jsonl' % k)
         if 'summary' not in l]
sizes = [sum(1 for l in open('$tmp/shard%d.jsonl' % k)) - 1 for k in (1, 2, 3)]
assert len(paths) == len(set(paths)) == $nmany and min(sizes) > 0, (len(paths), sizes)"
expect 64 "a bad shard is refused" "$DCMSEAL" verify -r --shard 4/3 "$tmp/many.enc"

# ---- progress on a terminal, and only there ---------------------------------------
script -qfec "$DCMSEAL verify -r -q $tmp/many.enc --jobs 1" /dev/null > "$tmp/tty.out" 2>&1
check "--quiet: no progress line on a terminal" not grep -q "files/s" "$tmp/tty.out"
script -qfec "$DCMSEAL verify -r $tmp/many.enc --jobs 1" /dev/null > "$tmp/tty.out" 2>&1
check "a progress line on a terminal" grep -q "verify: [0-9]*/[0-9]*+\{0,1\} files, .* files/s" "$tmp/tty.out"
check "redrawn in place" grep -q $'\r' "$tmp/tty.out"

# ---- rewrap -r ----------------------------------------------------------------------
"$DCMSEAL" key rotate arch >/dev/null || fail "key rotate"
expect 0 "rewrap -r" "$DCMSEAL" rewrap -r "$tmp/enc" --report "$tmp/rewrap.jsonl"
check "rewrap report" json "$tmp/rewrap.jsonl" \
    "assert all(r['version'] == 2 for r in rows[:-1] if r['outcome'] == 'rewrapped'); assert rows[-1]['summary']['rewrapped'] == $nread"
expect 0 "verify after rewrap" "$DCMSEAL" verify -r -q "$tmp/enc"

# ---- --in-place: no plain file left on success, none broken when killed ---------
cp -a "$tmp/many" "$tmp/inplace"
expect 0 "encrypt --in-place -r" "$DCMSEAL" encrypt --in-place -r "$tmp/inplace"
check "no plain file left" all_sealed "$tmp/inplace"
expect 0 "encrypt --in-place again skips everything" "$DCMSEAL" encrypt --in-place -r "$tmp/inplace"
check "as the summary says" grep -q "0 encrypted, $nmany skipped" "$tmp/err"
# A damaged payload passes the header check that skips it; --verify-existing
# authenticates every skipped object.
cp -p "$tmp/inplace/S1/IM1" "$tmp/im1.save"
printf '\x01' | dd of="$tmp/inplace/S1/IM1" bs=1 seek=$(($(stat -c %s "$tmp/inplace/S1/IM1") - 20)) conv=notrunc 2>/dev/null
expect 0 "encrypt --in-place skips a damaged object by its header" "$DCMSEAL" encrypt --in-place -r "$tmp/inplace"
expect 65 "encrypt --in-place --verify-existing authenticates it" \
    "$DCMSEAL" encrypt --in-place -r --verify-existing "$tmp/inplace"
check "and names it" grep -q "S1/IM1: an encrypted object, but authentication failed" "$tmp/err"
check "left as it is" not cmp -s "$tmp/inplace/S1/IM1" "$tmp/im1.save"
cp -p "$tmp/im1.save" "$tmp/inplace/S1/IM1"
expect 0 "decrypt --in-place -r" "$DCMSEAL" decrypt --in-place -r "$tmp/inplace"
check "in-place round trip is byte-identical" diff -r "$tmp/many" "$tmp/inplace"

killed_ok=0 temps=0 trials=${DCMSEAL_TREE_KILLS:-4}
for t in $(seq 1 "$trials"); do
    rm -rf "$tmp/inplace"; cp -a "$tmp/many" "$tmp/inplace"
    # Not before the first file is done: SoftHSM 2.6.1 rewrites its token
    # file at login, and a kill there loses the token (see docs/KEYS.md).
    : > "$tmp/kill.jsonl"
    "$DCMSEAL" encrypt --in-place -r --jobs 2 "$tmp/inplace" --report "$tmp/kill.jsonl" 2>/dev/null &
    pid=$!
    for _ in $(seq 300); do [ -s "$tmp/kill.jsonl" ] && break; sleep 0.01; done
    sleep "0.$((RANDOM % 3))$((RANDOM % 10))"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    # Each file is its original or a whole encrypted object of it. A kill
    # between link and rename leaves a temporary name, which the re-run
    # removes.
    bad=0
    rm -rf "$tmp/check"
    "$DCMSEAL" decrypt -r -q "$tmp/inplace" -o "$tmp/check" 2>/dev/null
    while IFS= read -r -d '' f; do
        rel=${f#"$tmp/inplace/"}
        cmp -s "$f" "$tmp/many/$rel" || cmp -s "$tmp/check/$rel" "$tmp/many/$rel" || bad=$((bad + 1))
    done < <(find "$tmp/inplace" -type f ! -name '.*.dcmseal-*' -print0)
    temps=$((temps + $(find "$tmp/inplace" -name '.*.dcmseal-*' | wc -l)))
    "$DCMSEAL" encrypt --in-place -r -q "$tmp/inplace" 2>/dev/null
    rc=$?
    left=$(find "$tmp/inplace" -name '.*.dcmseal-*' | wc -l)
    count=$(find "$tmp/inplace" -type f | wc -l)
    if [ "$bad" -eq 0 ] && [ "$rc" -eq 0 ] && [ "$left" -eq 0 ] && [ "$count" -eq "$nmany" ] &&
        "$DCMSEAL" decrypt --in-place -r -q "$tmp/inplace" 2>/dev/null &&
        diff -r -q "$tmp/many" "$tmp/inplace" >/dev/null; then
        killed_ok=$((killed_ok + 1))
    else
        fail "kill $t: $bad broken, re-run exit $rc, $left temporary files left, $count files"
    fi
done
echo "in-place SIGKILL: $killed_ok of $trials trials clean; $temps temporary names left by kills, all removed by the re-run"
check "after each of $trials SIGKILLs: nothing broken, nothing left over, a re-run finishes" \
    [ "$killed_ok" -eq "$trials" ]

# A temporary name whose process on this machine is gone is removed by work
# in place; one whose process lives is left alone.
stale="$tmp/inplace/S1/$(temp_name IM1 "$(dead_pid)")"
live="$tmp/inplace/S1/$(temp_name IM2 $$)"
echo partial > "$stale"
echo partial > "$live"
expect 0 "in-place run over temporary names" "$DCMSEAL" encrypt --in-place -r "$tmp/inplace"
check "a dead process's temporary file is removed" [ ! -e "$stale" ]
check "and reported" grep -q "IM1.dcmseal-.*removed: temporary file left by an interrupted" "$tmp/err"
check "a running one's is left alone" [ -e "$live" ]
check "and reported" grep -q "IM2.dcmseal-.*temporary file of a dcmseal run in progress" "$tmp/err"
rm -f "$live"

# ---- symbolic links only when asked; --strict ------------------------------------------
rm -f "$src/unreadable"
expect 0 "--follow-symlinks" "$DCMSEAL" encrypt -r -q --follow-symlinks "$src" -o "$tmp/follow"
check "takes the link as the file it names" \
    bash -c '[ ! -L "$1" ] && "$2" decrypt "$1" -o - | cmp -s - "$3"' _ "$tmp/follow/PATIENT1/link" "$DCMSEAL" "$src/PATIENT1/notes.txt"
expect 64 "--follow-symlinks is refused in place" "$DCMSEAL" encrypt --in-place -r --follow-symlinks "$tmp/inplace"
expect 65 "--strict refuses what is not DICOM" "$DCMSEAL" encrypt -r --strict "$src" -o "$tmp/strict"
check "and names it" grep -q "notes.txt: not DICOM" "$tmp/err"
check "while DICOM files go through" [ -f "$tmp/strict/PATIENT1/STUDY1/IMAGES/IM000121" ]

finish
