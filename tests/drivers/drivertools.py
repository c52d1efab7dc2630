# SPDX-License-Identifier: Apache-2.0
"""Helpers of the driver tests: syscalls by name, the tracer, header assertions.

``tracer.trace(fn)`` starts the capture, runs fn, emits an end marker (a close() of a fd number
nobody uses), reads events until the marker arrives, stops the capture, and returns the events
between. Tests then assert the event's presence, header and every parameter (falco's
test/drivers shape: enable, trigger, disable, assert).
"""

from __future__ import annotations

import ctypes
import threading
import time


from pyfalco import _schema

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

MARKER_FD = -424242


def syscall(name: str, *args) -> int:
    """Calls a syscall by name through libc's syscall(); returns the raw result (-1: see errno)."""
    conv = []
    for a in args:
        if isinstance(a, (bytes, str)):
            conv.append(ctypes.c_char_p(a.encode() if isinstance(a, str) else a))
        elif isinstance(a, int):
            conv.append(ctypes.c_long(a))
        else:
            conv.append(a)
    return libc.syscall(ctypes.c_long(_schema.SYSCALL_NUMBERS[name]), *conv)


def result(rc: int) -> int:
    """The kernel's return value of a libc syscall() call: rc, or -errno."""
    return -ctypes.get_errno() if rc == -1 else rc


class Tracer:
    def __init__(self, cap):
        self.cap = cap

    def trace(self, fn, syscalls=None, timeout: float = 10.0):
        """Runs fn under capture; returns (fn's result, events up to the end marker)."""
        cap = self.cap
        if syscalls is not None:
            cap.select(set(syscalls) | {"close"})
        # drop anything buffered from before
        cap.stop()
        while cap.next_batch(0):
            pass
        cap.start()
        try:
            out = fn()
        finally:
            tid = threading.get_native_id()
            syscall("close", MARKER_FD)
            events = []
            deadline = time.monotonic() + timeout
            done = False
            while not done and time.monotonic() < deadline:
                for e in cap.next_batch(50):
                    if e.type == 5 and e.tid == tid and e.param(1) == MARKER_FD:
                        done = True
                        break
                    events.append(e)
            cap.stop()
        assert done, "end marker never arrived"
        return out, events

    def mine(self, events, name, tid=None):
        """Events of type name from this thread (or tid)."""
        tid = threading.get_native_id() if tid is None else tid
        return [e for e in events if e.name == name and e.tid == tid]


def assert_header(evt, name: str, tid: int | None = None):
    info = evt.info
    assert evt.name == name
    assert evt.direction == "<" or name == "procexit"
    assert evt.nparams == len(info.params), f"{name}: {evt.nparams} params, table has {len(info.params)}"
    assert evt.tid == (threading.get_native_id() if tid is None else tid)
    now = time.time_ns()
    assert now - 60 * 10**9 < evt.ts <= now
    evt.validate()
