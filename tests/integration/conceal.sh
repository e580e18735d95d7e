#!/usr/bin/env bash
# Trees with concealed names (docs/FORMAT.md "Concealed names"), against a
# SoftHSM token made in a temporary directory. A source laid out as PACS and
# storescp trees often are (folders and files named by Study, Series and SOP
# Instance UID, a patient ID folder) is encrypted with --conceal-names:
#  - no output path, and no byte of any object, carries a UID or the
#    patient folder's name; every name is ab/cd/<32 hex digits>;
#  - --report lists both names; inspect shows the original only with the
#    token; the same path gets the same name (--shard, a second tree);
#  - a re-run skips what is done; verify -r and rewrap -r work on the tree;
#  - decrypt -r restores the original tree byte for byte, with names, modes
#    and modification times, and makes no fan-out folder;
#  - a symbolic link planted in DST where a fan-out folder or a restored
#    folder goes is not followed;
#  - a tree of 1200 folders goes both ways under ulimit -n 1024.
#   conceal.sh DCMSEAL CORPUS_DIR
DCMSEAL=$1
CORPUS=$2
NAME=conceal
. "$(dirname "$0")/lib.sh"

export DCMSEAL_RETRY_MAX=1
token_with_key "$tmp/hsm" conceal-test kek
uid() { dcmdump -q -Un +P "$2" "$1" 2>/dev/null | sed -n 's/^[^[]*\[\([^]]*\)\].*/\1/p' | head -1; }

# ---- a source named by UIDs ------------------------------------------------------
src=$tmp/pacs
mkdir -p "$src"
n=0
uids=$tmp/uids
: > "$uids"
for f in $(find "$CORPUS" -name '*.dcm' -size -400k 2>/dev/null | sort | head -12); do
    study=$(uid "$f" 0020,000d) series=$(uid "$f" 0020,000e) sop=$(uid "$f" 0008,0018)
    [ -n "$study" ] && [ -n "$series" ] && [ -n "$sop" ] || continue
    n=$((n + 1))
    dir="$src/PAT-0042$n/$study/$series"
    mkdir -p "$dir"
    cp "$f" "$dir/$sop.dcm"
    chmod $((n % 2 ? 640 : 600)) "$dir/$sop.dcm"
    touch -d "2021-0$((n % 9 + 1))-1$((n % 9)) 10:2$((n % 6)):0$((n % 9)).$n" "$dir/$sop.dcm"
    printf '%s\n%s\n%s\nPAT-0042%s\n' "$study" "$series" "$sop" "$n" >> "$uids"
done
if [ "$n" -lt 3 ]; then # no corpus: samples made with DCMTK
    "$here/../../scripts/make-samples.sh" "$tmp/gen" >/dev/null
    for f in $(find "$tmp/gen" -type f | sort | head -6); do
        study=$(uid "$f" 0020,000d) sop=$(uid "$f" 0008,0018)
        n=$((n + 1))
        mkdir -p "$src/PAT-0042$n/$study"
        cp "$f" "$src/PAT-0042$n/$study/$sop.dcm"
        printf '%s\n%s\nPAT-0042%s\n' "$study" "$sop" "$n" >> "$uids"
    done
fi
printf 'referral letter\n' > "$src/PAT-00421/notes.txt"
nfiles=$(find "$src" -type f | wc -l)
check "a source of $nfiles files named by UIDs" [ "$nfiles" -gt 3 ]

# no_uid WHERE: nothing of $uids in the file names below WHERE.
no_uid() {
    local hits=0 u
    while IFS= read -r u; do
        [ -n "$u" ] && find "$1" | grep -qF -- "$u" && hits=$((hits + 1))
    done < "$uids"
    [ "$hits" -eq 0 ]
}

# ---- encrypt ------------------------------------------------------------------
enc=$tmp/enc
expect 0 "encrypt -r --conceal-names" "$DCMSEAL" encrypt -r "$src" -o "$enc" --conceal-names --report "$tmp/enc.jsonl"
check "every file encrypted" grep -q "encrypt: $nfiles files: $nfiles encrypted" "$tmp/err"
check "no UID or patient folder in any output path" no_uid "$enc"
check "every name is ab/cd/<32 hex>, under its own fan-out" [ "$(cd "$enc" && find . -type f |
    grep -cE '^\./([0-9a-f]{2})/([0-9a-f]{2})/\1\2[0-9a-f]{28}$')" -eq "$nfiles" ]
check "no other folder" [ "$(cd "$enc" && find . -mindepth 1 -type d | grep -cvE '^\./[0-9a-f]{2}(/[0-9a-f]{2})?$')" -eq 0 ]
leaks=0
while IFS= read -r u; do
    [ -n "$u" ] && grep -rqaF -- "$u" "$enc" && leaks=$((leaks + 1))
done < "$uids"
check "no UID in plain text inside any object ($leaks)" [ "$leaks" -eq 0 ]
check "the report lists both names" python3 - "$tmp/enc.jsonl" "$src" "$enc" <<'EOF'
import json, os, re, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if '"path"' in l]
ok = len(lines) > 0
for l in lines:
    ok &= l["path"].startswith(sys.argv[2] + "/") and os.path.isfile(l["path"])
    ok &= re.fullmatch(re.escape(sys.argv[3]) + r"/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{32}", l["output"]) is not None
    ok &= l["format_version"] == 2 and l["origin"] == "present"
sys.exit(0 if ok else 1)
EOF
one=$(python3 -c 'import json,sys; l=[json.loads(x) for x in open(sys.argv[1]) if "\"path\"" in x and x.find(".dcm\"")>0][0]; print(l["output"]); print(l["path"])' "$tmp/enc.jsonl")
obj=$(echo "$one" | sed -n 1p)
orig=$(echo "$one" | sed -n 2p)
rel=${orig#$src/}

# ---- inspect: the original only with the token --------------------------------------
expect 0 "inspect without the token" "$DCMSEAL" inspect "$obj"
check "says concealed, not the name" grep -q '^name: *concealed' "$tmp/out" && not grep -qF -- "$rel" "$tmp/out"
expect 0 "inspect --token" "$DCMSEAL" inspect --token "$DCMSEAL_TOKEN" "$obj"
check "shows the original name" grep -qF -- "original name:   $rel (mode 0" "$tmp/out"
expect 0 "inspect --json --token" "$DCMSEAL" inspect --json --token "$DCMSEAL_TOKEN" "$obj"
check "json: concealed, original" grep -q '"concealed":true,"original":{"path":' "$tmp/out"

# ---- the same names every time ----------------------------------------------------
expect 0 "a re-run" "$DCMSEAL" encrypt -r "$src" -o "$enc" --conceal-names
check "skips everything" grep -q "encrypt: $nfiles files: 0 encrypted, $nfiles skipped" "$tmp/err"
rm "$obj"
expect 0 "a re-run after one output is lost" "$DCMSEAL" encrypt -r "$src" -o "$enc" --conceal-names
check "makes exactly that one again" grep -q "encrypt: $nfiles files: 1 encrypted, $((nfiles - 1)) skipped" "$tmp/err"
check "under the same name" [ -f "$obj" ]
for k in 1 2; do
    expect 0 "shard $k/2" "$DCMSEAL" encrypt -r "$src" -o "$tmp/sharded" --conceal-names --shard "$k/2"
done
check "two shards make the same names as one run" diff <(cd "$enc" && find . -type f | sort) <(cd "$tmp/sharded" && find . -type f | sort)

# ---- verify, rewrap ------------------------------------------------------------------
expect 0 "verify -r" "$DCMSEAL" verify -r "$enc" --report "$tmp/verify.jsonl"
check "all verified" grep -q "verify: $nfiles files: $nfiles verified" "$tmp/err"
check "verify's report has the original names" [ "$(grep -c '"original":' "$tmp/verify.jsonl")" -eq "$nfiles" ]
find "$enc" -type f | sort > "$tmp/names.before"
expect 0 "key rotate" "$DCMSEAL" key rotate kek
expect 0 "rewrap -r" "$DCMSEAL" rewrap -r "$enc"
check "all rewrapped" grep -q "rewrap: $nfiles files: $nfiles rewrapped" "$tmp/err"
check "the names did not change" diff "$tmp/names.before" <(find "$enc" -type f | sort)
expect 0 "verify -r after rotation" "$DCMSEAL" verify -r "$enc"

# ---- decrypt: the original tree comes back -------------------------------------------
expect 0 "decrypt -r" "$DCMSEAL" decrypt -r "$enc" -o "$tmp/restored" --report "$tmp/dec.jsonl"
check "all decrypted" grep -q "decrypt: $nfiles files: $nfiles decrypted" "$tmp/err"
check "byte-identical, under the original names" diff -r "$src" "$tmp/restored"
check "modes and times restored" diff <(cd "$src" && find . -type f -exec stat -c '%n %a %y' {} + | sort) \
    <(cd "$tmp/restored" && find . -type f -exec stat -c '%n %a %y' {} + | sort)
check "no fan-out folder in the restored tree" [ "$(cd "$tmp/restored" && find . -type d -regex '.*/[0-9a-f][0-9a-f]' | wc -l)" -eq 0 ]
check "the decrypt report lists both names" python3 - "$tmp/dec.jsonl" "$tmp/restored" <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if '"path"' in l]
sys.exit(0 if lines and all(l["output"] == sys.argv[2] + "/" + l["original"] for l in lines) else 1)
EOF
expect 0 "decrypt -r again" "$DCMSEAL" decrypt -r "$enc" -o "$tmp/restored"
check "skips everything" grep -q "decrypt: $nfiles files: 0 decrypted, $nfiles skipped" "$tmp/err"
expect 0 "one concealed object to a file of one's choosing" "$DCMSEAL" decrypt "$obj" -o "$tmp/one.dcm"
check "the same bytes" cmp -s "$orig" "$tmp/one.dcm"

# ---- links planted in DST are never followed ---------------------------------------
# The folders concealed names and restored paths go into are made and opened
# relative to DST's descriptor: a symbolic link standing where one of them
# goes is refused, and nothing lands where it points.
outside=$tmp/outside
mkdir "$outside"
fan=$(basename "$(dirname "$(dirname "$obj")")")
mkdir "$tmp/planted"
ln -s "$outside" "$tmp/planted/$fan"
expect 74 "encrypt --conceal-names with a link as a fan-out folder" "$DCMSEAL" encrypt -r "$src" -o "$tmp/planted" --conceal-names
check "those files fail, naming the folder" grep -q "$tmp/planted/$fan/.*cannot create its folder: Not a directory" "$tmp/err"
check "the others are encrypted" [ "$(find "$tmp/planted/" -type f | wc -l)" -gt 0 ]
top=${rel%%/*}
mkdir "$tmp/planted2"
ln -s "$outside" "$tmp/planted2/$top"
expect 74 "decrypt -r with a link in place of a restored folder" "$DCMSEAL" decrypt -r "$enc" -o "$tmp/planted2"
check "those files fail, naming the folder" grep -q "$tmp/planted2/$top/.*cannot create its folder: Not a directory" "$tmp/err"
check "nothing written through either link" [ -z "$(ls -A "$outside")" ]

# ---- many folders, few descriptors --------------------------------------------------
# 1200 files, each in a folder of its own: about as many fan-out folders to
# encrypt into and as many original folders to restore, under a limit of 1024
# open files. The folders made are not all held open at once, and group
# commit keeps no more files (and their folders) in flight than the limit
# leaves room for.
many=$tmp/many
for i in $(seq 1 1200); do mkdir -p "$many/s$i" && printf 'file %s\n' "$i" > "$many/s$i/f"; done
expect 0 "encrypt 1200 folders concealed, ulimit -n 1024" \
    bash -c 'ulimit -n 1024 && exec "$@"' _ "$DCMSEAL" encrypt -q -r "$many" -o "$tmp/many.enc" --conceal-names
check "all 1200 encrypted" [ "$(find "$tmp/many.enc" -type f | wc -l)" -eq 1200 ]
# Skipped files hold no folder either.
expect 0 "a re-run skips them all, ulimit -n 1024" \
    bash -c 'ulimit -n 1024 && exec "$@"' _ "$DCMSEAL" encrypt -r "$many" -o "$tmp/many.enc" --conceal-names
check "1200 skipped" grep -q "encrypt: 1200 files: 0 encrypted, 1200 skipped" "$tmp/err"
expect 0 "and restored, ulimit -n 1024" \
    bash -c 'ulimit -n 1024 && exec "$@"' _ "$DCMSEAL" decrypt -q -r "$tmp/many.enc" -o "$tmp/many.out"
check "the same tree" diff -r "$many" "$tmp/many.out"

# ---- usage ------------------------------------------------------------------------------
expect 64 "--conceal-names without -r" "$DCMSEAL" encrypt "$orig" -o "$tmp/x" --conceal-names
expect 64 "--conceal-names in place" "$DCMSEAL" encrypt --in-place -r "$src" --conceal-names
check "the source is untouched" diff -r "$src" "$tmp/restored"

finish
