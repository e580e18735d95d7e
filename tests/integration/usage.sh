#!/usr/bin/env bash
# The command line as a new user meets it, against a SoftHSM token made in a
# temporary directory: help for every command (and that it tells the truth
# about the options), options before or after the command, one line per
# error, plurals, size suffixes, inspect of many files and of stdin, key
# list's header and empty list.
#   usage.sh DCMSEAL CORPUS_DIR
DCMSEAL=$1
CORPUS=$2
NAME=usage
. "$(dirname "$0")/lib.sh"

# The commands, from the overview's command lists.
commands() { "$DCMSEAL" --help | sed -n 's/^  \([a-z][a-z-]*\( [a-z-]*\)\?\)  .*/\1/p' | sed 's/ *$//'; }
mapfile -t cmds < <(commands)
check "the overview lists the commands (${#cmds[@]})" [ "${#cmds[@]}" -ge 15 ]
check "the overview lists key create and rewrap" \
    bash -c 'printf "%s\n" "$@" | grep -qx "key create" && printf "%s\n" "$@" | grep -qx rewrap' _ "${cmds[@]}"

# ---- help for every command --------------------------------------------------
for c in "${cmds[@]}"; do
    # shellcheck disable=SC2086 # "key create" is two words
    expect 0 "$c --help" "$DCMSEAL" $c --help
    cp "$tmp/out" "$tmp/help.long"
    check "$c --help: its synopsis" grep -q "^usage: dcmseal $c" "$tmp/out"
    check "$c --help: options and an example" grep -q '^options:' "$tmp/out" && grep -q '^examples\?:' "$tmp/out"
    check "$c --help: nothing on stderr" [ ! -s "$tmp/err" ]
    check "$c --help: fits 80 columns" [ "$(awk 'length > 80' "$tmp/out" | wc -l)" -eq 0 ]
    # shellcheck disable=SC2086
    expect 0 "$c -h" "$DCMSEAL" $c -h
    check "$c -h: the same" cmp -s "$tmp/out" "$tmp/help.long"
    # shellcheck disable=SC2086
    expect 0 "help $c" "$DCMSEAL" help $c
    check "help $c: the same" cmp -s "$tmp/out" "$tmp/help.long"
done
expect 0 "help key: the group" "$DCMSEAL" help key
check "help key: lists its subcommands" grep -q "key destroy" "$tmp/out" && grep -q "key rotate" "$tmp/out"
check "help key: not the whole page" not grep -q "^  encrypt" "$tmp/out"
expect 0 "key --help" "$DCMSEAL" key --help
check "key --help: the group" grep -q "key min-version" "$tmp/out"
expect 0 "--help" "$DCMSEAL" --help
check "--help fits 80 columns" [ "$(awk 'length > 80' "$tmp/out" | wc -l)" -eq 0 ]
expect 64 "help of no such command" "$DCMSEAL" help frobnicate
check "help frobnicate: one line" one_line_naming "frobnicate"

# ---- help tells the truth about the options -----------------------------------
# Every option a command's help lists is accepted by that command, and every
# other option is refused by name. A sample value per option that takes one.
value_of() {
    case $1 in
    --token) echo 'pkcs11:token=nosuch?module-path=/nonexistent.so' ;;
    --bits) echo 2048 ;; --segment-size) echo 64K ;; --oaep) echo auto ;;
    --to-version|--jobs|--objects|--retention) echo 1 ;; --shard) echo 1/2 ;;
    --sessions) echo 1,2 ;; --durability) echo group ;; *) echo "$tmp/v" ;;
    esac
}
# listed [COMMAND]: "--name" or "--name ARG" for each option its help lists.
listed() {
    # shellcheck disable=SC2086
    "$DCMSEAL" ${1:-} --help | sed -n '/^options/,/^$/p' | grep -oE -- '^ +(-[a-z], )?--[a-z-]+( [^ ]+)?' |
        sed 's/^ *\(-., \)\?//' | grep -v -- '^--help\|^--version'
}
{ listed; for c in "${cmds[@]}"; do listed "$c"; done; } | sort -u > "$tmp/all-options"
check "the help pages list many options ($(wc -l < "$tmp/all-options"))" [ "$(wc -l < "$tmp/all-options")" -ge 20 ]
# All the options a command lists, at once: none may be refused (one run per
# command). Then the first two and the last option it does not list, one by
# one: each must be refused by name.
bad_truth=0
for c in "${cmds[@]}"; do
    listed "$c" > "$tmp/listed"
    args=()
    while read -r opt arg; do
        args+=("$opt")
        [ -n "$arg" ] && args+=("$(value_of "$opt")")
    done < "$tmp/listed"
    # shellcheck disable=SC2086
    env -u DCMSEAL_TOKEN timeout 20 "$DCMSEAL" $c "${args[@]}" > /dev/null 2> "$tmp/err" < /dev/null
    if grep -qE "unknown option|does not apply" "$tmp/err"; then
        bad_truth=$((bad_truth + 1)); echo "  $c: an option it lists is refused: $(cat "$tmp/err")"
    fi
    grep -v -f <(sed 's/ .*//; s/^/^/; s/$/\\( \\|$\\)/' "$tmp/listed") "$tmp/all-options" > "$tmp/unlisted"
    { head -2 "$tmp/unlisted"; tail -1 "$tmp/unlisted"; } | sort -u | while read -r opt arg; do
        args=("$opt")
        [ -n "$arg" ] && args+=("$(value_of "$opt")")
        # shellcheck disable=SC2086
        env -u DCMSEAL_TOKEN timeout 20 "$DCMSEAL" $c "${args[@]}" > /dev/null 2> "$tmp/err" < /dev/null
        grep -q -- "$opt does not apply" "$tmp/err" || echo "  $c: $opt is not listed, yet: $(cat "$tmp/err")"
    done > "$tmp/unlisted.bad"
    [ -s "$tmp/unlisted.bad" ] && { cat "$tmp/unlisted.bad"; bad_truth=$((bad_truth + 1)); }
done
check "every command takes exactly the options its help lists" [ "$bad_truth" -eq 0 ]

# ---- one line per error, with our prefix ---------------------------------------
for args in "--bogus" "-z" "--bogus encrypt" "encrypt --bogus" "encrypt --bits" "key" \
    "key frob" "frobnicate" "" "key list -r" "inspect --jobs 2 x" "--segment-size 1 encrypt x -o y"; do
    # shellcheck disable=SC2086
    expect 64 "usage: '$args'" "$DCMSEAL" $args
    check "usage: '$args': one line, ours" \
        [ "$(wc -l < "$tmp/err")" -eq 1 ] && grep -q '^dcmseal: .* (see dcmseal .*--help)$' "$tmp/err"
done
expect 64 "bad top-level option" "$DCMSEAL" --bogus key list
check "bad top-level option: named once, no getopt line" \
    [ "$(grep -c -- --bogus "$tmp/err")" -eq 1 ] && not grep -q "unrecognized" "$tmp/err"
expect 64 "a value out of range, before the command" "$DCMSEAL" --segment-size 12 encrypt x -o y
check "out of range: says the range and the command" grep -q "encrypt: --segment-size 12: must be 4K..16M" "$tmp/err"

# ---- options before or after the command ------------------------------------------
softhsm_token "$tmp/hsm" usage-test
token=$DCMSEAL_TOKEN
expect 0 "key list on an empty token" "$DCMSEAL" key list
check "empty key list says so" grep -q "no dcmseal keys on token 'usage-test'" "$tmp/out"
expect 0 "key create" "$DCMSEAL" key create kek --bits 2048
export DCMSEAL_KEY=kek
expect 0 "key list" "$DCMSEAL" key list
check "key list has a header row" grep -Eq '^NAME +VER +SIZE +STATE +OAEP +DISABLED' "$tmp/out"
check "key list: one row under it" [ "$(grep -c '^kek ' "$tmp/out")" -eq 1 ]
expect 69 "key list of a name that is not there" "$DCMSEAL" key list nosuch
check "key list nosuch: one line naming it" one_line_naming "key 'nosuch' not found on token 'usage-test'"

expect 0 "--token before the command" env -u DCMSEAL_TOKEN "$DCMSEAL" --token "$token" key list
check "--token before: the key" grep -q '^kek ' "$tmp/out"
expect 0 "--token after the command" env -u DCMSEAL_TOKEN "$DCMSEAL" key list --token "$token"
expect 0 "--json before the command" "$DCMSEAL" --json key list
check "--json before: JSON" python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))[0]["name"] == "kek"' "$tmp/out"
expect 0 "--json between the words" "$DCMSEAL" key --json list
check "--json between: JSON" grep -q '^\[{"name":"kek"' "$tmp/out"

dcm=$(find "$CORPUS" -name '*.dcm' -size -200k 2>/dev/null | sort | head -1)
[ -n "$dcm" ] || { "$here/../../scripts/make-samples.sh" "$tmp/gen" >/dev/null; dcm=$(find "$tmp/gen" -type f | head -1); }
cp "$dcm" "$tmp/a.dcm"
expect 0 "-v after the command" "$DCMSEAL" encrypt "$tmp/a.dcm" -o "$tmp/a1.dcms" -v
check "-v after: verbose line" grep -q "RSA-OAEP sha1" "$tmp/err"
expect 0 "-v before the command" "$DCMSEAL" -v encrypt "$tmp/a.dcm" -o "$tmp/a2.dcms"
check "-v before: verbose line" grep -q "RSA-OAEP sha1" "$tmp/err"
expect 0 "verify" "$DCMSEAL" verify "$tmp/a1.dcms" "$tmp/a2.dcms"
check "verify prints OK lines" [ "$(grep -c ': OK' "$tmp/out")" -eq 2 ]
expect 0 "--quiet before the command" "$DCMSEAL" --quiet verify "$tmp/a1.dcms" "$tmp/a2.dcms"
check "--quiet before: no OK lines" [ ! -s "$tmp/out" ]
expect 0 "-q after the command" "$DCMSEAL" verify "$tmp/a1.dcms" "$tmp/a2.dcms" -q
check "-q after: no OK lines" [ ! -s "$tmp/out" ]
expect 0 "-- ends the options" "$DCMSEAL" inspect -- "$tmp/a1.dcms"

# ---- finding a token: token list -------------------------------------------------
expect 0 "token list MODULE" env -u DCMSEAL_TOKEN -u DCMSEAL_PIN "$DCMSEAL" token list "$SOFTHSM_MODULE"
check "token list: the token, by label" grep -q "^    token 'usage-test': SoftHSM project SoftHSM v2, serial " "$tmp/out"
check "token list: its state" grep -q "^    user PIN set, login required" "$tmp/out"
check "token list: SoftHSM's free slot" grep -q "^    token not initialized" "$tmp/out"
listed_uri=$(sed -n 's/^    URI: //p' "$tmp/out")
check "token list: a URI for it" [ "$listed_uri" = "pkcs11:token=usage-test?module-path=$SOFTHSM_MODULE" ]
expect 0 "the listed URI, with a pin-source, opens the token" \
    env -u DCMSEAL_TOKEN "$DCMSEAL" key list --token "$listed_uri&pin-source=file:$tmp/hsm/pin"
check "the listed URI: the key is there" grep -q '^kek ' "$tmp/out"
# What an independent tool sees: the same serial numbers.
pkcs11-tool --module "$SOFTHSM_MODULE" -L 2>/dev/null | sed -n 's/.*serial num *: *//p' | sort > "$tmp/serials.p11tool"
expect 0 "token list --json (the module of \$DCMSEAL_TOKEN)" "$DCMSEAL" token list --json
python3 -c 'import json,sys; [print(s["serial"]) for s in json.load(open(sys.argv[1])) if s["token_present"]]' "$tmp/out" | sort > "$tmp/serials.ours"
check "token list: the serials pkcs11-tool -L shows" [ -s "$tmp/serials.ours" ] && cmp -s "$tmp/serials.ours" "$tmp/serials.p11tool"
check "token list --json: the token's fields" python3 -c '
import json, sys
slots = json.load(open(sys.argv[1]))
t = [s for s in slots if s.get("label") == "usage-test"]
assert len(t) == 1 and t[0]["initialized"] and t[0]["user_pin_initialized"] and t[0]["login_required"], t
assert t[0]["module"] == sys.argv[2] and t[0]["manufacturer"] == "SoftHSM project" and t[0]["uri"].startswith("pkcs11:token=usage-test?"), t
assert any(s["token_present"] and not s["initialized"] and s["uri"] is None for s in slots), slots' "$tmp/out" "$SOFTHSM_MODULE"
expect 0 "token list of a URI that names another token: the module's tokens" \
    env -u DCMSEAL_TOKEN "$DCMSEAL" token list "pkcs11:token=nosuch?module-path=$SOFTHSM_MODULE"
check "token list URI: lists the module's token" grep -q "token 'usage-test'" "$tmp/out"
expect 69 "token list of a module that is not there" "$DCMSEAL" token list "$tmp/nosuch.so"
check "token list of no module: one line naming it" one_line_naming "$tmp/nosuch.so"
expect 69 "a URI that names no token" "$DCMSEAL" key list --token "pkcs11:token=nosuch?module-path=$SOFTHSM_MODULE&pin-source=file:$tmp/hsm/pin"
check "no such token: one line that lists the tokens there" one_line_naming "no token labelled 'nosuch' found in module $SOFTHSM_MODULE; tokens there: 'usage-test'"
softhsm_token "$tmp/hsm2" second-token
export SOFTHSM2_CONF=$tmp/hsm/softhsm2.conf DCMSEAL_TOKEN=$token
cat "$tmp/hsm/softhsm2.conf" > "$tmp/both.conf"
sed -i "s|^directories.tokendir = .*|directories.tokendir = $tmp/both|" "$tmp/both.conf"
mkdir -p "$tmp/both" && cp -r "$tmp/hsm/tokens/." "$tmp/hsm2/tokens/." "$tmp/both/"
expect 69 "a URI that names no token, with two there" env SOFTHSM2_CONF="$tmp/both.conf" "$DCMSEAL" key list --token "pkcs11:token=nosuch?module-path=$SOFTHSM_MODULE&pin-source=file:$tmp/hsm/pin"
check "both labels are named" grep -q "tokens there: '[a-z-]*', '[a-z-]*'$" "$tmp/err" && grep -q "'usage-test'" "$tmp/err" && grep -q "'second-token'" "$tmp/err"

# ---- plurals ----------------------------------------------------------------------
mkdir -p "$tmp/one"
cp "$tmp/a.dcm" "$tmp/one/only"
expect 0 "a tree of one file" "$DCMSEAL" encrypt -r "$tmp/one" -o "$tmp/one.enc"
check "summary: 1 file, not 1 files" grep -q "encrypt: 1 file: 1 encrypted" "$tmp/err"
check "summary: never '1 files'" not grep -q "[^0-9]1 files" "$tmp/err"

# ---- --segment-size takes K and M ---------------------------------------------------
seg_of() { "$DCMSEAL" inspect --json "$1" | sed -n 's/.*"segment_size":\([0-9]*\).*/\1/p'; }
for s in 64K:65536 1M:1048576 8KiB:8192 4096:4096 16M:16777216; do
    expect 0 "--segment-size ${s%%:*}" "$DCMSEAL" encrypt --segment-size "${s%%:*}" "$tmp/a.dcm" -o "$tmp/seg-${s%%:*}.dcms"
    check "--segment-size ${s%%:*} is ${s#*:} bytes" [ "$(seg_of "$tmp/seg-${s%%:*}.dcms")" = "${s#*:}" ]
done
for s in 3K 17M 1G 64X -1 K; do
    expect 64 "--segment-size $s refused" "$DCMSEAL" encrypt --segment-size "$s" "$tmp/a.dcm" -o "$tmp/seg-bad.dcms"
done

# ---- inspect: many files, and stdin ---------------------------------------------------
expect 0 "inspect of two files" "$DCMSEAL" inspect "$tmp/a1.dcms" "$tmp/a2.dcms"
check "inspect: a block per file" [ "$(grep -c '^file: ' "$tmp/out")" -eq 2 ]
expect 0 "inspect --json of two files" "$DCMSEAL" inspect --json "$tmp/a1.dcms" "$tmp/a2.dcms"
check "inspect --json: one object per line" python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["file"] for r in rows] == sys.argv[2:], rows' "$tmp/out" "$tmp/a1.dcms" "$tmp/a2.dcms"
expect 0 "inspect of stdin" bash -c '"$0" inspect --json - < "$1"' "$DCMSEAL" "$tmp/a1.dcms"
check "inspect -: the same sizes as the file" python3 -c '
import json, subprocess, sys
a = json.load(open(sys.argv[1])); b = json.loads(subprocess.check_output([sys.argv[2], "inspect", "--json", sys.argv[3]]))
assert a["file"] == "-" and (a["plain_bytes"], a["sealed_bytes"]) == (b["plain_bytes"], b["sealed_bytes"]), (a, b)' "$tmp/out" "$DCMSEAL" "$tmp/a1.dcms"
expect 0 "inspect of a pipe" bash -c 'cat "$1" | "$0" inspect -' "$DCMSEAL" "$tmp/a1.dcms"
check "inspect of a pipe: its sizes" grep -q "^sealed size: *$(stat -c %s "$tmp/a1.dcms")$" "$tmp/out"
expect 65 "inspect: a bad file among good ones" "$DCMSEAL" inspect "$tmp/a1.dcms" "$tmp/a.dcm" "$tmp/a2.dcms"
check "inspect: the good ones are still shown" [ "$(grep -c '^file: ' "$tmp/out")" -eq 2 ]
check "inspect: one line for the bad one" one_line_naming "$tmp/a.dcm"

finish
