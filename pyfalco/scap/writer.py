# SPDX-License-Identifier: Apache-2.0
"""Writes capture files (.scap) through libpyfalco's writer: the Python face of pyfalco_writer_*.

    with CaptureWriter("out.scap", gzip=True) as w:
        w.write_initial_state(state)          # metadata blocks: threads, fds, users, interfaces
        w.write(raw_event)                    # one event record (pyfalco's model)
        w.write(raw_event, state_only=True)   # kept for state, not shown by readers

``record()`` copies events from an open capture into a file, with the stop conditions (events,
seconds) and an optional per-event filter; the CLI builds on it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import struct
import time
from collections.abc import Callable, Iterable

from ..errors import CaptureClosedError, NativeError
from ..event_codes import PPME_PLUGINEVENT_E
from ..initial_state import InitialState
from ..record import HDR_SIZE, pack_header
from . import _native_scap as ns
from .metadata import blocks_from_initial_state


#: errors of a call refused before writing (a malformed record, a block after the events, ...);
#: any other error is the file's (ENOSPC, EIO, EFBIG, ...) and ends the recording
_USAGE_ERRORS = frozenset({errno.EINVAL, errno.EBADF, errno.EBUSY, errno.ENOMEM})
_PLUGIN_PARAMS = struct.Struct("<III")   # len(plugin_id) = 4, len(data), plugin_id


def _identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of path when it is a regular file, else None (a device such as
    /dev/full, a FIFO, or nothing)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None


class CaptureWriter:
    """An open capture file being written. Raises OSError (errno + message) on write errors.

    A recording that fails leaves no half-written file behind: when a write (or the final
    flush) fails, or the ``with`` block is left by an exception, before any event was written,
    the file is removed (it held the header and metadata only, which libs readers refuse as
    "no events in file"); after events were written it is closed, so the events before the
    failure stay readable. ``abort()`` removes it explicitly. Only the regular file this writer
    created is ever removed.
    """

    def __init__(self, path, *, gzip: bool = False, full_params: bool = False):
        self.path = os.fspath(path)
        self._ident: tuple[int, int] | None = None
        self._w = ns.lib.pyfalco_writer_new()
        if not self._w:
            raise MemoryError("pyfalco_writer_new")
        flags = (ns.PYFALCO_WRITER_GZIP if gzip else 0) | (ns.PYFALCO_WRITER_FULL_PARAMS if full_params else 0)
        try:
            ns.writer_check(ns.lib.pyfalco_writer_open(self._w, os.fsencode(self.path), flags), self._w,
                            "opening capture file")
        except BaseException:
            ns.lib.pyfalco_writer_free(self._w)
            self._w = None
            raise
        self._ident = _identity(self.path)

    # -- metadata ---------------------------------------------------------------------------
    def write_block(self, block_type: int, body: bytes) -> None:
        """One raw metadata block (before the first event)."""
        self._check(ns.lib.pyfalco_writer_write_block(self._live(), block_type, body, len(body)), "writing block")

    def write_initial_state(self, state: InitialState) -> None:
        """The metadata blocks of the writer profile built from ``state`` (every field made to fit
        its width: see pyfalco.scap.metadata). The blocks are built before anything is written;
        if that fails, the file is removed and the error raised."""
        self._live()
        try:
            blocks = blocks_from_initial_state(state)
        except BaseException:
            self.abort()
            raise
        for btype, body in blocks:
            self.write_block(btype, body)

    # -- events -----------------------------------------------------------------------------
    def write(self, raw: bytes, *, cpu: int = 0, state_only: bool = False) -> None:
        """One event record (v2 header, exit-only current layout; see docs/capture-files.md)."""
        self._check(ns.lib.pyfalco_writer_write_event(self._live(), raw, cpu, 1 if state_only else 0),
                    "writing event")

    def write_plugin_event(self, ts: int, plugin_id: int, data: bytes, *, cpu: int = 0) -> None:
        """One plugin event as libscap has it (``pluginevent``, code 322: the plugin's id (u32) and
        its payload, both with 4-byte lengths; no thread), as Falco writes a plugin source's events."""
        raw = pack_header(ts, 0xFFFFFFFFFFFFFFFF, HDR_SIZE + 12 + len(data), PPME_PLUGINEVENT_E, 2) \
            + _PLUGIN_PARAMS.pack(4, len(data), plugin_id) + bytes(data)
        self.write(raw, cpu=cpu)

    def write_batch(self, buf, used: int, nevents: int, modes: bytes | None = None) -> int:
        """The entries of a pyfalco_capture_next_batch buffer; modes: one PYFALCO_WRITE_* per entry."""
        written = ctypes.c_uint32()
        self._check(ns.lib.pyfalco_writer_write_batch(self._live(), buf, used, nevents, modes,
                                                      ctypes.byref(written)), "writing batch")
        return written.value

    def stats(self) -> dict[str, int]:
        ev, rec, by = ctypes.c_uint64(), ctypes.c_uint64(), ctypes.c_uint64()
        ns.lib.pyfalco_writer_stats(self._live(), ctypes.byref(ev), ctypes.byref(rec), ctypes.byref(by))
        return {"events": ev.value, "records": rec.value, "bytes": by.value}

    # -- lifetime ---------------------------------------------------------------------------
    def _live(self):
        if not self._w:
            raise CaptureClosedError(f"capture writer for {self.path} is closed")
        return self._w

    def _check(self, rc: int, what: str) -> None:
        try:
            ns.writer_check(rc, self._w, what)
        except OSError as err:
            if err.errno in _USAGE_ERRORS:
                raise  # nothing was written: the writer stays usable
            raise self._finish_failed(err) from None

    def _events_written(self, w) -> int:
        ev = ctypes.c_uint64()
        ns.lib.pyfalco_writer_stats(w, ctypes.byref(ev), None, None)
        return ev.value

    def _finish_failed(self, err: OSError) -> NativeError:
        """After a failed write: the file removed (no events yet) or closed (events written)."""
        w = self._w
        n = self._events_written(w) if w else 0
        if n == 0:
            self.abort()
            return NativeError(err.errno, f"{err.strerror}; the partial file {self.path} was removed")
        self._w = None
        try:
            ns.lib.pyfalco_writer_close(w)
        finally:
            ns.lib.pyfalco_writer_free(w)
        return NativeError(err.errno, f"{err.strerror}; {self.path} was closed after the {n} events written "
                                      "before the error")

    def _remove(self) -> bool:
        """Removes the file if it is still the regular file this writer created."""
        if self._ident is None or _identity(self.path) != self._ident:
            return False
        try:
            os.unlink(self.path)
        except OSError:
            return False
        return True

    def abort(self) -> None:
        """Closes without keeping anything: the file is removed (idempotent)."""
        w, self._w = self._w, None
        if w:
            ns.lib.pyfalco_writer_close(w)
            ns.lib.pyfalco_writer_free(w)
            self._remove()
        self._ident = None

    @property
    def closed(self) -> bool:
        return self._w is None

    def close(self) -> None:
        """Flushes and closes; idempotent. Raises OSError when the data could not be written."""
        if not self._w:
            return
        w = self._w
        n = self._events_written(w)
        self._w = None
        try:
            ns.writer_check(ns.lib.pyfalco_writer_close(w), w, "closing capture file")
        except OSError as err:
            if n == 0 and self._remove():
                raise NativeError(err.errno, f"{err.strerror}; the partial file {self.path} was removed") from None
            raise
        finally:
            ns.lib.pyfalco_writer_free(w)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and self._w and self._events_written(self._w) == 0:
            self.abort()  # the recording failed before its first event: nothing worth keeping
        else:
            self.close()
        return False

    def __del__(self):  # safety net only; close() is the contract
        if getattr(self, "_w", None):
            ns.lib.pyfalco_writer_free(self._w)
            self._w = None


def record(events: Iterable, writer: CaptureWriter, *, max_events: int | None = None,
           max_seconds: float | None = None, keep: Callable[[object], bool | str] | None = None,
           raw: Callable[[object], tuple[bytes, int, int]] | None = None) -> int:
    """Copies events into ``writer`` until the source ends or a limit is reached.

    events: any iterable of events (e.g. a pyfalco.Capture). raw(evt) gives the record bytes,
    cpu and flags of an event (default: ``evt.record``, ``evt.cpu``, ``evt.flags``,
    or the tuple itself; pyfalco.Event works as it is). keep(evt): True to write, False to drop, "state" to write as
    state-only (what ``sysdig -w`` does with the events a filter drops but state needs).
    Returns the number of events written (state-only ones included).
    """
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    n = 0
    for evt in events:
        if deadline is not None and time.monotonic() >= deadline:
            break
        decision = True if keep is None else keep(evt)
        if decision is False:
            continue
        if raw is not None:
            rec, cpu, flags = raw(evt)
        elif isinstance(evt, tuple):
            rec, cpu, flags = evt
        else:
            rec, cpu, flags = evt.record, getattr(evt, "cpu", 0), getattr(evt, "flags", 0)
        writer.write(bytes(rec), cpu=cpu, state_only=decision == "state" or bool(flags & 1))
        n += 1
        if max_events is not None and n >= max_events:
            break
    return n
