#!/usr/bin/env bash
# Installs what is missing (Debian 12 packages), then configures and builds
# dcmseal in build/. Used by demo.sh and test.sh; safe to run again.
#   --packages-only   install, but do not build (scripts/fuzz.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

# bench/run.sh: age is a peer it compares dcmseal with (so is openssl), and
# time (GNU time) reports each command's peak memory.
PACKAGES=(build-essential cmake pkg-config libssl-dev openssl p11-kit libp11-kit-dev
          softhsm2 libdcmtk-dev dcmtk python3 valgrind age time
          opensc                         # pkcs11-tool: tests look at tokens independently
          orthanc orthanc-dev orthanc-dicomweb  # orthanc/: the storage plugin and its tests
          libjansson-dev                 # orthanc/: Orthanc hands plugins their configuration as JSON
          curl bc                        # the Orthanc tests talk REST (curl) and time an outage (bc)
          opencryptoki                   # a second PKCS#11 implementation for the tests
          strace                         # tests that check the order of flushes and names
          python3-cryptography           # tests/integration/forge.py: a second writer of FORMAT.md
          faketime                       # key retention: destroy a month later, today
          groff-base                     # the manual page is checked with groff
          clang libclang-rt-14-dev llvm) # the fuzz targets (scripts/fuzz.sh)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$p")
done
if ((${#missing[@]})); then
    echo "bootstrap: installing ${missing[*]}" >&2
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[ "${1:-}" = --packages-only ] && exit 0

cmake -S . -B build -DCMAKE_BUILD_TYPE="${DCMSEAL_BUILD_TYPE:-RelWithDebInfo}" \
    ${DCMSEAL_CMAKE_ARGS:-} >/dev/null
cmake --build build -j"$(nproc)"
