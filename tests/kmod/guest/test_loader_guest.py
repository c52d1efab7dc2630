# SPDX-License-Identifier: Apache-2.0
"""pyfalco-driver-loader against a kernel that loads modules (Debian's, in the guest)."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

import pyfalco
from conftest import loader, module_loaded
from pyfalco import _native

# the module and the library are built from the same tree: the same transport version
API = _native.lib.pyfalco_driver_api_version().decode()


def test_detect_in_the_guest_kernel():
    info = json.loads(loader("detect", "--json", check=True).stdout)
    assert info["release"] == os.uname().release
    assert info["modules"] is True and info["btf"] is True and info["bpf_ringbuf"] is True
    assert info["recommended"] == "modern_ebpf"
    assert info["headers_package"] == f"linux-headers-{os.uname().release}"


def test_load_status_unload(unloaded):
    out = loader("load", "--ko", unloaded, "-p", "verbose=1", "-p", "max_consumers=2", check=True)
    assert "loaded" in out.stdout
    assert module_loaded() and Path("/dev/pyfalco").exists()
    st = json.loads(loader("status", "--json", check=True).stdout)
    assert st["loaded"] and st["device"] and st["version"] == API and st["in_use"] == 0
    assert st["parameters"]["max_consumers"] == "2" and st["parameters"]["verbose"] == "Y"
    assert "unloaded the pyfalco module" in loader("unload", check=True).stdout
    assert not module_loaded()
    assert "not loaded" in loader("unload", check=True).stdout


def test_module_already_loaded(loaded):
    proc = loader("load", "--ko", loaded)
    assert proc.returncode == 5
    assert "already loaded" in proc.stderr and "unload first" in proc.stderr
    # `kmod` replaces a loaded module instead (Falco's loader cleans up first)
    proc = loader("kmod", "--ko", loaded, check=True)
    assert "replacing it" in proc.stdout and module_loaded()


def test_unload_while_capturing_is_refused(loaded):
    with pyfalco.Capture(engine="kmod", syscalls=["openat"]):
        proc = loader("unload")
        assert proc.returncode == 6
        assert "in use (1 open capture(s))" in proc.stderr
        assert module_loaded()
    assert loader("unload").returncode == 0


@pytest.mark.parametrize("param, message", [
    ("max_consumers=0", "invalid parameters max_consumers=0"),
    ("max_buffer_bytes=12345", "invalid parameters max_buffer_bytes=12345"),
    ("no_such_param=1", "unknown module parameter 'no_such_param' (it has: max_buffer_bytes, max_consumers, verbose)"),
])
def test_bad_module_parameters_are_refused(unloaded, param, message):
    proc = loader("load", "--ko", unloaded, "-p", param)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert not module_loaded()


def test_malformed_parameter_is_refused_before_loading(unloaded):
    proc = loader("load", "--ko", unloaded, "-p", "max_consumers")
    assert proc.returncode == 2
    assert "bad module parameter 'max_consumers': expected name=value" in proc.stderr


def test_module_for_another_kernel_is_refused(unloaded, tmp_path):
    release = os.uname().release
    other = release[:-1] + ("x" if release[-1] != "x" else "y")  # same length: the .ko stays valid ELF
    data = Path(unloaded).read_bytes().replace(f"vermagic={release}".encode(), f"vermagic={other}".encode())
    fake = tmp_path / "pyfalco.ko"
    fake.write_bytes(data)
    proc = loader("load", "--ko", str(fake))
    assert proc.returncode == 5
    assert f"was built for kernel {other}, this one is {release}" in proc.stderr
    assert not module_loaded()


def test_headers_missing_names_the_package(tmp_path):
    proc = loader("build", "--kernel-release", "6.1.0-999-amd64", "--workdir", str(tmp_path))
    assert proc.returncode == 3
    assert "apt-get install linux-headers-6.1.0-999-amd64" in proc.stderr


def test_consumers_beyond_max_consumers_get_ebusy(unloaded):
    loader("load", "--ko", unloaded, "-p", "max_consumers=2", check=True)
    a = pyfalco.Capture(engine="kmod", syscalls=["openat"], buffer_bytes=1 << 16)
    b = pyfalco.Capture(engine="kmod", syscalls=["close"], buffer_bytes=1 << 16)
    try:
        with pytest.raises(pyfalco.NativeError) as err:
            pyfalco.Capture(engine="kmod", buffer_bytes=1 << 16)
        assert err.value.errno == errno.EBUSY
        assert "max_consumers" in str(err.value)
    finally:
        a.close()
        b.close()
    pyfalco.Capture(engine="kmod", buffer_bytes=1 << 16).close()


def test_two_consumers_each_get_their_own_selection(loaded):
    with pyfalco.Capture(engine="kmod", syscalls=["openat", "close"], start=False) as a, \
            pyfalco.Capture(engine="kmod", syscalls=["close"], start=False) as b:
        a.start()
        b.start()
        fd = os.open("/etc/hostname", os.O_RDONLY)
        os.close(fd)
        tid = os.getpid()
        ea = [e.name for e in a.next_batch(200) if e.tid == tid]
        eb = [e.name for e in b.next_batch(200) if e.tid == tid]
    assert ea == ["openat", "close"], ea
    assert eb == ["close"], eb


def test_kmod_engine_without_module_says_how_to_load_it(unloaded):
    with pytest.raises(pyfalco.DriverUnavailableError) as err:
        pyfalco.Capture(engine="kmod")
    assert "pyfalco-driver-loader kmod" in str(err.value)


def test_cleanup_unloads_and_removes_the_build(tmp_path, unloaded):
    work = tmp_path / "work"
    shutil.copytree(Path(unloaded).parent, work / API / "x")
    loader("load", "--ko", unloaded, check=True)
    proc = loader("cleanup", "--workdir", str(work), check=True)
    assert "unloaded the pyfalco module" in proc.stdout and f"removed {work}" in proc.stdout
    assert not module_loaded() and not work.exists()
