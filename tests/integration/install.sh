#!/usr/bin/env bash
# The library as an outside project meets it: `cmake --install` into a
# prefix inside the build directory, then examples/seal.c built against that
# tree through pkg-config and through find_package(dcmseal CONFIG), run
# against a SoftHSM token; the tree moved elsewhere and used again; the
# installed tool using the installed library; the manual page and the bash
# completion, installed and agreeing with --help.
#   install.sh BUILD_DIR SOURCE_DIR CORPUS_DIR
BUILD=$1
SOURCE=$2
CORPUS=$3
DCMSEAL=$BUILD/dcmseal
NAME=install
. "$(dirname "$0")/lib.sh"

# Inside the build directory, as the brief asks; removed at the end.
work=$BUILD/install-test
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$tmp" "$work"' EXIT
prefix=$work/prefix

expect 0 "cmake --install --prefix" cmake --install "$BUILD" --prefix "$prefix"
libdir=$(cd "$prefix" && ls -d lib lib64 lib/*-linux-gnu 2>/dev/null | while read -r d; do [ -e "$d/libdcmseal.so" ] && echo "$d"; done | head -1)
check "the library is installed ($libdir)" [ -n "$libdir" ] && [ -e "$prefix/$libdir/libdcmseal.so.0" ]
check "the public headers are installed" [ -e "$prefix/include/dcmseal/engine.h" ] && [ -e "$prefix/include/dcmseal/pkcs11.h" ]
check "no private header is installed" [ ! -e "$prefix/include/private" ] && not grep -rq "DCMSEAL_GUARD\|DCMSEAL_ENSURE" "$prefix/include"
check "the manual page is installed" [ -s "$prefix/share/man/man1/dcmseal.1" ]
check "the bash completion is installed" [ -s "$prefix/share/bash-completion/completions/dcmseal" ]

# ---- the installed tool uses the installed library ------------------------------
expect 0 "the installed dcmseal runs" env -u LD_LIBRARY_PATH "$prefix/bin/dcmseal" --version
# loads LIB BINARY: the dynamic loader gives BINARY the library file LIB.
loads() { [ "$(ldd "$2" | sed -n 's/^\tlibdcmseal.so.0 => \([^ ]*\) .*/\1/p' | xargs realpath)" = "$(realpath "$1")" ]; }
check "and loads the library installed beside it" loads "$prefix/$libdir/libdcmseal.so.0" "$prefix/bin/dcmseal"

# ---- pkg-config: right for the prefix, whatever it is -----------------------------
export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
check "pkg-config: the prefix given" [ "$(pkg-config --variable=libdir dcmseal | xargs realpath)" = "$(realpath "$prefix/$libdir")" ]
check "pkg-config: no /usr/local" not grep -q /usr/local "$prefix/$libdir/pkgconfig/dcmseal.pc"

token_with_key "$tmp/hsm" install-test kek
dcm=$(find "$CORPUS" -name '*.dcm' -size -300k 2>/dev/null | sort | head -1)
[ -n "$dcm" ] || { "$SOURCE/scripts/make-samples.sh" "$tmp/gen" >/dev/null; dcm=$(find "$tmp/gen" -type f | head -1); }
# run_example PROGRAM WHAT: seals and opens a file and a buffer.
run_example() {
    cp "$dcm" "$tmp/in.dcm"
    rm -f "$tmp/in.dcm.dcms" "$tmp/in.dcm.out"
    expect 0 "$2: runs" env -u LD_LIBRARY_PATH "$1" "$DCMSEAL_TOKEN" kek "$tmp/in.dcm"
    check "$2: the file comes back" cmp -s "$dcm" "$tmp/in.dcm.out" && grep -q "^file: opened again" "$tmp/out"
    check "$2: the buffer comes back" grep -q "^buffer: opened again, the same 300000 bytes" "$tmp/out"
    check "$2: the dcmseal tool opens what it sealed" "$DCMSEAL" verify -q "$tmp/in.dcm.dcms"
}
expect 0 "pkg-config: cc examples/seal.c" bash -c 'cc -std=c11 -Wall -Wextra -Werror "$1/examples/seal.c" \
    $(pkg-config --cflags --libs dcmseal) -Wl,-rpath,"$(pkg-config --variable=libdir dcmseal)" -o "$2/seal-pc"' _ "$SOURCE" "$work"
run_example "$work/seal-pc" "pkg-config build"

# ---- find_package(dcmseal CONFIG) -> dcmseal::dcmseal --------------------------------
expect 0 "cmake: configure examples/ against the prefix" \
    cmake -S "$SOURCE/examples" -B "$work/example" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_FLAGS="-Wall -Werror"
expect 0 "cmake: build it" cmake --build "$work/example"
check "cmake: it links the installed library" loads "$prefix/$libdir/libdcmseal.so.0" "$work/example/seal"
run_example "$work/example/seal" "find_package build"

# ---- the tree moved elsewhere: still whole --------------------------------------------
mv "$prefix" "$work/moved"
prefix=$work/moved
export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
check "moved: pkg-config follows the .pc file" [ "$(pkg-config --variable=libdir dcmseal | xargs realpath)" = "$(realpath "$prefix/$libdir")" ]
expect 0 "moved: the tool still finds its library" env -u LD_LIBRARY_PATH "$prefix/bin/dcmseal" --version
check "moved: the one beside it" loads "$prefix/$libdir/libdcmseal.so.0" "$prefix/bin/dcmseal"
expect 0 "moved: pkg-config build" bash -c 'cc -std=c11 "$1/examples/seal.c" $(pkg-config --cflags --libs dcmseal) \
    -Wl,-rpath,"$(pkg-config --variable=libdir dcmseal)" -o "$2/seal-moved"' _ "$SOURCE" "$work"
run_example "$work/seal-moved" "moved, pkg-config build"
expect 0 "moved: find_package" cmake -S "$SOURCE/examples" -B "$work/example-moved" -DCMAKE_PREFIX_PATH="$prefix"
expect 0 "moved: find_package build" cmake --build "$work/example-moved"
run_example "$work/example-moved/seal" "moved, find_package build"

# ---- the manual: renders cleanly, and says what --help says ------------------------------
man1=$prefix/share/man/man1/dcmseal.1
expect 0 "the manual renders without a warning" groff -man -ww -z "$man1"
check "groff said nothing" [ ! -s "$tmp/err" ]
expect 0 "man finds it under the prefix" env MANPATH="$prefix/share/man" man -w dcmseal
check "man: the installed page" [ "$(cat "$tmp/out")" = "$man1" ]
check "every command has its section, with the options its --help lists" python3 - "$man1" "$DCMSEAL" <<'PY'
import re, subprocess, sys
page, tool = open(sys.argv[1]).read(), sys.argv[2]
overview = subprocess.run([tool, "--help"], capture_output=True, text=True).stdout
cmds = re.findall(r"^  ([a-z][a-z-]*(?: [a-z-]+)?)  ", overview, re.M)
assert len(cmds) >= 15, cmds
for c in cmds:
    sec = re.search(r"^\.SS dcmseal " + re.escape(c.replace("-", "\\-")) + r"\n(.*?)(?=^\.S[SH] )", page, re.M | re.S)
    assert sec, c
    in_man = set(re.findall(r"^\.TP\n(?:\\fB\\-.\\fR, )?\\fB\\-\\-([a-z\\-]+)\\fR", sec.group(1), re.M))
    in_man = {o.replace("\\-", "-") for o in in_man}
    helptext = subprocess.run([tool] + c.split() + ["--help"], capture_output=True, text=True).stdout
    in_help = set(re.findall(r"^ +(?:-., )?--([a-z-]+)", helptext.split("options:")[1], re.M)) - {"help", "verbose"}
    assert in_man == in_help, (c, in_man ^ in_help)
PY

# ---- the bash completion ----------------------------------------------------------------------
completion=$prefix/share/bash-completion/completions/dcmseal
# complete WORDS...: what completing the last word offers.
complete_words() {
    bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _dcmseal; printf "%s\n" "${COMPREPLY[@]}"' \
        _ "$completion" "$@"
}
check "completion: the commands" [ "$(complete_words dcmseal "" | sort | tr '\n' ' ')" = "bench decrypt encrypt health help hsm-check inspect key rewrap token verify " ]
check "completion: a group's subcommands" [ "$(complete_words dcmseal key d | sort | tr '\n' ' ')" = "destroy disable " ]
check "completion: a command's options" [ "$(complete_words dcmseal key destroy --no | tr '\n' ' ')" = "--no-archive-check " ]
check "completion: options after a value" [ "$(complete_words dcmseal encrypt -o out --seg)" = "--segment-size" ]
check "completion: an option's choices" [ "$(complete_words dcmseal encrypt --oaep "" | tr '\n' ' ')" = "auto sha1 sha256 " ]
check "completion: not another command's options" [ -z "$(complete_words dcmseal inspect --arch)" ]

finish
