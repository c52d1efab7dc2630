# SPDX-License-Identifier: Apache-2.0
"""pyfalco.Capture: one capture (live eBPF, kernel module or a capture file) as Python objects.

Events cross the ctypes boundary in batches (one call per batch, not per event) and are split
and decoded lazily by events.py.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import struct
import time
import weakref
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from . import _native, _schema
from .errors import CaptureClosedError, DriverUnavailableError
from .events import Event, split_batch
from .record import KF_SPEC_HEADER, KF_SPEC_MAGIC
from .syscalls import STATE_SET

if TYPE_CHECKING:
    from .initial_state import InitialState

log = logging.getLogger("pyfalco.native")

#: the kernel-side filter's spec (libpyfalco/include/pyfalco/kfilter.h): its magic, and a spec
#: that turns the filter off (the header with no event type on and no pattern). pyfalco.kfilter
#: derives the others from rules.
KF_SPEC_OFF = KF_SPEC_HEADER.pack(KF_SPEC_MAGIC, 0, 0, 0)


class KernelFilterSpec(Protocol):
    """What :meth:`Capture.set_kernel_filter` installs: ``spec()`` the binary form
    (``pyfalco.kfilter.KernelFilter`` is one)."""

    def spec(self) -> bytes: ...


_KF_FUNCS: dict[str, Any] = {}


def _kf_fn(name: str) -> Any:
    """A kernel-filter function of libpyfalco, bound on first use (None in a libpyfalco built
    before the filter existed)."""
    if name not in _KF_FUNCS:
        fn = getattr(_native.lib, name, None)
        if fn is not None:
            if name == "pyfalco_capture_set_kernel_filter":
                fn.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
            else:
                fn.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64), ctypes.c_uint32]
            fn.restype = ctypes.c_int
        _KF_FUNCS[name] = fn
    return _KF_FUNCS[name]

#: syscalls captured when the caller does not choose: everything the drivers decode except the
#: plain I/O syscalls (read/write), which Falco also ignores by default (`falco -i`), and
#: mprotect (a memory-management storm for no state).
IO_SYSCALLS = frozenset({"read", "write", "mprotect"})
DEFAULT_SYSCALLS = frozenset(_schema.SYSCALL_NAMES[nr] for nr in _schema.DRIVER_SYSCALLS) - IO_SYSCALLS



def state_syscalls() -> frozenset[str]:
    """The syscalls whose events keep process and fd state right (Falco's state set: those the
    event table flags MODIFIES_STATE, plus prlimit64 and setrlimit). A Capture that feeds an
    :class:`~pyfalco.inspector.Inspector` needs them whatever else it selects (without clone,
    execve and procexit a process has no parent): the Inspector adds the missing ones to a live
    capture it is given."""
    return STATE_SET


#: libpyfalco's PF_MASK_CLOSE (capture.c): the skip mask's value for close trailers
_MASK_CLOSE = 3
_LEVELS = {3: logging.ERROR, 4: logging.WARNING, 6: logging.INFO, 7: logging.DEBUG}


def syscall_numbers(syscalls: Iterable[str | int]) -> list[int]:
    """Native numbers of syscalls given by name or number; unknown names raise ValueError, a
    single string (``"execve"`` instead of ``["execve"]``) raises TypeError."""
    if isinstance(syscalls, (str, bytes)):
        raise TypeError(f"syscalls: expected a list of syscall names or numbers, not a {type(syscalls).__name__} "
                        f"(write [{syscalls!r}])")
    out = set()
    for s in syscalls:
        if isinstance(s, bool) or not isinstance(s, (int, str)):
            raise TypeError(f"syscalls: {s!r} is not a syscall name or number")
        if isinstance(s, int):
            if not 0 <= s < 512:
                raise ValueError(f"syscall number {s} out of range")
            out.add(s)
            continue
        nr = _schema.SYSCALL_NUMBERS.get(s)
        if nr is None:
            # event names that differ from the syscall's (prlimit -> prlimit64, umount -> umount2)
            codes = _schema.EVENT_CODES_BY_NAME.get(s, ())
            nrs = [n for n, c in _schema.SYSCALL_EVENT.items() if c in codes]
            if not nrs:
                raise ValueError(f"unknown syscall {s!r}")
            out.update(nrs)
        else:
            out.add(nr)
    return sorted(out)


def _on_log(_ctx, level, msg):
    # an error-level message always comes with a failed call, whose exception carries the same
    # text: logged at debug level so that it is not printed twice
    lvl = _LEVELS.get(level, logging.DEBUG)
    log.log(logging.DEBUG if lvl >= logging.ERROR else lvl, "%s", msg.decode("utf-8", "replace"))


_LOG_CB = _native.LOG_FN(_on_log)  # one callback for the process, kept alive here


def _free_handle(handle):
    _native.lib.pyfalco_capture_free(handle)


class Capture:
    """A capture: iterate it for ``pyfalco.Event`` objects.

    ``Capture(engine="modern_ebpf" | "kmod" | "replay" | "nodriver", syscalls=None,
    capture_file=None, buffer_bytes=None, cpus_for_each_buffer=None, snaplen=None,
    start=True, batch_bytes=1 MiB, timeout_ms=100)``

    Opening loads the driver (or opens the file) and raises DriverUnavailableError,
    DriverPermissionError or NativeError saying why it could not. ``close()`` is idempotent;
    any other call after it raises CaptureClosedError. Use it as a context manager.
    """

    #: event code of the close exits that :meth:`next_raw_skip_batch` appends, as (ts, tid, res,
    #: fd), to the entry before them (libpyfalco's close trailer: ``flags & 4``, see
    #: ``Inspector.process_raw``) instead of copying them as entries; None: copied. Set by the
    #: Inspector that reads this capture (``Inspector.batch_skip``) when no rule wants closes.
    close_trailer_code: int | None = None
    _close_masks: tuple | None = None

    def __init__(self, engine: str = "modern_ebpf", *, syscalls: Iterable[str | int] | None = None,
                 capture_file: str | None = None, buffer_bytes: int | None = None,
                 cpus_for_each_buffer: int | None = None, snaplen: int | None = None, start: bool = True,
                 batch_bytes: int = 1 << 20, timeout_ms: int = 100, kmod_device: str | None = None):
        lib = _native.lib
        self.engine = engine
        self.capture_file = capture_file
        self.timeout_ms = timeout_ms
        self._handle = None
        self._num = 0
        self._eof = False
        handle = lib.pyfalco_capture_new()
        if not handle:
            raise MemoryError("pyfalco_capture_new")
        self._finalizer = weakref.finalize(self, _free_handle, handle)
        self._handle = handle
        lib.pyfalco_capture_set_log(handle, _LOG_CB, None)
        settings = {"engine": engine, "capture_file": capture_file, "buffer_bytes": buffer_bytes,
                    "cpus_for_each_buffer": cpus_for_each_buffer, "snaplen": snaplen, "kmod_device": kmod_device}
        try:
            for key, value in settings.items():
                if value is not None:
                    _native.check(lib.pyfalco_capture_set(handle, key.encode(), str(value).encode()), handle,
                                  f"setting {key}")
            if engine != "replay":
                self.select(DEFAULT_SYSCALLS if syscalls is None else syscalls)
            self._check(lib.pyfalco_capture_open(handle), f"opening the {engine} engine")
            if start:
                self.start()
        except BaseException:
            self.close()
            raise
        self._batch_bytes = batch_bytes
        self._buf = ctypes.create_string_buffer(batch_bytes)
        self._used = ctypes.c_size_t()
        self._count = ctypes.c_uint32()

    def _check(self, rc: int, what: str) -> int:
        """_native.check (the one error translation), a replay's input errors as CaptureFileError."""
        return _native.check(rc, self._handle, what, file=self.engine == "replay")

    # -- lifecycle
    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._handle is None

    def _h(self):
        if self._handle is None:
            raise CaptureClosedError("the capture is closed")
        return self._handle

    def close(self) -> None:
        """Stops the capture, detaches the driver, frees everything. Harmless when repeated."""
        if self._handle is None:
            return
        self._handle = None
        self._finalizer()

    def __enter__(self) -> "Capture":
        self._h()
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def start(self) -> None:
        """Starts delivering events (done by the constructor unless ``start=False``)."""
        h = self._h()
        _native.check(_native.lib.pyfalco_capture_start(h), h, "starting the capture")

    def stop(self) -> None:
        """Pauses the capture (the driver stays attached); :meth:`start` resumes it."""
        h = self._h()
        _native.check(_native.lib.pyfalco_capture_stop(h), h, "stopping the capture")

    def select(self, syscalls: Iterable[str | int]) -> list[int]:
        """Capture exactly these syscalls (names or numbers) from now on; returns the numbers."""
        h = self._h()
        nrs = syscall_numbers(syscalls)
        arr = (ctypes.c_uint16 * max(1, len(nrs)))(*nrs)
        _native.check(_native.lib.pyfalco_capture_select_syscalls(h, arr, len(nrs)), h, "selecting syscalls")
        self.syscalls = frozenset(_schema.SYSCALL_NAMES.get(n, str(n)) for n in nrs)
        return nrs

    # -- events
    def next_batch(self, timeout_ms: int | None = None, max_events: int = 1 << 20) -> list[Event]:
        """The next events in time order: waits up to timeout_ms for the first one.

        Returns [] on timeout and at the end of a capture file (see ``eof``)."""
        raw = self.next_raw_batch(timeout_ms, max_events)
        if raw is None:
            return []
        return split_batch(*raw)

    def next_raw_batch(self, timeout_ms: int | None = None,
                       max_events: int = 1 << 20) -> tuple[bytes, int, int] | None:
        """The next batch undecoded: ``(buffer, count, number of the event before the first)``,
        the buffer holding ``count`` libpyfalco batch entries (``events.split_batch`` makes
        Events of it); None on timeout and at the end of a capture file."""
        lib = _native.lib
        count = self._count
        got = self._read_batch(lambda h, buf, ms: lib.pyfalco_capture_next_batch(
            h, buf, len(buf), max_events, ms, ctypes.byref(self._used), ctypes.byref(count)), timeout_ms)
        if got is None:
            return None
        n = count.value
        first = self._num
        self._num += n
        return got, n, first

    def next_raw_skip_batch(self, timeout_ms: int | None, skip: bytes,
                            max_events: int = 1 << 20) -> tuple[bytes, int, int, int] | None:
        """``next_raw_batch`` whose events of the types ``skip`` marks (a table indexed by event
        code) are not copied: each run of them is one entry of type ``PYFALCO_SKIP_RUN_TYPE``
        holding the (ts, tid) of its events (``Inspector.process_raw`` reads them); with
        ``close_trailer_code`` set, close exits come as trailers of the entry before them. Returns
        ``(buffer, entries, number of the event before the first, events)``; None on timeout and
        at the end of a capture file."""
        fn = _native.lib.pyfalco_capture_next_batch_skip
        code = self.close_trailer_code
        if code is not None:
            skip = self._close_mask(skip, code)
        nev = ctypes.c_uint32()
        got = self._read_batch(lambda h, buf, ms: fn(
            h, buf, len(buf), max_events, ms, skip, len(skip), ctypes.byref(self._used),
            ctypes.byref(self._count), ctypes.byref(nev)), timeout_ms)
        if got is None:
            return None
        n = nev.value
        first = self._num
        self._num += n
        return got, self._count.value, first, n

    def _close_mask(self, skip: bytes, code: int) -> bytes:
        """``skip`` with the close exits (event ``code``) marked as trailers (libpyfalco's
        PF_MASK_CLOSE), cached for the last mask seen."""
        cached = self._close_masks
        if cached is not None and cached[0] is skip and cached[1] == code:
            return cached[2]
        mask = bytearray(skip)
        if len(mask) <= code:
            mask.extend(bytes(code + 1 - len(mask)))
        if not mask[code]:
            mask[code] = _MASK_CLOSE
        out = bytes(mask)
        self._close_masks = (skip, code, out)
        return out

    def _read_batch(self, call: Any, timeout_ms: int | None) -> bytes | None:
        """One batch copy by ``call(handle, buffer, timeout_ms) -> rc`` (a libpyfalco next_batch
        function with the rest of its arguments bound): the buffer's used bytes, or None on
        timeout and at the end of a capture file (``eof``)."""
        h = self._h()
        if self._eof:
            return None
        if len(self._buf) > self._batch_bytes:  # grown for one large event: back to the usual size
            self._buf = ctypes.create_string_buffer(self._batch_bytes)
        rc = call(h, self._buf, self.timeout_ms if timeout_ms is None else timeout_ms)
        if rc == -errno.ENOSPC and self._used.value > len(self._buf):
            # an event larger than the buffer (a capture file's LARGE blocks go up to 256 MiB):
            # the library said how much it needs and hands the event out again
            self._buf = ctypes.create_string_buffer(self._used.value)
            rc = call(h, self._buf, 0)
        if rc == _native.PYFALCO_EOF:
            self._eof = True
            return None
        if rc == _native.PYFALCO_TIMEOUT:
            return None
        self._check(rc, "reading events")
        return ctypes.string_at(self._buf, self._used.value)

    @property
    def eof(self) -> bool:
        """True once a capture file has been read to its end."""
        return self._eof

    def events(self, max_events: int | None = None, duration: float | None = None) -> Iterator[Event]:
        """Events until the file ends, max_events were seen, or duration seconds passed. A closed
        capture raises CaptureClosedError (here, and at the next batch when it is closed while
        being iterated)."""
        self._h()
        return self._events(max_events, duration)

    def _events(self, max_events: int | None, duration: float | None) -> Iterator[Event]:
        deadline = None if duration is None else time.monotonic() + duration
        seen = 0
        while True:
            batch = self.next_batch()
            for evt in batch:
                yield evt
                seen += 1
                if max_events is not None and seen >= max_events:
                    return
            if self._eof:
                return
            if deadline is not None and time.monotonic() >= deadline:
                return

    def __iter__(self) -> Iterator[Event]:
        return self.events()

    # -- statistics and metadata
    def set_kernel_filter(self, kf: KernelFilterSpec | None) -> None:
        """Installs a kernel-side filter (a ``pyfalco.kfilter.KernelFilter``, derived from the
        rules by ``pyfalco.kfilter.derive``; modern_ebpf only); None turns it off. Raises
        DriverUnavailableError (ENOTSUP) for other engines or a libpyfalco without the filter."""
        h = self._h()
        fn = _kf_fn("pyfalco_capture_set_kernel_filter")
        if fn is None:
            raise DriverUnavailableError(errno.ENOTSUP, "this libpyfalco has no kernel filter (rebuild it)")
        spec = KF_SPEC_OFF if kf is None else kf.spec()
        _native.check(fn(h, spec, len(spec)), h, "installing the kernel filter")
        self.kernel_filter = kf

    def kernel_filter_stats(self) -> dict[str, int]:
        """What the kernel-side filter did: ``opens`` dropped (held in the kernel), ``closes``
        dropped, held opens ``released`` before an event used their fd, ``flushed`` before a fork
        copied the fd table, ``discarded`` (their fd closed by exec, close_range, dup2, exit),
        ``sent_full`` (opens sent because the record was too long or the table full); ``{}`` with
        a libpyfalco without the filter (an older one gives the first two only)."""
        h = self._h()
        fn = _kf_fn("pyfalco_capture_kernel_filter_stats")
        if fn is None:
            return {}
        names = ("opens", "closes", "released", "flushed", "discarded", "sent_full")
        out = (ctypes.c_uint64 * len(names))()
        got = _native.check(fn(h, out, len(names)), h, "reading the kernel filter statistics")
        return dict(zip(names[:got], out[:got]))

    def kernel_filter_held(self) -> int:
        """How many opens the kernel-side filter holds now (-1 with a libpyfalco without it)."""
        h = self._h()
        fn = getattr(_native.lib, "pyfalco_capture_kernel_filter_held", None)
        if fn is None:
            return -1
        fn.argtypes = [ctypes.c_void_p]
        fn.restype = ctypes.c_int
        return _native.check(fn(h), h, "counting the kernel filter's held opens")

    def stats(self) -> dict[str, int]:
        """Counters: events, drops by reason (ring buffer full, too large, ...), skipped records."""
        h = self._h()
        n = len(_native.STAT_NAMES)
        out = (ctypes.c_uint64 * n)()
        got = _native.check(_native.lib.pyfalco_capture_stats(h, out, n), h, "reading statistics")
        return dict(zip(_native.STAT_NAMES[:got], out[:got]))

    def metadata_blocks(self) -> list[tuple[int, bytes]]:
        """(block type, body) of each metadata block of a capture file, in file order."""
        h = self._h()
        out = []
        i = 0
        btype = ctypes.c_uint32()
        body = ctypes.c_void_p()
        blen = ctypes.c_uint32()
        while True:
            rc = _native.lib.pyfalco_capture_metadata(h, i, ctypes.byref(btype), ctypes.byref(body),
                                                      ctypes.byref(blen))
            if rc < 0:
                break
            out.append((btype.value, ctypes.string_at(body.value, blen.value) if blen.value else b""))
            i += 1
        return out

    def initial_state(self) -> "InitialState":
        """The state the capture starts from (pyfalco.initial_state.InitialState): the capture
        file's metadata for a replay, a /proc scan of this machine (processes, threads, their fds,
        users, interfaces) otherwise."""
        self._h()
        if self.engine == "replay":
            from .scap.metadata import initial_state_from_blocks
            return initial_state_from_blocks(self.metadata_blocks(), source=self.capture_file)
        from .procscan import scan
        return scan()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Capture engine={self.engine} {state}>"
