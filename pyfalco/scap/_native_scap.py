# SPDX-License-Identifier: Apache-2.0
"""Writer constants and error check (signatures are in ``pyfalco._native.SIGNATURES``), and a
small raw-event reader over the replay engine."""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from ctypes import c_size_t, c_uint8, c_uint16, c_uint32, c_uint64, c_void_p

from .. import _native
from ..record import HDR_LEN_OFFSET

lib = _native.lib
c_writer_p = c_void_p  # opaque struct pyfalco_writer *

PYFALCO_WRITER_GZIP = 1
PYFALCO_WRITER_FULL_PARAMS = 2
PYFALCO_WRITE_SKIP = 0
PYFALCO_WRITE_EVENT = 1
PYFALCO_WRITE_STATE_ONLY = 2

#: errors of the writer's calls: pyfalco._native.writer_check (NativeError, an OSError)
writer_check = _native.writer_check


class Replay:
    """Raw events of a capture file, in file order: iterates ``(record bytes, cpu, flags)``.

    Used by the metadata helpers and the tests; the public way to replay is
    ``pyfalco.Capture(engine="replay", capture_file=...)``. Raises CaptureFileError when the
    file cannot be read, naming the offset.
    """

    def __init__(self, path: str):
        self._h = lib.pyfalco_capture_new()
        if not self._h:
            raise MemoryError("pyfalco_capture_new")
        try:
            for key, value in (("engine", "replay"), ("capture_file", os.fspath(path))):
                self._check(lib.pyfalco_capture_set(self._h, key.encode(), value.encode()))
            self._check(lib.pyfalco_capture_open(self._h))
            self._check(lib.pyfalco_capture_start(self._h))
        except BaseException:
            self.close()
            raise

    def _check(self, rc: int) -> int:
        if rc < 0:
            msg = _native.error_message(self._h) or os.strerror(-rc)
            raise _native.error_for(-rc, msg, file=True, driver=False)
        return rc

    def metadata(self) -> list[tuple[int, bytes]]:
        """Every metadata block read so far: (block type, raw body)."""
        out = []
        bt, body, ln = c_uint32(), c_void_p(), c_uint32()
        i = 0
        while lib.pyfalco_capture_metadata(self._h, i, ctypes.byref(bt), ctypes.byref(body), ctypes.byref(ln)) == 0:
            out.append((bt.value, ctypes.string_at(body.value, ln.value) if ln.value else b""))
            i += 1
        return out

    def __iter__(self):
        evt, cpu, flags = c_void_p(), c_uint16(), c_uint16()
        while True:
            rc = lib.pyfalco_capture_next(self._h, ctypes.byref(evt), ctypes.byref(cpu), ctypes.byref(flags))
            if rc == _native.PYFALCO_EOF:
                return
            self._check(rc)
            n = c_uint32.from_address(evt.value + HDR_LEN_OFFSET).value
            yield ctypes.string_at(evt.value, n), cpu.value, flags.value

    def batches(self, buflen: int = 1 << 20, max_events: int = 4096):
        """Yields (buffer, used, nevents) from pyfalco_capture_next_batch until the end."""
        buf = (c_uint8 * buflen)()
        used, n = c_size_t(), c_uint32()
        while True:
            rc = lib.pyfalco_capture_next_batch(self._h, buf, len(buf), max_events, 0, ctypes.byref(used),
                                                ctypes.byref(n))
            if rc == -_errno.ENOSPC and used.value > len(buf):  # one event larger than the buffer
                buf = (c_uint8 * used.value)()
                continue
            if rc == _native.PYFALCO_EOF:
                return
            self._check(rc)
            yield buf, used.value, n.value

    def stats(self) -> dict[str, int]:
        arr = (c_uint64 * len(_native.STAT_NAMES))()
        n = self._check(lib.pyfalco_capture_stats(self._h, arr, len(arr)))
        return dict(zip(_native.STAT_NAMES[:n], arr[:n]))

    @property
    def handle(self):
        return self._h

    def close(self) -> None:
        if self._h:
            lib.pyfalco_capture_free(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
