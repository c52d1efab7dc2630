# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the driver tests (helpers live in drivertools.py: several conftest modules exist)."""

from __future__ import annotations

import os

import pytest

import pyfalco
from drivertools import Tracer
from pyfalco import _schema

#: the engine under test: PYFALCO_TEST_ENGINE=kmod runs this same suite against the kernel
#: module (tests/kmod boots a guest kernel for it); every Capture() without an engine uses it
ENGINE = os.environ.get("PYFALCO_TEST_ENGINE", "modern_ebpf")
if ENGINE != "modern_ebpf":
    pyfalco.Capture.__init__.__defaults__ = (ENGINE,)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if ENGINE == "kmod" and item.name == "test_failed_opens_say_why":
            # it checks that engine="kmod" fails where the module is not loaded
            item.add_marker(pytest.mark.skip(reason="asserts the kmod engine is unavailable"))


@pytest.fixture(scope="session")
def capture():
    if os.geteuid() != 0:
        pytest.fail(f"driver tests need root (live {ENGINE} capture)")
    with pyfalco.Capture(syscalls=sorted(_schema.SYSCALL_NAMES[n] for n in _schema.DRIVER_SYSCALLS),
                         start=False, snaplen=256) as cap:
        yield cap


@pytest.fixture
def tracer(capture):
    capture.select(sorted(_schema.SYSCALL_NAMES[n] for n in _schema.DRIVER_SYSCALLS))
    return Tracer(capture)


@pytest.fixture(scope="session")
def trigger(tmp_path_factory):
    """Path of the C helper (tests/drivers/helpers/trigger.c), built for this session."""
    import subprocess
    from pathlib import Path
    src = Path(__file__).parent / "helpers" / "trigger.c"
    out = tmp_path_factory.mktemp("helpers") / "trigger"
    subprocess.run(["cc", "-O2", "-Wall", "-o", str(out), str(src)], check=True)
    return str(out)


