# SPDX-License-Identifier: Apache-2.0
"""The ctypes boundary: finds and loads libpyfalco, declares every C signature in one table.

Every function of ``libpyfalco/include/pyfalco/pyfalco.h`` has exactly one entry in
``SIGNATURES`` (tests/native/test_abi.py checks both directions). A missing symbol or an ABI
version mismatch is an ImportError (AbiMismatchError) naming it. Negative errno returns become
pyfalco exceptions here and nowhere else: ``error_for`` picks the class (``check`` for captures,
``writer_check`` for the capture-file writer).
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import sys
from ctypes import (CFUNCTYPE, POINTER, c_char_p, c_int, c_size_t, c_uint16, c_uint32, c_uint64,
                    c_void_p)
from pathlib import Path

from .errors import (AbiMismatchError, CaptureFileError, DriverPermissionError, DriverUnavailableError, NativeError,
                     PyFalcoError)
from .record import BATCH_ENTRY_SIZE as _BATCH_ENTRY_SIZE

LIB_NAME = "libpyfalco.so"
ABI_MAJOR = 1  # PYFALCO_LIB_ABI_MAJOR of the header this module mirrors

PYFALCO_TIMEOUT = 1
PYFALCO_EOF = 2
PYFALCO_EF_STATE_ONLY = 1
PYFALCO_EF_SKIP_RUN = 2
PYFALCO_SKIP_RUN_TYPE = 0xFFFF  # event type of a run of skipped events (next_batch_skip)
BATCH_ENTRY_SIZE = _BATCH_ENTRY_SIZE  # struct pyfalco_batch_entry (pyfalco.record)

c_capture_p = c_void_p  # opaque struct pyfalco_capture *
LOG_FN = CFUNCTYPE(None, c_void_p, c_int, c_char_p)

# name: (argtypes, restype). Pointers handed back by the library (strings it owns) are
# c_char_p only where the library keeps them alive; event memory is read as c_void_p.
SIGNATURES: dict[str, tuple[list, object]] = {
    "pyfalco_abi_version": ([], c_uint32),
    "pyfalco_version": ([], c_char_p),
    "pyfalco_driver_api_version": ([], c_char_p),
    "pyfalco_driver_schema_version": ([], c_char_p),
    "pyfalco_driver_versions": ([], c_char_p),
    "pyfalco_capture_new": ([], c_capture_p),
    "pyfalco_capture_free": ([c_capture_p], None),
    "pyfalco_capture_error": ([c_capture_p], c_char_p),
    "pyfalco_capture_set_log": ([c_capture_p, LOG_FN, c_void_p], None),
    "pyfalco_capture_set": ([c_capture_p, c_char_p, c_char_p], c_int),
    "pyfalco_capture_open": ([c_capture_p], c_int),
    "pyfalco_capture_select_syscalls": ([c_capture_p, POINTER(c_uint16), c_size_t], c_int),
    "pyfalco_capture_start": ([c_capture_p], c_int),
    "pyfalco_capture_stop": ([c_capture_p], c_int),
    "pyfalco_capture_next": ([c_capture_p, POINTER(c_void_p), POINTER(c_uint16), POINTER(c_uint16)], c_int),
    "pyfalco_capture_next_batch": ([c_capture_p, c_void_p, c_size_t, c_uint32, c_int, POINTER(c_size_t),
                                    POINTER(c_uint32)], c_int),
    "pyfalco_capture_next_batch_skip": ([c_capture_p, c_void_p, c_size_t, c_uint32, c_int, c_char_p, c_size_t,
                                         POINTER(c_size_t), POINTER(c_uint32), POINTER(c_uint32)], c_int),
    "pyfalco_stats_count": ([], c_uint32),
    "pyfalco_stats_name": ([c_uint32], c_char_p),
    "pyfalco_capture_stats": ([c_capture_p, POINTER(c_uint64), c_uint32], c_int),
    "pyfalco_capture_metadata": ([c_capture_p, c_uint32, POINTER(c_uint32), POINTER(c_void_p),
                                  POINTER(c_uint32)], c_int),
    # capture file writer (struct pyfalco_writer *)
    "pyfalco_writer_new": ([], c_void_p),
    "pyfalco_writer_open": ([c_void_p, c_char_p, c_uint32], c_int),
    "pyfalco_writer_write_block": ([c_void_p, c_uint32, c_void_p, c_uint32], c_int),
    "pyfalco_writer_write_event": ([c_void_p, c_void_p, c_uint16, c_uint16], c_int),
    "pyfalco_writer_write_batch": ([c_void_p, c_void_p, c_size_t, c_uint32, c_void_p, POINTER(c_uint32)], c_int),
    "pyfalco_writer_stats": ([c_void_p, POINTER(c_uint64), POINTER(c_uint64), POINTER(c_uint64)], c_int),
    "pyfalco_writer_close": ([c_void_p], c_int),
    "pyfalco_writer_free": ([c_void_p], None),
    "pyfalco_writer_error": ([c_void_p], c_char_p),
}


def _candidates() -> list[Path]:
    """Where libpyfalco.so may be: env override, the package, site dirs, the checkout's build."""
    out = []
    env = os.environ.get("PYFALCO_LIBRARY")
    if env:
        return [Path(env)]
    here = Path(__file__).resolve().parent
    out.append(here / LIB_NAME)
    # editable installs: the package source is here, the built library in site-packages
    for p in sys.path:
        if p:
            out.append(Path(p) / "pyfalco" / LIB_NAME)
    out.append(here.parent / "build" / "libpyfalco" / LIB_NAME)
    return out


def _load() -> ctypes.CDLL:
    tried = []
    for path in _candidates():
        if path.is_file():
            try:
                lib = ctypes.CDLL(str(path), use_errno=True)
            except OSError as err:
                raise AbiMismatchError(f"loading {path}: {err}") from err
            break
        tried.append(str(path))
    else:
        raise AbiMismatchError(f"libpyfalco not found (build it with `pip install .` or set PYFALCO_LIBRARY); "
                               f"looked in: {', '.join(tried)}")
    for name, (argtypes, restype) in SIGNATURES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError as err:
            raise AbiMismatchError(f"{path}: missing symbol {name}") from err
        fn.argtypes = argtypes
        fn.restype = restype
    version = lib.pyfalco_abi_version()
    if version >> 16 != ABI_MAJOR:
        raise AbiMismatchError(f"{path}: ABI version {version >> 16}.{version & 0xFFFF}, "
                               f"this pyfalco needs {ABI_MAJOR}.x")
    lib.path = str(path)
    return lib


lib = _load()

STAT_NAMES: tuple[str, ...] = tuple(lib.pyfalco_stats_name(i).decode() for i in range(lib.pyfalco_stats_count()))


def error_message(handle) -> str:
    msg = lib.pyfalco_capture_error(handle)
    return msg.decode("utf-8", "replace") if msg else ""


#: errnos with which the replay engine says a capture file cannot be read (CaptureFileError)
FILE_ERRNOS = frozenset((_errno.EINVAL, _errno.EIO, _errno.ENOTSUP, _errno.ENOENT, _errno.ENOMEM))
_PERMISSION_ERRNOS = frozenset((_errno.EPERM, _errno.EACCES))
_UNAVAILABLE_ERRNOS = frozenset((_errno.ENOENT, _errno.ENODEV, _errno.ENOTSUP, _errno.ENOSYS))


def error_for(err: int, msg: str, *, file: bool = False, driver: bool = True) -> PyFalcoError:
    """The pyfalco exception for a libpyfalco call that returned ``-err``, with the library's message.

    ``file``: the call read a capture file (replay), so its input errors are CaptureFileError;
    ``driver``: the call loads or runs a driver, so permission and availability errnos are
    DriverPermissionError / DriverUnavailableError. Anything else is NativeError (an OSError).
    """
    if file and err in FILE_ERRNOS:
        return CaptureFileError(msg)
    if driver and err in _PERMISSION_ERRNOS:
        return DriverPermissionError(err, msg)
    if driver and err in _UNAVAILABLE_ERRNOS:
        return DriverUnavailableError(err, msg)
    return NativeError(err, msg)


def check(rc: int, handle, what: str, *, file: bool = False) -> int:
    """Returns rc when >= 0; raises ``error_for(-rc, ...)`` with the capture's message otherwise
    (``file=True`` for a replay: its input errors are CaptureFileError)."""
    if rc >= 0:
        return rc
    err = -rc
    msg = error_message(handle) or f"{what}: {os.strerror(err)}"
    raise error_for(err, msg, file=file, driver=not file)


def writer_check(rc: int, handle, what: str) -> int:
    """Returns rc when >= 0; raises NativeError (an OSError) with the writer's message otherwise."""
    if rc >= 0:
        return rc
    msg = lib.pyfalco_writer_error(handle)
    msg = msg.decode("utf-8", "replace") if msg else f"{what}: {os.strerror(-rc)}"
    raise error_for(-rc, msg, driver=False)
