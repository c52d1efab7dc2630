#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Boots Debian's kernel under qemu with the host root shared read-only, runs one command in it.

The kernel module can only be tested in a kernel that loads modules: this host's cannot, so the
tests boot the installed ``linux-image-amd64`` (see ../shared/spec/KERNEL_TESTING.md):

* the compressed ``/boot/vmlinuz-<kver>`` is unpacked once into an uncompressed ``vmlinux``
  (qemu boots it through its PVH entry in ~5 s instead of ~12 s; cached under build/kmod-guest);
* a small initramfs (busybox-static, the virtio and 9p modules, ``init``) mounts the host root
  over 9p read-only, a tmpfs on /tmp and /run, the results directory read-write at the same
  path, and ``switch_root``s into the host root: the guest runs the host's python3, the
  checkout and the build tree unchanged, with the host paths;
* ``tools/kmod/guest_init.sh`` (in the shared root) brings up lo, runs the command with bash,
  and reports its exit status through qemu's isa-debug-exit device: qemu exits ``(rc << 1) | 1``.

One guest at a time (the host has 2 CPUs), always under ``timeout``. KVM is used only when the
CPU advertises vmx/svm (here it does not: nested PVM-based KVM fails with Debian's kernel).

Usage: ``tools/kmod/guest.py [--timeout S] [--kver KVER] -- COMMAND...`` (as a shell command line).
Python: ``run("cmd", timeout=600) -> GuestResult(rc, output, serial, seconds)``.
"""

from __future__ import annotations

import argparse
import io
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# ../shared beside the checkout (spec, captures, rules the tests read); "" when absent
SHARED = (REPO.parent / "shared").resolve() if (REPO.parent / "shared").is_dir() else ""
CACHE = REPO / "build" / "kmod-guest"
GUEST_INIT = REPO / "tools" / "kmod" / "guest_init.sh"
# modules the initramfs loads, in dependency order, to mount the host root over 9p
NINEP_MODULES = ["drivers/virtio/virtio_ring", "drivers/virtio/virtio", "drivers/virtio/virtio_pci_modern_dev",
                 "drivers/virtio/virtio_pci_legacy_dev", "drivers/virtio/virtio_pci", "fs/netfs/netfs",
                 "fs/fscache/fscache", "net/9p/9pnet", "net/9p/9pnet_virtio", "fs/9p/9p"]


class GuestError(RuntimeError):
    """The guest could not be prepared or booted (not: the command in it failed)."""


@dataclass
class GuestResult:
    rc: int          # the command's exit status; 124 on timeout; -1 if the guest died first
    output: str      # the command's stdout+stderr
    serial: str      # the kernel console
    seconds: float   # wall time of the whole boot-run-poweroff


def default_kver() -> str:
    """The newest kernel with an image in /boot and its modules (Debian's linux-image-amd64)."""
    found = []
    for d in Path("/lib/modules").glob("*"):
        if (Path("/boot") / f"vmlinuz-{d.name}").exists() and (d / "kernel").is_dir():
            found.append(d.name)
    if not found:
        raise GuestError("no bootable kernel in /boot with modules in /lib/modules: "
                         "apt-get install linux-image-amd64 (tools/setup does)")
    return sorted(found, key=lambda v: [int(x) if x.isdigit() else x for x in re.split(r"[.-]", v)])[-1]


def vmlinux(kver: str) -> Path:
    """The uncompressed kernel (the xz stream inside bzImage, unpacked once)."""
    out = CACHE / f"vmlinux-{kver}"
    src = Path("/boot") / f"vmlinuz-{kver}"
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
        return out
    data = src.read_bytes()
    at = data.find(b"\xfd7zXZ\x00")
    if at < 0:
        raise GuestError(f"{src}: no xz stream inside (not a Debian x86_64 bzImage?)")
    raw = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[at:])
    if raw[:4] != b"\x7fELF":
        raise GuestError(f"{src}: the xz stream is not an ELF vmlinux")
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(raw)
    tmp.rename(out)
    return out


def _cpio(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A newc cpio archive of (name, mode, data) entries (directories have no data)."""
    buf = io.BytesIO()
    ino = 1
    for name, mode, data in entries + [("TRAILER!!!", 0, b"")]:
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))
        buf.write(hdr.encode() + nb)
        buf.write(b"\0" * (-(110 + len(nb)) % 4))
        buf.write(data)
        buf.write(b"\0" * (-len(data) % 4))
        ino += 1
    return buf.getvalue()


INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t devtmpfs dev /dev
for m in /modules/*.ko; do insmod "$m" || echo "init: insmod $m failed"; done
mkdir -p /newroot
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=1048576,cache=loose hostroot /newroot; then
    echo "init: mounting the host root failed"; printf '\376' | dd of=/dev/port bs=1 seek=244 count=1; poweroff -f
fi
mount -t proc proc /newroot/proc
mount -t sysfs sys /newroot/sys
mount -t devtmpfs dev /newroot/dev
# a checkout under /tmp or /run (a CI clone, say), and the ../shared beside it that tests read,
# stay visible above the guest's own tmpfs
n=0
for p in "$pfrepo" "$pfshared"; do
    case "$p" in
    /tmp/*|/run/*) n=$((n+1)); mkdir -p "/keep$n" && mount -o bind "/newroot$p" "/keep$n" ;;
    esac
done
mount -t tmpfs -o mode=1777 tmp /newroot/tmp
mount -t tmpfs run /newroot/run
n=0
for p in "$pfrepo" "$pfshared"; do
    case "$p" in
    /tmp/*|/run/*) n=$((n+1)); mkdir -p "/newroot$p" && mount -o move "/keep$n" "/newroot$p" ;;
    esac
done
[ -d /newroot/dev/shm ] || mkdir -p /newroot/dev/shm
mount -t tmpfs shm /newroot/dev/shm
mount -t 9p -o trans=virtio,version=9p2000.L,msize=1048576 out "/newroot$pfout"
umount /proc
exec switch_root /newroot /bin/bash "$pfinit"
"""


def initramfs(kver: str) -> Path:
    out = CACHE / f"initramfs-{kver}.cpio"
    busybox = Path("/bin/busybox")  # busybox-static: a static binary, runs alone in the initramfs
    if not busybox.exists():
        raise GuestError("no /bin/busybox: apt-get install busybox-static (tools/setup does)")
    moddir = Path("/lib/modules") / kver / "kernel"
    entries: list[tuple[str, int, bytes]] = [(d, 0o40755, b"") for d in ("bin", "dev", "proc", "sys", "modules",
                                                                          "newroot")]
    entries.append(("bin/busybox", 0o100755, busybox.read_bytes()))
    for i, m in enumerate(NINEP_MODULES):
        ko = moddir / (m + ".ko")
        if not ko.exists():
            raise GuestError(f"{ko} missing: the guest cannot mount the host root")
        entries.append((f"modules/{i:02d}-{ko.name}", 0o100644, ko.read_bytes()))
    entries.append(("init", 0o100755, INIT.encode()))
    data = _cpio(entries)
    if not out.exists() or out.read_bytes() != data:
        CACHE.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    return out


def _accel() -> list[str]:
    try:
        cpu = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpu = ""
    if os.path.exists("/dev/kvm") and re.search(r"\b(vmx|svm)\b", cpu):
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg,thread=multi", "-cpu", "max"]


def run(command: str, timeout: float = 900, kver: str | None = None, mem: str = "2G", smp: int = 2,
        env: dict[str, str] | None = None, keep: Path | None = None) -> GuestResult:
    """Boots the guest, runs ``bash -c command`` in the host root, returns its status and output.

    env: extra environment for the command. keep: directory to keep the run's files in (the
    default is a temporary directory removed afterwards)."""
    kver = kver or default_kver()
    if not shutil.which("qemu-system-x86_64"):
        raise GuestError("no qemu-system-x86_64: apt-get install qemu-system-x86 (tools/setup does)")
    kernel, initrd = vmlinux(kver), initramfs(kver)
    CACHE.mkdir(parents=True, exist_ok=True)
    outdir = Path(tempfile.mkdtemp(prefix="run-", dir=CACHE)) if keep is None else keep
    outdir.mkdir(parents=True, exist_ok=True)
    exports = "".join(f"export {k}={_sh_quote(v)}\n" for k, v in (env or {}).items())
    (outdir / "run.sh").write_text(f"cd {_sh_quote(str(REPO))}\n{exports}{command}\n")
    for f in ("output.log", "serial.log"):
        (outdir / f).unlink(missing_ok=True)
    argv = ["timeout", "-k", "5", str(int(timeout)), "qemu-system-x86_64", *_accel(), "-m", mem, "-smp", str(smp),
            "-nographic", "-no-reboot", "-nic", "none", "-kernel", str(kernel), "-initrd", str(initrd),
            # no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer probe can miss
            # its ticks and panic at boot ("IO-APIC + timer doesn't work"); skip the probe
            "-append", f"console=ttyS0 panic=-1 quiet no_timer_check pfout={outdir} pfinit={GUEST_INIT} pfrepo={REPO} pfshared={SHARED}",
            "-serial", f"file:{outdir / 'serial.log'}", "-monitor", "none",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
            "-virtfs", f"local,path={outdir},mount_tag=out,security_model=none,multidevs=remap"]
    t0 = time.monotonic()
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - t0
    if proc.returncode == 124:
        rc = 124
    elif proc.returncode & 1:
        rc = proc.returncode >> 1
    else:
        rc = -1  # powered off or panicked without reporting a status
    output = _read(outdir / "output.log")
    serial = _read(outdir / "serial.log") + proc.stdout.decode("utf-8", "replace")
    if keep is None:
        shutil.rmtree(outdir, ignore_errors=True)
    return GuestResult(rc, output, serial, seconds)


def _read(p: Path) -> str:
    try:
        return p.read_text("utf-8", "replace")
    except OSError:
        return ""


def _sh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--kver")
    ap.add_argument("--keep", type=Path, help="keep the run's files (run.sh, output.log, serial.log) here")
    ap.add_argument("--serial", action="store_true", help="print the kernel console too")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("no command")
    res = run(" ".join(cmd), timeout=args.timeout, kver=args.kver, keep=args.keep)
    sys.stdout.write(res.output)
    if args.serial or res.rc < 0 or res.rc == 124:
        sys.stdout.write(res.serial)
    print(f"[guest: rc={res.rc} in {res.seconds:.1f} s]", file=sys.stderr)
    return res.rc if res.rc >= 0 else 125


if __name__ == "__main__":
    sys.exit(main())
