#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only OR MIT
# Builds kmod/ for a kernel whose headers are installed, out of the source tree:
#   tools/kmod/build_module.sh [KVER] [OUTDIR]   (default: the newest /usr/src/linux-headers-*, build/kmod/<KVER>)
# The sources and driver/abi headers are copied to OUTDIR (as pyfalco-driver-loader does), so
# kbuild's outputs never land in the checkout. Fails on any compiler warning.
set -euo pipefail
cd "$(dirname "$0")/../.."
kver=${1:-$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sed 's|.*/linux-headers-||' | sort -V | tail -1)}
out=${2:-build/kmod/$kver}
kdir=/usr/src/linux-headers-$kver
[[ -d $kdir ]] || { echo "build_module: no headers for $kver in $kdir (apt-get install linux-headers-amd64)" >&2; exit 1; }
mkdir -p "$out/abi"
cp kmod/*.c kmod/*.h kmod/Kbuild kmod/Makefile "$out/"
cp driver/abi/*.h "$out/abi/"
log=$(make -C "$kdir" M="$(realpath "$out")" modules 2>&1) || { echo "$log" >&2; exit 1; }
if grep -E 'warning:|error:' <<<"$log" >&2; then
    echo "build_module: the module must build without warnings" >&2
    exit 1
fi
echo "$(realpath "$out")/pyfalco.ko"
