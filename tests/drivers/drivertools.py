# SPDX-License-Identifier: Apache-2.0
"""Helpers of the driver tests: syscalls by name, the tracer, header assertions.

``tracer.trace(fn)`` starts the capture, runs fn, emits an end marker (a close() of a fd number
nobody uses), reads events until the marker arrives, stops the capture, and returns the events
between. Tests then assert the event's presence, header and every parameter (falco's
test/drivers shape: enable, trigger, disable, assert).

With every syscall selected, only the events of this process's threads and of the processes and
threads it creates during the trace are kept (followed through the clone-family events): a busy
process elsewhere on the host (a build, a ``yes > /dev/null``) would otherwise put millions of
events into each trace's list.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time


from pyfalco import _schema
from pyfalco.events import ENTRY_HDR, ENTRY_SIZE, split_batch

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

MARKER_FD = -424242

#: exit event codes of clone, fork, vfork and clone3 (every layout the table has)
CLONE_EXITS = frozenset(code for name in ("clone", "fork", "vfork", "clone3")
                        for code in _schema.EVENT_CODES_BY_NAME[name] if code & 1)


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
        """Runs fn under capture; returns (fn's result, events up to the end marker).

        The events are read after fn (a reader thread during fn would hold the GIL when a test
        forks through a raw syscall, and the child would wait for it forever). When the rings
        dropped events meanwhile (a busy host), the marker may be among them: it is made again
        every second, and a marker that never comes says how many events were dropped."""
        cap = self.cap
        if syscalls is not None:
            cap.select(set(syscalls) | {"close"})
        # the tree is followed only when its clone-family events are captured
        tree = self._own_threads() if syscalls is None else None
        # drop anything buffered from before
        cap.stop()
        while cap.next_batch(0):
            pass
        drops = cap.stats()["n_drops_buffer"]
        cap.start()
        try:
            out = fn()
        finally:
            tid = threading.get_native_id()
            syscall("close", MARKER_FD)
            events = []
            now = time.monotonic()
            deadline, again = now + timeout, now + 1.0
            done = False
            while not done and time.monotonic() < deadline:
                raw = cap.next_raw_batch(50)
                if time.monotonic() > again:
                    again += 1.0
                    syscall("close", MARKER_FD)
                if raw is None:
                    continue
                for e in self._events_of(raw, tree):
                    if e.type == 5 and e.tid == tid and e.param(1) == MARKER_FD:
                        done = True
                        break
                    events.append(e)
            cap.stop()
            drops = cap.stats()["n_drops_buffer"] - drops
        assert done, f"end marker never arrived ({drops} events dropped by full rings meanwhile)"
        return out, events

    @staticmethod
    def _events_of(raw, tree):
        """The Events of a raw batch; with a tree, only those of it (the tree grows at its
        clone-family exits), chosen by the entry header first: an Event for every entry is read
        slower than a busy process makes them."""
        buf, count, first = raw
        if tree is None:
            return split_batch(buf, count, first)
        out = []
        unpack = ENTRY_HDR.unpack_from
        off = 0
        for i in range(count):
            _cpu, _flags, rlen, _ts, etid, _length, etype, _n = unpack(buf, off)
            stride = (ENTRY_SIZE + rlen + 7) & ~7
            if etid in tree or etype in CLONE_EXITS:
                (e,) = split_batch(buf[off:off + stride] + bytes(64), 1, first + i)  # padded as in a batch
                # the tree grows here, in order: the child's next events may be in this batch
                if Tracer._in_tree(e, tree):
                    out.append(e)
            off += stride
        return out

    @staticmethod
    def _own_threads() -> set:
        return {int(t) for t in os.listdir("/proc/self/task")}

    @staticmethod
    def _in_tree(e, tree: set) -> bool:
        """Whether e is of a thread in tree (the tids traced); a clone-family exit adds the
        thread or process it made: in the parent (res > 0), and in the child (res 0), whose own
        event can come first: a process's ptid is its parent's tid, a thread's pid our tgid."""
        if e.type in CLONE_EXITS:
            res = e.get("res")
            if e.tid in tree:
                if isinstance(res, int) and res > 0:
                    tree.add(res)
                return True
            if res == 0 and (e.get("ptid") in tree or e.get("pid") in tree):
                tree.add(e.tid)
                return True
            return False
        return e.tid in tree

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
