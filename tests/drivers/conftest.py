# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the driver tests (helpers live in drivertools.py: several conftest modules exist)."""

from __future__ import annotations

import os

import pytest

import pyfalco
from drivertools import Tracer
from pyfalco import _schema


@pytest.fixture(scope="session")
def capture():
    if os.geteuid() != 0:
        pytest.fail("driver tests need root (live eBPF capture)")
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


