#!/usr/bin/env bash
# Tree runs as an operator re-runs them, against a SoftHSM token made in a
# temporary directory: encrypt -r and decrypt -r re-run after a rotation
# (rewrap) skip what is done; -o new/deep/dir is made; a directory in the
# way of an output is refused before any work; a directory that cannot be
# made is not counted as a file; verify reports in the order given.
#   resume.sh DCMSEAL CORPUS_DIR
DCMSEAL=$1
CORPUS=$2
NAME=resume
. "$(dirname "$0")/lib.sh"

token_with_key "$tmp/hsm" resume-test arch
json() { python3 -c "import json,sys; rows=[json.loads(l) for l in open(sys.argv[1])]; s=rows[-1]['summary']; $2" "$1"; }

src=$tmp/src
mkdir -p "$src/a/b"
find "$CORPUS" -name '*.dcm' -size -300k 2>/dev/null | sort | head -4 | while read -r f; do cp "$f" "$src/a/b/"; done
[ -n "$(ls "$src/a/b")" ] || "$here/../../scripts/make-samples.sh" "$src/a/b" >/dev/null
printf 'not DICOM\n' > "$src/notes.txt"
head -c 700000 /dev/urandom > "$src/a/big.bin"
nfiles=$(find "$src" -type f | wc -l)

expect 0 "encrypt -r" "$DCMSEAL" encrypt -r "$src" -o "$tmp/enc" --report "$tmp/enc.jsonl"
check "all encrypted" json "$tmp/enc.jsonl" "assert s['encrypted'] == $nfiles, s"

# ---- -o new/deep/dir: the parents are made --------------------------------------
expect 0 "encrypt -r into a directory whose parents do not exist" \
    "$DCMSEAL" encrypt -r "$src" -o "$tmp/new/deep/enc" --report "$tmp/deep.jsonl"
check "all encrypted there" json "$tmp/deep.jsonl" "assert s['encrypted'] == $nfiles, s"
check "the tree is there" [ -f "$tmp/new/deep/enc/a/big.bin" ]
check "new parents follow the umask" [ "$(stat -c %a "$tmp/new")" = "$(printf '%o' $((0777 & ~0$(umask))))" ]
expect 64 "-o inside the input, also when it does not exist yet" "$DCMSEAL" encrypt -r "$src" -o "$src/x/y"
check "and nothing made there" [ ! -e "$src/x" ]
: > "$tmp/plainfile"
expect 74 "-o below a file" "$DCMSEAL" encrypt -r "$src" -o "$tmp/plainfile/enc"
check "one line naming it" one_line_naming "$tmp/plainfile: cannot create directory"

# ---- resume after rotation ------------------------------------------------------------
expect 0 "decrypt -r to a restore directory" "$DCMSEAL" decrypt -r "$tmp/enc" -o "$tmp/restore"
expect 0 "key rotate" "$DCMSEAL" key rotate arch
expect 0 "rewrap -r the encrypted tree" "$DCMSEAL" rewrap -r "$tmp/enc"
check "the objects' times changed (a rewrap writes them)" \
    [ "$(stat -c %Y "$tmp/enc/a/big.bin")" != "$(stat -c %Y "$src/a/big.bin")" ]
expect 0 "encrypt -r again after the rotation" \
    "$DCMSEAL" encrypt -r "$src" -o "$tmp/enc" --report "$tmp/again.jsonl"
check "it skips every file" json "$tmp/again.jsonl" "assert (s['encrypted'], s['skipped'], s['failed']) == (0, $nfiles, 0), s"
check "and left the objects under v2" bash -c '"$1" inspect --json "$2" | grep -q "\"version\":2"' _ "$DCMSEAL" "$tmp/enc/a/big.bin"
expect 0 "decrypt -r again into the restore directory" \
    "$DCMSEAL" decrypt -r "$tmp/enc" -o "$tmp/restore" --report "$tmp/again2.jsonl"
check "it skips every file" json "$tmp/again2.jsonl" "assert (s['decrypted'], s['skipped'], s['failed']) == (0, $nfiles, 0), s"
# What is not an earlier run's output is still refused: same size, same
# name, other bytes; and a source that changed since.
cp -p "$tmp/restore/a/big.bin" "$tmp/big.save"
head -c 700000 /dev/urandom > "$tmp/restore/a/big.bin"
expect 64 "a foreign file of the same size in the restore directory" \
    "$DCMSEAL" decrypt -r "$tmp/enc" -o "$tmp/restore"
check "named" grep -q "restore/a/big.bin: exists and is not an earlier run's output" "$tmp/err"
cp -p "$tmp/big.save" "$tmp/restore/a/big.bin"
head -c 700000 /dev/urandom > "$src/a/big.bin"
expect 64 "a source changed since (same size)" "$DCMSEAL" encrypt -r "$src" -o "$tmp/enc"
check "its old output is named" grep -q "enc/a/big.bin: exists and is not an earlier run's output" "$tmp/err"

# ---- a directory in the way: said before any work ------------------------------------
mkdir -p "$tmp/outdir"
expect 64 "encrypt FILE -o DIR --force" "$DCMSEAL" encrypt --force "$src/a/big.bin" -o "$tmp/outdir"
check "one line: it is a directory" one_line_naming "$tmp/outdir: output is a directory"
check "no temporary file left in it" [ -z "$(ls -A "$tmp/outdir")" ]
# strace shows that nothing was encrypted: the input was opened, never read.
# (LeakSanitizer cannot run under ptrace: off for this one, in a sanitizer build.)
expect 64 "the same under strace" env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    strace -f -qq -e trace=openat,read,pread64,close -o "$tmp/strace" \
    "$DCMSEAL" encrypt --force "$src/a/big.bin" -o "$tmp/outdir"
# input_reads: the reads of the input's descriptor between its open and close.
input_reads() {
    awk 'fd == "" && /openat\(.*a\/big\.bin", O_RDONLY/ { fd = $NF; opened = 1; next }
         fd != "" && $0 ~ "close\\(" fd "\\)" { fd = "" }
         fd != "" && $0 ~ "read(64)?\\(" fd ", " { n++ }
         END { print opened ? n + 0 : "never opened" }' "$tmp/strace"
}
check "the input was opened, and never read ($(input_reads))" [ "$(input_reads)" = 0 ]
mkdir -p "$tmp/clash/a/big.bin"
expect 64 "a directory where a tree's file goes, with --force" \
    "$DCMSEAL" encrypt -r --force "$src" -o "$tmp/clash" --report "$tmp/clash.jsonl"
check "that file fails, named" grep -q "clash/a/big.bin: output is a directory" "$tmp/err"
check "the others are encrypted" json "$tmp/clash.jsonl" "assert (s['encrypted'], s['failed']) == ($nfiles - 1, 1), s"

# ---- a directory that cannot be made is not a file -----------------------------------
if [ "$(id -u)" -eq 0 ]; then
    unpriv() { setpriv --bounding-set -dac_override,-dac_read_search "$@"; }
else
    unpriv() { "$@"; }
fi
mkdir -p "$tmp/ro/enc/a"
chmod 555 "$tmp/ro/enc/a"
expect 74 "encrypt -r where a directory cannot be made" \
    unpriv "$DCMSEAL" encrypt -r "$src" -o "$tmp/ro/enc" --report "$tmp/ro.jsonl"
chmod 755 "$tmp/ro/enc/a"
check "the summary counts files, and the directory apart" \
    grep -q "encrypt: $nfiles files: 1 encrypted (1 opaque), $((nfiles - 1)) failed; 1 directory not made" "$tmp/err"
check "report: the directory is no file" json "$tmp/ro.jsonl" "
assert s['files'] == $nfiles and s['directories_failed'] == 1, s
d = [r for r in rows[:-1] if r.get('kind') == 'directory']
assert len(d) == 1 and d[0]['outcome'] == 'failed' and d[0]['output'].endswith('/ro/enc/a/b'), d"

# ---- verify reports in the order given --------------------------------------------------
mapfile -t objs < <(find "$tmp/enc" -type f | sort -r)
orders=0
for run in 1 2 3 4 5 6; do
    "$DCMSEAL" verify --jobs 4 "${objs[@]}" > "$tmp/verify.out" 2>/dev/null
    [ "$(sed 's/: OK.*//' "$tmp/verify.out")" = "$(printf '%s\n' "${objs[@]}")" ] && orders=$((orders + 1))
done
check "verify F... prints in the order of its arguments, every run ($orders of 6)" [ "$orders" -eq 6 ]
"$DCMSEAL" verify --jobs 1 -r "$tmp/enc" > "$tmp/one.out" 2>/dev/null
"$DCMSEAL" verify --jobs 4 -r "$tmp/enc" > "$tmp/four.out" 2>/dev/null
check "verify -r: the walk's order, whatever the workers" [ -s "$tmp/one.out" ] && cmp -s "$tmp/one.out" "$tmp/four.out"
# More entries than the lines held back at once (4096), most of them
# directories, which have no line: the run must not wait for them forever.
mkdir -p "$tmp/many"
(cd "$tmp/many" && mkdir d{1..5000})
cp "$tmp/enc/notes.txt" "$tmp/many/d1/first"
cp "$tmp/enc/notes.txt" "$tmp/many/d4999/last"
expect 0 "verify -r over 5000 directories" timeout 120 "$DCMSEAL" verify --jobs 2 -r "$tmp/many"
check "both objects verified" [ "$(grep -c ': OK' "$tmp/out")" -eq 2 ]
expect 0 "decrypt -r of them (each directory made)" timeout 120 "$DCMSEAL" decrypt -r "$tmp/many" -o "$tmp/many.out"
check "5000 directories made" [ "$(find "$tmp/many.out" -mindepth 1 -type d | wc -l)" -eq 5000 ]

finish
