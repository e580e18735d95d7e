#!/usr/bin/env bash
# Path races in tree runs and the modes of new files (issue 11, items 1 and
# 2). A preload library stops dcmseal at a chosen system call while a file
# is in flight; the test then swaps a directory of the tree for a symbolic
# link to another one, lets it go on, and checks that nothing outside the
# tree changed and that the file in the tree is its original or whole.
#   races.sh DCMSEAL CORPUS_DIR PAUSE_PRELOAD
DCMSEAL=$1
CORPUS=$2
PRELOAD=$3
NAME=races
. "$(dirname "$0")/lib.sh"

token_with_key "$tmp/hsm" races-test k
dcm=$(find "$CORPUS" -name '*.dcm' -size -200k 2>/dev/null | head -1)
if [ -z "$dcm" ]; then
    "$here/../../scripts/make-samples.sh" "$tmp/samples" >/dev/null
    dcm=$(find "$tmp/samples" -name '*.dcm' | head -1)
fi
fifo=$tmp/fifo
mkfifo "$fifo"
# The preload library comes before the sanitizer's runtime in ASan builds.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

# run_paused AT CMD...: starts CMD under the preload library; returns once
# it waits at AT (see tests/support/pause_preload.c), with the call in
# $tmp/paused, or fails after a minute.
run_paused() {
    local at=$1
    shift
    LD_PRELOAD=$PRELOAD DCMSEAL_PAUSE_AT=$at DCMSEAL_PAUSE_FIFO=$fifo \
        "$@" >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    if timeout 60 cat "$fifo" >"$tmp/paused" && [ -s "$tmp/paused" ]; then
        return 0
    fi
    fail "never stopped at $at: $(head -c 300 "$tmp/err")"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 1
}
# resume: lets it go on and waits for it; its exit status is then $rc.
resume() {
    timeout 60 bash -c ': > "$1"' _ "$fifo"
    wait "$pid"
    rc=$?
}
# swap DIR TARGET: DIR becomes a symbolic link to TARGET (the real one is
# kept as DIR.real); unswap DIR puts it back.
swap() { mv "$1" "$1.real" && ln -s "$2" "$1"; }
unswap() { rm -f "$1" && mv "$1.real" "$1"; }
# Whether file $1 is $2 itself, or an encrypted object that decrypts to it.
original_or_whole() {
    cmp -s "$1" "$2" || { "$DCMSEAL" decrypt "$1" -o - 2>/dev/null | cmp -s - "$2"; }
}
sealed_of() { "$DCMSEAL" inspect "$1" >/dev/null 2>&1 && original_or_whole "$1" "$2"; }
snapshot() { (cd "$1" && find . -printf '%p %y %m %s\n' -type f -exec sha256sum {} + | sort); }
temps() { find "$@" -name '.*.dcmseal-*' | wc -l; }
# Root may read anything; a second user stands for whoever may write only
# into an upload directory.
if [ "$(id -u)" -eq 0 ]; then
    as_other() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
    chmod 711 "$tmp"
else
    as_other() { "$@"; }
fi

# ---- encrypt --in-place -r: a directory swapped while its file is in flight ----
t=$tmp/a
mkdir -p "$t/tree/sub" "$t/outside"
cp "$dcm" "$t/tree/sub/IM1"
printf 'outside the tree: must not change\n' > "$t/outside/IM1"
before=$(snapshot "$t/outside")
# At the link of the finished output into its directory.
if run_paused 'link:*' "$DCMSEAL" encrypt --in-place -r --jobs 1 "$t/tree"; then
    swap "$t/tree/sub" "$t/outside"
    resume
    unswap "$t/tree/sub"
    check "encrypt --in-place: exit 0 ($rc: $(head -c 200 "$tmp/err"))" [ "$rc" -eq 0 ]
    check "encrypt --in-place: nothing outside the tree changed" \
        [ "$(snapshot "$t/outside")" = "$before" ]
    check "encrypt --in-place: the file reported encrypted is encrypted, and whole" \
        sealed_of "$t/tree/sub/IM1" "$dcm"
    check "encrypt --in-place: no temporary file left" [ "$(temps "$t")" -eq 0 ]
fi

# The same, but the file itself is replaced in its directory meanwhile: the
# newcomer is not overwritten by the output of the file that was read.
t=$tmp/a2
mkdir -p "$t/tree"
cp "$dcm" "$t/tree/IM1"
printf 'a newer file, put in place during the run\n' > "$t/newer"
if run_paused 'link:*' "$DCMSEAL" encrypt --in-place -r --jobs 1 "$t/tree"; then
    mv "$t/newer" "$t/tree/IM1"
    resume
    check "a file replaced in flight: exit 74 ($rc)" [ "$rc" -eq 74 ]
    check "and said" grep -q "IM1: replaced or removed while being worked on; left as it is" "$tmp/err"
    check "the newcomer is kept" grep -q "a newer file" "$t/tree/IM1"
    check "no temporary file left" [ "$(temps "$t")" -eq 0 ]
fi

# ---- decrypt --in-place -r as root: no file planted outside an upload area --
t=$tmp/b
mkdir -p "$t/tree/upload/sub" "$t/rootonly"
chmod 755 "$t" "$t/tree"
chmod 700 "$t/rootonly"
"$DCMSEAL" encrypt "$dcm" -o "$t/tree/upload/sub/evil" 2>/dev/null || fail "encrypt"
chown -R 65534:65534 "$t/tree/upload" 2>/dev/null
if run_paused 'link:*' "$DCMSEAL" decrypt --in-place -r --jobs 1 "$t/tree"; then
    # What the owner of the upload directory can do, and all they need.
    as_other mv "$t/tree/upload/sub" "$t/tree/upload/sub.real"
    as_other ln -s "$t/rootonly" "$t/tree/upload/sub"
    resume
    as_other rm "$t/tree/upload/sub"
    as_other mv "$t/tree/upload/sub.real" "$t/tree/upload/sub"
    check "decrypt --in-place: exit 0 ($rc: $(head -c 200 "$tmp/err"))" [ "$rc" -eq 0 ]
    check "decrypt --in-place: nothing planted in the root-only directory" \
        [ -z "$(ls -A "$t/rootonly")" ]
    check "decrypt --in-place: the file in the tree is decrypted and whole" \
        cmp -s "$t/tree/upload/sub/evil" "$dcm"
fi

# ---- -o DST: a symbolic link planted in DST is not followed ------------------
t=$tmp/c
mkdir -p "$t/src/sub" "$t/dst" "$t/outside"
cp "$dcm" "$t/src/sub/IM1"
cp "$dcm" "$t/src/IM0"
ln -s "$t/outside" "$t/dst/sub"
expect 74 "encrypt -r into a DST with a planted link" "$DCMSEAL" encrypt -r --jobs 1 "$t/src" -o "$t/dst"
check "nothing written where the link points" [ -z "$(ls -A "$t/outside")" ]
check "the link is named" grep -q "dst/sub: exists and is not a directory (a symbolic link is not followed)" "$tmp/err"
check "and the files below it failed" grep -q "dst/sub/IM1: cannot create output" "$tmp/err"
check "the rest of the tree is done" sealed_of "$t/dst/IM0" "$dcm"
check "the link is left as it was" [ -L "$t/dst/sub" ]

# The same directory swapped for a link while a file below it is in flight.
rm "$t/dst/sub"
if run_paused 'link:*' "$DCMSEAL" encrypt -r --jobs 1 "$t/src" -o "$t/dst"; then
    swap "$t/dst/sub" "$t/outside"
    resume
    unswap "$t/dst/sub"
    check "-o, swapped in flight: exit 0 ($rc: $(head -c 200 "$tmp/err"))" [ "$rc" -eq 0 ]
    check "-o, swapped in flight: nothing written where the link points" \
        [ -z "$(ls -A "$t/outside")" ]
    check "-o, swapped in flight: the output is in the directory made for it" \
        sealed_of "$t/dst/sub/IM1" "$dcm"
fi

# ---- verify -r: the file verified is the file in the tree -------------------
t=$tmp/e
mkdir -p "$t/tree/sub" "$t/outside"
"$DCMSEAL" encrypt "$dcm" -o "$t/tree/sub/IM1" 2>/dev/null || fail "encrypt"
cp "$t/tree/sub/IM1" "$t/outside/IM1"
size=$(stat -c %s "$t/tree/sub/IM1")
printf '\x01' | dd of="$t/tree/sub/IM1" bs=1 seek=$((size - 20)) conv=notrunc 2>/dev/null
# At the open of the file, after the walk found it.
if run_paused 'open:IM1' "$DCMSEAL" verify -r --jobs 1 "$t/tree"; then
    swap "$t/tree/sub" "$t/outside"
    resume
    unswap "$t/tree/sub"
    check "verify: the damaged file in the tree fails (65, not $rc)" [ "$rc" -eq 65 ]
    check "verify: and is named" grep -q "sub/IM1: " "$tmp/err"
fi

# ---- stale temporary files: removed from the tree, not through a link -------
stale=$(temp_name IM1 "$(dead_pid)")
t=$tmp/f
mkdir -p "$t/tree/sub" "$t/outside"
cp "$dcm" "$t/tree/sub/IM1"
echo partial > "$t/tree/sub/$stale"
echo 'not ours' > "$t/outside/$stale"
if run_paused "unlink:$stale" "$DCMSEAL" encrypt --in-place -r --jobs 1 "$t/tree"; then
    swap "$t/tree/sub" "$t/outside"
    resume
    unswap "$t/tree/sub"
    check "stale temporary file: exit 0 ($rc: $(head -c 200 "$tmp/err"))" [ "$rc" -eq 0 ]
    check "the file of that name outside the tree is still there" [ -e "$t/outside/$stale" ]
    check "the stale one in the tree is removed" [ ! -e "$t/tree/sub/$stale" ]
fi

# ---- modes: the umask, never more than the source, 0600 until committed ----
t=$tmp/m
mkdir -p "$t/src/sub"
cp "$dcm" "$t/src/sub/IM1"
cp "$dcm" "$t/src/IM2"
chmod 644 "$t/src/sub/IM1"
chmod 604 "$t/src/IM2"
"$DCMSEAL" encrypt -r -q "$t/src" -o "$t/enc" 2>/dev/null || fail "encrypt"
chmod 644 "$t/enc/sub/IM1"
chmod 604 "$t/enc/IM2"
expect 0 "decrypt -r under umask 077" bash -c 'umask 077 && exec "$@"' _ \
    "$DCMSEAL" decrypt -r "$t/enc" -o "$t/dec077"
check "a 0644 object decrypts to 0600 under umask 077 ($(stat -c %a "$t/dec077/sub/IM1"))" \
    [ "$(stat -c %a "$t/dec077/sub/IM1")" = 600 ]
check "a 0604 object to 0600" [ "$(stat -c %a "$t/dec077/IM2")" = 600 ]
expect 0 "decrypt one file under umask 077" bash -c 'umask 077 && exec "$@"' _ \
    "$DCMSEAL" decrypt "$t/enc/sub/IM1" -o "$t/one077"
check "one file too ($(stat -c %a "$t/one077"))" [ "$(stat -c %a "$t/one077")" = 600 ]
expect 0 "decrypt -r under umask 022" bash -c 'umask 022 && exec "$@"' _ \
    "$DCMSEAL" decrypt -r "$t/enc" -o "$t/dec022"
check "under umask 022 the source's bits: 0644" [ "$(stat -c %a "$t/dec022/sub/IM1")" = 644 ]
check "and 0604, never more than the source" [ "$(stat -c %a "$t/dec022/IM2")" = 604 ]
cp -a "$t/enc" "$t/inplace"
chmod 640 "$t/inplace/sub/IM1"
expect 0 "decrypt --in-place under umask 077" bash -c 'umask 077 && exec "$@"' _ \
    "$DCMSEAL" decrypt --in-place -r "$t/inplace"
check "in place, a file keeps its own bits (0640)" [ "$(stat -c %a "$t/inplace/sub/IM1")" = 640 ]

# Without O_TMPFILE (as on NFS) the temporary file has a name from the start:
# it is 0600 while the plain text is written, whatever the final mode.
rm -rf "$t/dec022"
if run_paused 'write:.IM1.dcmseal-*' env DCMSEAL_NO_TMPFILE=1 bash -c 'umask 022 && exec "$@"' _ \
    "$DCMSEAL" decrypt -r --jobs 1 "$t/enc" -o "$t/dec022"; then
    written=$(awk '{print $2}' "$tmp/paused")
    mode=$(stat -c %a "$written" 2>/dev/null)
    resume
    check "no O_TMPFILE: the plain text is written to a temporary name" \
        [ -n "$mode" ] && [[ "$written" == "$t/dec022/sub/.IM1.dcmseal-"* ]]
    check "which is 0600 until committed (not $mode)" [ "$mode" = 600 ]
    check "no O_TMPFILE: exit 0 ($rc: $(head -c 200 "$tmp/err"))" [ "$rc" -eq 0 ]
    check "then 0644, the source's" [ "$(stat -c %a "$t/dec022/sub/IM1")" = 644 ]
    check "and whole" cmp -s "$t/dec022/sub/IM1" "$dcm"
    check "no temporary name left" [ "$(temps "$t/dec022")" -eq 0 ]
fi

# ---- directories made below DST are durable before their files are reported ---
# strace -y names each descriptor's file: every mkdir of the run must be
# followed by an fsync of its parent directory before the report line of the
# file below it is written. Only the start of each call is matched (another
# thread's call may split a line); the exit status says that they worked.
t=$tmp/p
mkdir -p "$t/src/a/b"
cp "$dcm" "$t/src/a/b/IM1"
# (LeakSanitizer cannot run under ptrace.)
if ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" \
    strace -f -y -s 300 -e trace=mkdir,mkdirat,fsync,write -o "$t/trace" \
    "$DCMSEAL" encrypt -r -q --jobs 1 "$t/src" -o "$t/dst" --report "$t/r.jsonl" 2>"$tmp/err"; then
    check "each directory made is flushed in its parent before the file below is reported" \
        python3 - "$t/trace" "$t" <<'PY'
import os, re, sys
lines = open(sys.argv[1]).read().splitlines()
made = []  # (line, parent directory)
for i, l in enumerate(lines):
    m = re.search(r'mkdirat\(\d+<([^>]*)>, "([^"]+)", \d+', l)
    if m:
        made.append((i, m.group(1)))
    m = re.search(r'mkdir\("([^"]+)", \d+', l)
    if m:
        made.append((i, os.path.dirname(m.group(1).rstrip('/'))))
report = [i for i, l in enumerate(lines) if re.search(r'write\(\d+<[^>]*r\.jsonl>, .*IM1', l)]
assert len(made) == 3 and len(report) == 1, (made, report)
for i, parent in made:
    synced = [j for j in range(i + 1, report[0])
              if re.search(r'fsync\(\d+<%s>' % re.escape(parent), lines[j])]
    assert synced, 'no fsync of %s after line %d before the report' % (parent, i)
PY
else
    fail "encrypt -r under strace: $(head -c 300 "$tmp/err")"
fi

# ---- deep trees: bounded by the open-files limit, reported beyond it --------
# verify -r --jobs 1 under ulimit -n 1000 may hold (1000 - 403 - 64) / 4 =
# 133 levels (see depth_limit in cli/batch.c).
t=$tmp/deep
mkdir -p "$t/ok" "$t/deep"
p=$t/ok
for _ in $(seq 100); do p=$p/d; done
mkdir -p "$p"
"$DCMSEAL" encrypt "$dcm" -o "$p/IM1" 2>/dev/null || fail "encrypt"
p=$t/deep
for _ in $(seq 150); do p=$p/d; done
mkdir -p "$p"
"$DCMSEAL" encrypt "$dcm" -o "$p/IM1" 2>/dev/null || fail "encrypt"
expect 0 "100 levels under ulimit -n 1000" bash -c 'ulimit -n 1000 && exec "$@"' _ \
    "$DCMSEAL" verify -r --jobs 1 "$t/ok"
check "and the file at the bottom verified" grep -q "d/IM1: OK" "$tmp/out"
expect 74 "150 levels under ulimit -n 1000" bash -c 'ulimit -n 1000 && exec "$@"' _ \
    "$DCMSEAL" verify -r --jobs 1 "$t/deep"
check "the deepest directory it may not enter is named, once" \
    [ "$(grep -c "more than 133 directory levels deep: not entered (see ulimit -n)" "$tmp/err")" -eq 1 ]
# Whatever the limit, a tree made deep on purpose ends the walk's descent at
# 1024 levels, not its thread's stack.
p=$t/deeper
for _ in $(seq 1030); do p=$p/d; done
mkdir -p "$p"
cp "$dcm" "$p/IM1"
expect 74 "1030 levels" "$DCMSEAL" verify -r --jobs 1 "$t/deeper"
check "stop at 1024, said once" [ "$(grep -c "more than 1024 directory levels deep: not entered$" "$tmp/err")" -eq 1 ]

# ---- rewrap -r: the object rewrapped is the one in the tree -------------------
t=$tmp/d
mkdir -p "$t/tree/sub" "$t/outside"
"$DCMSEAL" encrypt "$dcm" -o "$t/tree/sub/IM1" 2>/dev/null || fail "encrypt"
"$DCMSEAL" encrypt "$dcm" -o "$t/outside/IM1" 2>/dev/null || fail "encrypt"
before=$(snapshot "$t/outside")
"$DCMSEAL" key rotate k >/dev/null || fail "key rotate"
if run_paused 'open:IM1' "$DCMSEAL" rewrap -r --jobs 1 "$t/tree"; then
    swap "$t/tree/sub" "$t/outside"
    resume
    unswap "$t/tree/sub"
    check "rewrap: exit 0 ($rc: $(head -c 200 "$tmp/err"))" [ "$rc" -eq 0 ]
    check "rewrap: the object outside the tree is untouched" [ "$(snapshot "$t/outside")" = "$before" ]
    check "rewrap: the object in the tree is under v2" \
        bash -c '"$1" inspect "$2" | grep -q "key: *k v2"' _ "$DCMSEAL" "$t/tree/sub/IM1"
fi

finish
