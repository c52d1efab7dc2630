# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the in-guest tests: the built module and the loader CLI."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

KO = os.environ.get("PYFALCO_KMOD_KO", "")
# drivertools (syscalls by name) lives with the driver suite
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "drivers"))


def loader(*args: str, check: bool | None = None) -> subprocess.CompletedProcess:
    """Runs pyfalco-driver-loader with args, in this process (a Python start costs seconds under
    qemu's emulation): its exit status, stdout and stderr, as subprocess.run would give them."""
    from pyfalco.driver_loader import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    proc = subprocess.CompletedProcess(["pyfalco-driver-loader", *args], rc, out.getvalue(), err.getvalue())
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def module_loaded() -> bool:
    return Path("/sys/module/pyfalco").exists()


@pytest.fixture
def ko() -> str:
    assert KO and Path(KO).exists(), "PYFALCO_KMOD_KO must name the built module"
    return KO


@pytest.fixture
def unloaded(ko):
    """The module is not loaded before the test and is unloaded after it."""
    loader("unload")
    assert not module_loaded()
    yield ko
    loader("unload")


@pytest.fixture
def loaded(unloaded):
    loader("load", "--ko", unloaded, check=True)
    yield unloaded
