#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Refreshes the vendored vmlinux.h from the running kernel's BTF. The build never runs this:
# the driver is CO-RE, so one vmlinux.h per architecture serves every kernel.
set -eu
arch=${1:-x86}
out="$(dirname "$0")/../driver/vmlinux/$arch/vmlinux.h"
mkdir -p "$(dirname "$out")"
bpftool btf dump file /sys/kernel/btf/vmlinux format c > "$out"
echo "wrote $out ($(uname -r))"
