# SPDX-License-Identifier: Apache-2.0
"""pyfalco-driver-loader on the host (its kernel cannot load modules), and the module's build
against Debian's headers. The load/unload tests run in the guest (guest/test_loader_guest.py)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from pyfalco.driver_loader import detect, main  # detect: the module
from pyfalco.driver_loader.detect import headers_package
from pyfalco.driver_loader.kmod import api_version

API = api_version(Path(__file__).resolve().parents[2] / "driver" / "abi")  # the module's version

REPO = Path(__file__).resolve().parents[2]


def loader(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return rc, out.getvalue(), err.getvalue()


def debian_kernels() -> list[str]:
    return sorted(p.name.removeprefix("linux-headers-") for p in Path("/usr/src").glob("linux-headers-*-amd64"))


def test_detect_reports_the_running_kernel():
    rc, out, _ = loader("detect", "--json")
    assert rc == 0
    info = json.loads(out)
    assert info["release"] == os.uname().release and info["running"]
    assert info["distro_id"] == detect.os_release(Path("/")).get("ID", "unknown")
    assert info["recommended"] == ("modern_ebpf" if info["btf"] and info["bpf_ringbuf"] else "kmod")


def test_auto_picks_modern_ebpf_where_btf_and_ringbuf_exist():
    info = detect.detect()
    if not (info.btf and info.bpf_ringbuf):
        pytest.skip("this kernel lacks BTF or BPF ring buffers")
    rc, out, _ = loader("auto")
    assert rc == 0 and "use the modern_ebpf driver" in out


def test_kmod_on_a_kernel_without_module_support_says_so():
    if Path("/proc/modules").exists():
        pytest.skip("this kernel loads modules")
    rc, _, err = loader("kmod")
    assert rc == 5
    assert f"kernel {os.uname().release} does not load modules" in err and "modern_ebpf" in err


def test_headers_missing_names_the_package(tmp_path):
    rc, _, err = loader("build", "--kernel-release", "6.1.0-999-amd64", "--workdir", str(tmp_path))
    assert rc == 3
    assert "no kernel headers for 6.1.0-999-amd64: install them (apt-get install linux-headers-6.1.0-999-amd64)" in err


@pytest.mark.parametrize("distro, pkg", [("debian", "linux-headers-R"), ("ubuntu", "linux-headers-R"),
                                         ("rhel", "kernel-devel-R"), ("amzn", "kernel-devel-R"),
                                         ("arch", "linux-headers")])
def test_headers_package_per_distro(distro, pkg):
    assert headers_package(distro, "R") == pkg


def test_bad_arguments():
    with pytest.raises(SystemExit) as exc:
        with contextlib.redirect_stderr(io.StringIO()):
            main(["no-such-action"])
    assert exc.value.code == 2
    rc, _, err = loader("build", "--headers", "/nonexistent", "--kernel-release", "6.1.0-1-amd64")
    assert rc == 3 and "not a kbuild tree" in err
    rc, _, err = loader("load")
    assert rc in (2, 5)


@pytest.mark.parametrize("kver", debian_kernels() or ["none"])
def test_module_builds_without_warnings(kver, tmp_path):
    if kver == "none":
        pytest.fail("no Debian kernel headers in /usr/src: run tools/setup")
    rc, out, err = loader("build", "--kernel-release", kver, "--workdir", str(tmp_path))
    assert rc == 0, err
    log = (tmp_path / API / kver / "build.log").read_text()
    assert not re.search(r"warning:|error:", log), log
    ko = Path(out.strip().splitlines()[-1])
    info = subprocess.run(["modinfo", str(ko)], capture_output=True, text=True).stdout
    assert f"vermagic:       {kver} " in info
    assert re.search(r"parm:\s+max_consumers:", info) and f"api_version:    {API}" in info


@pytest.mark.skipif(not Path("/usr/sbin/dkms").exists(), reason="dkms is not installed")
def test_dkms_build_and_cleanup(tmp_path):
    kver = (debian_kernels() or [None])[-1]
    if not kver:
        pytest.fail("no Debian kernel headers")
    try:
        rc, out, err = loader("build", "--dkms", "--kernel-release", kver)
        assert rc == 0, err
        assert Path(out.strip().splitlines()[-1]).name.startswith("pyfalco.ko")
        assert f"pyfalco/{API}" in subprocess.run(["dkms", "status", "-m", "pyfalco"], capture_output=True,
                                                  text=True).stdout
    finally:
        rc, out, err = loader("cleanup", "--workdir", str(tmp_path / "none"))
    assert rc == 0, err
    assert "pyfalco" not in subprocess.run(["dkms", "status", "-m", "pyfalco"], capture_output=True, text=True).stdout
