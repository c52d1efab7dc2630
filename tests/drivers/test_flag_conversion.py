# SPDX-License-Identifier: Apache-2.0
"""Flags the driver translates as libs' driver does (driver/abi/pf_convert.h), on live eBPF events:
fchownat's AT_SYMLINK_NOFOLLOW carries libs' value 0x400, bits the event table does not name are
dropped (umount2, renameat2, unlinkat, chmod's file-type bits), mount drops the MS_MGC_VAL magic."""

from __future__ import annotations

import os

import pytest

from drivertools import result, syscall

pytestmark = pytest.mark.root

AT_FDCWD = -100


def test_flags_as_libs_passes_them(tracer, tmp_path):
    (tmp_path / "f").write_text("")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    f, g, target = str(tmp_path / "f"), str(tmp_path / "g"), str(mnt)

    def run():
        return {
            "fchownat": result(syscall("fchownat", AT_FDCWD, f, os.getuid(), os.getgid(), 0x100 | 0x1000 * 0)),
            "fchmodat": result(syscall("fchmodat", AT_FDCWD, f, 0o100755 | 0o4000)),
            "renameat2": result(syscall("renameat2", AT_FDCWD, f, AT_FDCWD, g, 1 | 0x100)),
            "unlinkat": result(syscall("unlinkat", AT_FDCWD, g, 0x100)),
            "mount": result(syscall("mount", "none", target, "tmpfs", 0xC0ED0000 | 1, 0)),
            "umount2": result(syscall("umount2", target, 2 | 0x40)),   # EINVAL: an unknown bit
            "umount2_ok": result(syscall("umount2", target, 2)),
        }

    try:
        res, events = tracer.trace(run)
    finally:
        if os.path.ismount(target):
            os.system(f"umount -l '{target}'")
    mine = {}
    for e in events:
        if e.name in res and e.tid == os.getpid():
            mine.setdefault(e.name, e.params)        # the first umount2 is the one with the unknown bit
    assert mine["fchownat"]["flags"] == 0x400                   # AT_SYMLINK_NOFOLLOW as libs names it
    assert mine["fchmodat"]["mode"] == 0o4755                    # no file-type bits
    assert mine["renameat2"]["flags"] == 1                       # RENAME_NOREPLACE only
    assert mine["unlinkat"]["flags"] == 0                        # AT_SYMLINK_NOFOLLOW is not an unlinkat flag
    assert mine["mount"]["flags"] == 1 and res["mount"] == 0     # MS_RDONLY, magic dropped
    assert mine["umount2"]["flags"] == 2                         # MNT_DETACH, unknown bit dropped
    assert res["umount2_ok"] == 0 and not os.path.ismount(target)
