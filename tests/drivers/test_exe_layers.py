# SPDX-License-Identifier: Apache-2.0
"""execve's overlayfs flags (PPM_EXE_UPPER_LAYER / PPM_EXE_LOWER_LAYER), computed by the driver as
libs' driver does, on a real overlayfs mount the test makes (tmpfs layers): a binary of the lower
layer, a binary written through the overlay (upper layer), a lower binary modified through the
overlay (copied up: upper, as in libs), and a binary outside any overlay (neither flag). The same
assertions run against the kernel module in the guest kernel (tests/kmod)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

PPM_EXE_WRITABLE, PPM_EXE_UPPER_LAYER, PPM_EXE_FROM_MEMFD, PPM_EXE_LOWER_LAYER = 1, 2, 4, 8
LAYERS = PPM_EXE_UPPER_LAYER | PPM_EXE_LOWER_LAYER


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def overlay(tmp_path):
    """An overlayfs mount at tmp_path/merged whose layers live on a tmpfs of their own."""
    base, merged = tmp_path / "base", tmp_path / "merged"
    base.mkdir()
    merged.mkdir()
    r = _mount("-t", "tmpfs", "tmpfs", str(base))
    assert r.returncode == 0, r.stderr
    try:
        for d in ("lower", "upper", "work"):
            (base / d).mkdir()
        shutil.copy2("/bin/true", base / "lower" / "image_true")
        shutil.copy2("/bin/true", base / "lower" / "touched_true")
        opts = f"lowerdir={base}/lower,upperdir={base}/upper,workdir={base}/work"
        r = _mount("-t", "overlay", "overlay", "-o", opts, str(merged))
        if r.returncode != 0 and os.path.exists("/proc/modules"):
            # a kernel with overlayfs as a module (the guest's): load it and retry
            subprocess.run(["modprobe", "overlay"], capture_output=True, timeout=60)
            r = _mount("-t", "overlay", "overlay", "-o", opts, str(merged))
        assert r.returncode == 0, f"cannot mount an overlayfs: {r.stderr}"
        try:
            yield merged, base
        finally:
            subprocess.run(["umount", "-l", str(merged)], capture_output=True, timeout=30)
    finally:
        subprocess.run(["umount", "-l", str(base)], capture_output=True, timeout=30)


def _exec_flags(tracer, path: str) -> int:
    def run():
        pid = os.fork()
        if pid == 0:
            try:
                os.execv(path, [os.path.basename(path)])
            finally:
                os._exit(127)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, path
        return pid

    pid, events = tracer.trace(run)
    (evt,) = [e for e in events if e.name == "execve" and e.tid == pid]
    assert evt.params["res"] == 0
    return evt.params["flags"]


def test_overlay_layers_of_the_executable(tracer, overlay):
    merged, base = overlay
    # written through the overlay after the mount: the upper layer
    shutil.copy2("/bin/true", merged / "dropped_true")
    assert (base / "upper" / "dropped_true").exists()
    # a lower file modified through the overlay is copied up: libs reports it upper too
    os.chmod(merged / "touched_true", 0o700)
    assert (base / "upper" / "touched_true").exists()

    assert _exec_flags(tracer, str(merged / "image_true")) & LAYERS == PPM_EXE_LOWER_LAYER
    assert _exec_flags(tracer, str(merged / "dropped_true")) & LAYERS == PPM_EXE_UPPER_LAYER
    assert _exec_flags(tracer, str(merged / "touched_true")) & LAYERS == PPM_EXE_UPPER_LAYER
    # the lower layer's own path is not an overlayfs; nor is the host's /bin/true
    assert _exec_flags(tracer, str(base / "lower" / "image_true")) & LAYERS == 0
    assert _exec_flags(tracer, "/bin/true") & LAYERS == 0
