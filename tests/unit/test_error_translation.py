# SPDX-License-Identifier: Apache-2.0
"""One error translation: libpyfalco's negative errnos become pyfalco exceptions in
pyfalco._native.error_for and nowhere else; pyfalco raises no plain OSError."""

from __future__ import annotations

import ast
import errno
from pathlib import Path

import pytest

import pyfalco
from pyfalco import _native
from pyfalco.errors import (CaptureClosedError, CaptureFileError, DriverPermissionError, DriverUnavailableError,
                            NativeError, PyFalcoError)

ROOT = Path(pyfalco.__file__).parent


@pytest.mark.parametrize("err, kw, cls", [
    (errno.EPERM, {}, DriverPermissionError),
    (errno.EACCES, {}, DriverPermissionError),
    (errno.ENODEV, {}, DriverUnavailableError),
    (errno.ENOENT, {}, DriverUnavailableError),
    (errno.EBUSY, {}, NativeError),
    (errno.ENOENT, {"file": True, "driver": False}, CaptureFileError),
    (errno.EIO, {"file": True, "driver": False}, CaptureFileError),
    (errno.EBUSY, {"file": True, "driver": False}, NativeError),
    (errno.ENOENT, {"driver": False}, NativeError),      # the writer: a missing directory is no driver matter
    (errno.ENOSPC, {"driver": False}, NativeError),
])
def test_error_for_picks_the_class(err, kw, cls):
    exc = _native.error_for(err, "the library's message", **kw)
    assert type(exc) is cls and isinstance(exc, PyFalcoError)
    assert "the library's message" in str(exc)
    if isinstance(exc, NativeError):
        assert isinstance(exc, OSError) and exc.errno == err


def test_pyfalco_raises_no_plain_oserror():
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) \
                    and isinstance(node.exc.func, ast.Name) and node.exc.func.id in ("OSError", "IOError"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, f"plain OSError raised (use pyfalco._native.error_for / a pyfalco exception): {found}"


def test_replay_reader_errors_are_capture_file_errors(tmp_path):
    """The raw replay reader (real libpyfalco) on a missing and on a garbage file."""
    from pyfalco.scap._native_scap import Replay
    with pytest.raises(CaptureFileError):
        Replay(str(tmp_path / "missing.scap"))
    junk = tmp_path / "junk.scap"
    junk.write_bytes(b"not a capture file at all" * 10)
    with pytest.raises(CaptureFileError):
        Replay(str(junk))


def test_writer_errors_are_native_errors(tmp_path):
    from pyfalco.scap import CaptureWriter
    with pytest.raises(NativeError, match="nodir"):
        CaptureWriter(tmp_path / "nodir" / "x.scap")
    w = CaptureWriter(tmp_path / "ok.scap")
    w.close()
    with pytest.raises(CaptureClosedError):
        w.stats()
