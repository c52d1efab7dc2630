#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Runs in the guest as PID 1 after switch_root into the host root (tools/kmod/guest.py): brings
# up lo, runs $pfout/run.sh with its output in $pfout/output.log, then reports the exit status
# through isa-debug-exit (qemu exits with (status << 1) | 1) and powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TMPDIR=/tmp PYTHONDONTWRITEBYTECODE=1 LANG=C.UTF-8
ip link set lo up 2>/dev/null || busybox ifconfig lo 127.0.0.1 up
mount -t debugfs none /sys/kernel/debug 2>/dev/null
mount -t tracefs none /sys/kernel/tracing 2>/dev/null
mount -t cgroup2 none /sys/fs/cgroup 2>/dev/null
echo "guest: $(uname -r), $(nproc) CPUs" >"$pfout/output.log"
bash "$pfout/run.sh" >>"$pfout/output.log" 2>&1 </dev/null
rc=$?
sync
printf "\\x$(printf %02x $((rc & 255)))" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
echo o >/proc/sysrq-trigger
sleep 5
