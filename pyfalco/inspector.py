# SPDX-License-Identifier: Apache-2.0
"""pyfalco.Inspector: a capture plus the state engine; every event comes out with its context.

    with pyfalco.Capture() as cap, Inspector(cap) as insp:
        for ie in insp.events(duration=5):
            print(ie.get("proc.name"), ie.get("fd.name"))

The inspector seeds its thread table from the initial state (a /proc scan for live captures,
the capture's metadata for replays), parses every event into it (state/parser.py) and hands out
:class:`~pyfalco.state.event.InspectedEvent` objects, which the field provider
(``Inspector.provider``, a :class:`~pyfalco.fields.provider.StateProvider`) reads.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import sys
import socket
import struct
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from . import _schema
from .errors import UnknownFieldError  # defined with the other exceptions; importable from here too
from .events import ENTRY_HDR, ENTRY_SIZE, Event
from .record import HDR_SIZE, pack_header
from .initial_state import InitialState
from .state.containers import ContainerInfo, ContainerManager, container_from_json
from .state.event import InspectedEvent

if TYPE_CHECKING:
    from .fields.provider import StateProvider
from .state.parser import _CLOSE_RES_FD, E_CLOSE, OPEN_LAYOUT, PARSE_ERRORS, StateParser, resolve_path
from .state.fds import FD_IPV4_SOCK, FD_IPV6_SOCK, L4_TCP
from .state.threads import Thread, ThreadTable, thread_from_info
from .state.users import UserTable

log = logging.getLogger("pyfalco.state")

__all__ = ["Inspector", "UnknownFieldError"]


_PATH_TYPES = frozenset(_schema.PT[n] for n in ("FSPATH", "FSRELPATH") if n in _schema.PT)
_DIRFD_NAMES = ("dirfd", "olddirfd", "newdirfd", "olddir", "newdir", "linkdirfd")
# (source, target) parameter names of two-path syscalls
_TWO_PATHS = {"symlink": ("target", "linkpath"), "symlinkat": ("target", "linkpath"),
              "link": ("oldpath", "newpath"), "linkat": ("oldpath", "newpath"),
              "rename": ("oldpath", "newpath"), "renameat": ("oldpath", "newpath"),
              "renameat2": ("oldpath", "newpath")}


class Inspector:
    """The state engine over a capture (or over events handed to :meth:`process`).

    ``Inspector(capture=None, *, initial_state=None, scan=None, live=None, containers=None,
    max_threads=262144, purge_interval_s=60, add_state_syscalls=True)``

    * ``capture``: a :class:`pyfalco.Capture`; a live one gets the syscalls the state needs
      (:func:`pyfalco.capture.state_syscalls`) added to its selection when they are missing
      (``add_state_syscalls=False`` keeps the selection as it is: the agent applies Falco's
      ``base_syscalls`` itself). Without them processes lose their parents, fds their names;

    * ``initial_state``: an InitialState to seed from; by default a /proc scan for live captures
      (``scan=False`` to start empty) and the capture file's metadata for replays;
    * ``live``: whether /proc and the container runtimes of this machine describe the events
      (default: True unless the capture is a replay);
    * ``containers``: a ContainerManager to use (one is made, with a background lookup thread when
      live).

    Container meta events: live, a container's metadata is looked up (off the event loop) as soon
    as a thread of it appears, and when the lookup ends a ``container`` event (Falco's
    PPME_CONTAINER_JSON_2_E, once per container) enters the stream, so rules on
    ``evt.type = container`` (Falco's ``container_started``) see containers that lived too briefly
    for their own events to carry metadata. ``process_raw`` hands it to its handler like any event
    of a wanted type; callers of ``process`` set ``meta_handler`` (called with the InspectedEvent,
    before the event being processed). Replays use the capture's own container events instead.
    """

    #: called with each container meta event by :meth:`process` (process_raw uses its handler)
    meta_handler: Callable[[InspectedEvent], Any] | None = None
    #: whether :meth:`batch_skip` hands the capture a skip mask (False: every event reaches Python);
    #: not on PyPy, whose JIT makes the inline per-event paths cheaper than the run records
    #: (502Error x 30, stable rules: 0.33 s without, 0.43-0.46 s with; docs/performance.md)
    skip_in_capture: bool = sys.implementation.name != "pypy"

    def __init__(self, capture: Any = None, *, initial_state: InitialState | None = None, scan: bool | None = None,
                 live: bool | None = None, containers: ContainerManager | None = None, max_threads: int = 262144,
                 purge_interval_s: float = 60.0, add_state_syscalls: bool = True):
        self._provider = None
        self.add_state_syscalls = add_state_syscalls
        self._accessors: dict = {}
        self.containers = None
        self._setup(capture, initial_state, scan, live, containers, max_threads, purge_interval_s)

    def attach(self, capture: Any, *, initial_state: InitialState | None = None, scan: bool | None = None) -> None:
        """Binds a capture opened after the inspector was made (the agent compiles its rules against
        ``provider`` first, since the capture's syscall selection depends on them): state is
        rebuilt from the capture's initial state; the provider and compiled accessors stay valid."""
        old = self.containers
        self._setup(capture, initial_state, scan, None, None, self.threads.max_threads, self.purge_interval_ns / 1e9)
        if old is not None and old is not self.containers:
            old.close()

    def _setup(self, capture: Any, initial_state: InitialState | None, scan: bool | None, live: bool | None,
               containers: ContainerManager | None, max_threads: int, purge_interval_s: float) -> None:
        self.capture = capture
        engine = getattr(capture, "engine", None)
        self.live = (engine not in ("replay", None) if capture is not None else False) if live is None else live
        if capture is not None and engine not in ("replay", None) and self.add_state_syscalls:
            self._add_state_syscalls(capture)
        if initial_state is None:
            if engine == "replay":
                from .scap.metadata import initial_state_from_blocks
                initial_state = initial_state_from_blocks(capture.metadata_blocks())
            elif self.live and scan is not False:
                from .procscan import scan as proc_scan
                initial_state = proc_scan()
            else:
                initial_state = InitialState()
        self.initial_state = initial_state
        self.threads = ThreadTable(max_threads)
        self.users = UserTable(initial_state.users, initial_state.groups, live=self.live)
        self.containers = containers if containers is not None else ContainerManager(live=self.live)
        self.parser = StateParser(self.threads, self._load_live_thread if self.live else None)
        # container meta events: filled by the lookup worker, drained by the event loop
        self._meta_pending: collections.deque = collections.deque()
        self._meta_done: set[str] = set()
        if self.live:
            self.parser.on_container = self._container_seen
            self.containers.listeners.append(self._meta_pending.append)
            self.containers.start_watch()
        # event types process_raw need not decode: no state change, no container metadata
        skip = bytearray(self.parser.plain_codes)
        for code in _CONTAINER_EVENTS:
            skip[code] = 0
        # the types parse() looks no thread up for (procinfo, drop, switch, ...) and that change
        # nothing else: only an existing thread's activity time (_K_NOLOOKUP, not decoded either)
        parser = self.parser
        for code in parser.no_lookup:
            if (not skip[code] and code not in parser.handlers and code not in parser.fd_param
                    and code not in _CONTAINER_EVENTS):
                skip[code] = _K_NOLOOKUP
        self._skip_codes = bytes(skip)
        self._kinds_cache: dict = {}
        if self.live:
            self.parser.fd_loader = self._load_live_fd
        self.hostname = initial_state.machine.hostname or (socket.gethostname() if self.live else "")
        self.first_ts = 0
        self.last_ts = 0
        self.n_events = 0
        self.purge_interval_ns = int(purge_interval_s * 1e9)
        self._next_purge = 0
        self._environ_cache: dict[int, tuple] = {}
        self.seed(initial_state)

    @staticmethod
    def _add_state_syscalls(capture: Any) -> None:
        from .capture import Capture, state_syscalls
        if not isinstance(capture, Capture):
            return
        missing = state_syscalls() - capture.syscalls
        if missing:
            log.info("adding %d state syscalls to the capture (%s)", len(missing), " ".join(sorted(missing)))
            capture.select(capture.syscalls | missing)

    # -- lifecycle
    def close(self) -> None:
        """Stops the container metadata lookups (the state stays readable)."""
        self.containers.close()

    def __enter__(self) -> "Inspector":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    # -- seeding
    def seed(self, state: InitialState) -> None:
        """Adds the threads of an InitialState (threads of one process share its fd table)."""
        made: list[Thread] = []
        for info in state.threads.values():
            made.append(thread_from_info(info))
        by_tid = {t.tid: t for t in made}
        for t in made:
            if t.tid != t.pid:
                main = by_tid.get(t.pid) or self.threads.get(t.pid)
                if main is not None:
                    if t.proc.fds and not main.proc.fds:
                        main.proc.fds.update(t.proc.fds)
                    t.proc = main.proc
            t.proc.nthreads = 0
        for t in made:
            t.proc.nthreads += 1
            self.parser.set_container(t)
            self.threads.threads[t.tid] = t
        for t in made:
            self.threads._link(t)
        # sockets of the initial fd tables: roles and names as libs decides them (state/fds.py)
        from .state.fds import Interfaces, orient_initial_sockets
        if state.interfaces or self.parser.interfaces is None:
            self.parser.interfaces = Interfaces(state.interfaces)
        self.server_ports = orient_initial_sockets((t.proc.fds for t in made), self.parser.interfaces)

    def _load_live_thread(self, tid: int) -> Thread | None:
        from .procscan import scan_thread
        info = scan_thread(tid)
        if info is None:
            return None
        t = thread_from_info(info)
        return t

    def _load_live_fd(self, pid: int, fd: int):
        from .procscan import NetTables, _fd_info
        from .state.fds import fd_from_info
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            return None
        info = _fd_info(pid, fd, target, NetTables())
        if info is None:
            return None
        from .state.fds import orient_socket
        f = fd_from_info(info, pid)
        orient_socket(f, getattr(self, "server_ports", set()), self.parser.interfaces)
        return f

    # -- events
    def process(self, evt: Event) -> InspectedEvent:
        """Parses one event into the state and returns it with its context (container meta events
        that became due go to ``meta_handler`` first)."""
        if self._meta_pending:
            handler = self.meta_handler
            for mie in self.meta_events(evt.ts):
                if handler is not None:
                    handler(mie)
        ie = self.parser.parse(evt)
        ie.inspector = self
        ts = evt.ts
        if not self.first_ts:
            self.first_ts = ts
        ie.prev_ts = self.last_ts or None
        self.last_ts = ts
        self.n_events += 1
        if evt.type in _CONTAINER_EVENTS:
            self._container_event(evt, ie)
        if ts >= self._next_purge:
            if self._next_purge:
                self.purge(ts)
            self._next_purge = ts + self.purge_interval_ns
        return ie

    def _kinds(self, wanted: bytes) -> tuple:
        """(wanted, process_raw's kind by event code, no fd loader, skip mask or None), cached."""
        parser = self.parser
        # without an fd loader (a replay), an event whose only use of the state is looking its fd
        # up changes nothing parse() would not change when skipped (thread lookup, activity time)
        no_loader = parser.fd_loader is None
        kinds = self._kinds_cache.get(id(wanted))
        if kinds is None or kinds[0] is not wanted or kinds[2] is not no_loader:
            table = bytearray(self._skip_codes)
            if no_loader:
                for code in parser.fd_param:
                    if not table[code] and code not in parser.handlers and code not in _CONTAINER_EVENTS:
                        table[code] = _K_SKIP
            code = wanted.find(1)
            while code >= 0:
                table[code] = _K_WANTED
                code = wanted.find(1, code + 1)
            if _CLOSE_RES_FD and not wanted[E_CLOSE]:
                table[E_CLOSE] = _K_CLOSE
            for code in _SOCKIO_AT:
                handler = getattr(parser.handlers.get(code), "__func__", None)
                if not wanted[code] and handler in (type(parser)._send, type(parser)._recv):
                    table[code] = _K_SOCKIO
            for code in _MEMORY_EXITS:
                handler = parser.handlers.get(code)
                if not wanted[code] and getattr(handler, "__func__", None) is type(parser)._memory:
                    table[code] = _K_MEMORY
            # the record that stands for a run of skipped events (Capture.next_raw_skip_batch)
            # (mask value 1: skipped as StateParser.skip; 2: a no-lookup type)
            table[_SKIP_RUN_TYPE] = _K_RUN
            table[_SKIP_RUN_TYPE - 1] = _K_RUN_NOLOOKUP
            mask = None
            if no_loader and not self.live:
                mask = bytes(1 if k == _K_SKIP else 2 if k == _K_NOLOOKUP else 0
                             for k in table[:_SKIP_RUN_TYPE - 1]).rstrip(b"\0") or None
            if len(self._kinds_cache) > 8:
                self._kinds_cache.clear()
            kinds = self._kinds_cache[id(wanted)] = (wanted, bytes(table), no_loader, mask)
        return kinds

    def batch_skip(self, wanted: bytes | None) -> bytes | None:
        """The skip mask to read batches with (``Capture.next_raw_skip_batch``) for the event types
        ``wanted`` marks, or None to read every event: the types :meth:`process_raw` would not
        decode whose only use of the state is looking up their thread (a replay: no fd or thread
        loader, so nothing is read from /proc). Each run of them comes as one record: their
        thread's activity time, event numbers and counters stay as one by one.

        Close exits that ``wanted`` leaves out (live captures too) are applied straight from
        their record by process_raw; this inspector's own capture is told to hand them over as
        a trailer of the entry before them (``Capture.close_trailer_code``: (ts, tid, res, fd)
        each, applied right after that entry, as one by one) rather than as entries of their
        own. Live, where nothing else is skipped, the mask is then ``b""`` (nothing skipped) so
        that the caller reads with ``next_raw_skip_batch``. The mask itself never marks them:
        read by another capture, the closes come as entries."""
        if not self.skip_in_capture:
            return None
        _wanted, table, _no_loader, mask = self._kinds(_ALL_CODES if wanted is None else wanted)
        cap = self.capture
        if cap is not None and hasattr(cap, "close_trailer_code"):
            trail = table[E_CLOSE] == _K_CLOSE
            cap.close_trailer_code = E_CLOSE if trail else None
            if mask is None and trail:
                return b""
        return mask

    def process_raw(self, buf: bytes, count: int, first_num: int = 0, wanted: bytes | None = None,
                    handler: Callable[[InspectedEvent], Any] | None = None) -> list:
        """Parses the ``count`` entries of a libpyfalco batch buffer (``Capture.next_raw_batch``
        or ``next_raw_skip_batch``) into
        the state, as :meth:`process` would one by one, and calls ``handler(ie)`` with every
        event of the types ``wanted`` marks (a table indexed by event code, e.g. the types some
        rule can match; None: every event) right after parsing it, before the next event changes
        the state. Without a handler, those InspectedEvents are returned in a list (their
        threads and fds are then as the whole batch left them). Events of a type that neither
        changes the state nor is wanted are never decoded: only their thread's activity time is
        kept; a close nobody wants is applied straight from the record."""
        out: list = []
        append = out.append if handler is None else handler
        if wanted is None:
            wanted = _ALL_CODES
        parser = self.parser
        kinds = self._kinds(wanted)[1]
        parse = parser.parse
        open_layout = parser.open_layout
        open_layouts = OPEN_LAYOUT
        skip = parser.skip
        close_fd = parser.close_fd
        threads = self.threads.threads
        unpack = ENTRY_HDR.unpack_from
        close_unpack = _CLOSE_RECORD.unpack_from
        close_item = _CLOSE_ITEM.unpack_from
        new = Event.__new__
        containers = _CONTAINER_EVENTS
        first_ts = self.first_ts
        last_ts = self.last_ts
        next_purge = self._next_purge
        off = 0
        num = first_num
        if self._meta_pending and count:
            # container meta events that became due since the last batch, before its first event
            mts = ENTRY_HDR.unpack_from(buf, 0)[3]
            for mie in self.meta_events(mts):
                if wanted[mie.evt.type]:
                    append(mie)
        try:
            for _ in range(count):
                cpu, flags, rlen, ts, tid, length, etype, nparams = unpack(buf, off)
                num += 1
                kind = kinds[etype]
                # the commonest kinds first: a close nobody wants, then the events parse() takes
                # (wanted, or with a handler), which would otherwise go through every test
                # below; the other kinds fall back to parse() when their record is not as they
                # expect (ie stays _PARSE)
                ie = _PARSE
                if kind == _K_CLOSE and nparams == 2 and length == _CLOSE_LEN \
                        and (rec := close_unpack(buf, off + _CLOSE_LENS_AT))[0] == _CLOSE_LENS:
                    # StateParser.close_fd (parse + _close, straight from the record: lengths,
                    # res and fd in one read), inline in its common case (a known thread, no
                    # procexit due); tested before the rarer kinds
                    _lens, res, fd = rec
                    t = threads.get(tid)
                    if t is None or parser.pending_exit is not None:
                        close_fd(tid, ts, res, fd)
                    else:
                        if res >= 0:
                            t.proc.fds.pop(fd, None)
                        t.last_ts = ts
                    ie = None
                elif kind == _K_WANTED or not kind:
                    pass
                elif kind == _K_NOLOOKUP:
                    # StateParser.parse of a no-lookup event with no handler and no fd parameter
                    if parser.pending_exit is not None:
                        parser.finish_pending()
                    t = threads.get(tid)
                    if t is not None:
                        t.last_ts = ts
                    ie = None
                elif kind == _K_SKIP or kind == _K_RUN and nparams == 1:
                    # StateParser.skip, inline in its common case (a known thread, no procexit
                    # due); a run of one skipped event has the run's own ts and tid
                    t = threads.get(tid)
                    if t is None or parser.pending_exit is not None:
                        skip(tid, ts)
                    else:
                        t.last_ts = ts
                    ie = None
                elif (kind == _K_RUN or kind == _K_RUN_NOLOOKUP) and (
                        not flags & _EF_SKIP_RUN or _RUN_PAIRS_AT + 16 * nparams > ENTRY_SIZE + rlen):
                    # a record of a run's type that libpyfalco did not make a run (not flagged, or
                    # shorter than its pairs): one skipped event, never read past its end
                    skip(tid, ts)
                    ie = None
                elif kind == _K_RUN or kind == _K_RUN_NOLOOKUP:
                    # nparams skipped events (Capture.next_raw_skip_batch): what StateParser.skip
                    # does for each, the thread's activity time
                    if parser.pending_exit is not None:
                        parser.finish_pending()
                    at = off + _RUN_PAIRS_AT
                    end = at + 16 * nparams
                    if not first_ts:
                        first_ts = self.first_ts = next((x for x, _ in _RUN_PAIR.iter_unpack(buf[at:end]) if x), 0)
                    if kind == _K_RUN:
                        for rts, rtid in _RUN_PAIR.iter_unpack(buf[at:end]):
                            t = threads.get(rtid)
                            if t is None or parser.pending_exit is not None:
                                skip(rtid, rts)
                            else:
                                t.last_ts = rts
                    elif nparams > 16 and _LITTLE:
                        # no thread is made for these. procinfo comes once per thread of the
                        # machine, most of them not in the table: only the known ones are
                        # looked for, and their last time
                        mv = memoryview(buf)[at:end].cast("Q")
                        tids = mv[1::2].tolist()
                        known = threads.keys() & tids
                        if known:
                            tss = mv[0::2].tolist()
                            if len(known) > 8:
                                last = dict(zip(tids, tss))
                                for rtid in known:
                                    threads[rtid].last_ts = last[rtid]
                            else:
                                tids.reverse()
                                for rtid in known:
                                    threads[rtid].last_ts = tss[nparams - 1 - tids.index(rtid)]
                    else:
                        for rts, rtid in _RUN_PAIR.iter_unpack(buf[at:end]):
                            t = threads.get(rtid)
                            if t is not None:
                                t.last_ts = rts
                    num += nparams - 1
                    self.n_events += nparams - 1
                    ie = None
                elif kind == _K_MEMORY and nparams >= 4 \
                        and buf[off + _CLOSE_LENS_AT:off + _CLOSE_LENS_AT + 8] == _MEMORY_LENS \
                        and parser.pending_exit is None and tid in threads:
                    # StateParser._memory of a known thread, straight from the record (res,
                    # vm_size, vm_rss, vm_swap lead brk/mmap/mmap2/munmap exits)
                    t = threads[tid]
                    t.vmsize, t.vmrss, t.vmswap = _MEMORY_VALS.unpack_from(buf, off + _CLOSE_LENS_AT + 2 * nparams)
                    t.last_ts = ts
                    ie = None
                elif kind == _K_SOCKIO and parser.pending_exit is None and tid in threads \
                        and _sockio(buf, off, etype, nparams, threads[tid], parser.fd_loader):
                    threads[tid].last_ts = ts
                    ie = None
                if ie is _PARSE:
                    evt = new(Event)
                    evt.ts = ts
                    evt.tid = tid
                    evt.len = length
                    evt.type = etype
                    evt.nparams = nparams
                    evt.cpu = cpu
                    evt.flags = flags
                    evt.num = num
                    evt.buf = buf
                    evt.off = off + ENTRY_SIZE
                    evt._vals = None
                    layout = open_layouts.get(etype)
                    if layout is not None and nparams == layout[0] and parser.pending_exit is None \
                            and (t := threads.get(tid)) is not None:
                        # parse() of an open of a known thread with no procexit due: its handler
                        # straight away (open_layout), the InspectedEvent made here
                        ie = new(InspectedEvent)
                        ie.evt = evt
                        ie.inspector = self
                        ie.thread = t
                        ie.fd = None
                        ie.fdnum = -1
                        ie.name_changed = False
                        ie.cache = None
                        ie.extra = None
                        ie.prev_ts = last_ts or None
                        try:
                            open_layout(evt, ie, t, layout)
                        except PARSE_ERRORS as err:
                            log.debug("parsing %r: %s", evt, err)
                        t.last_ts = ts
                    else:
                        ie = parse(evt)
                        ie.inspector = self
                        ie.prev_ts = last_ts or None
                        if etype in containers:
                            self._container_event(evt, ie)
                # Inspector.process's bookkeeping
                if not first_ts:
                    first_ts = self.first_ts = ts
                last_ts = ts
                self.n_events += 1
                if ts >= next_purge:
                    if next_purge:
                        self.purge(ts)
                    next_purge = self._next_purge = ts + self.purge_interval_ns
                if kind == _K_WANTED:
                    append(ie)
                if flags and flags & _EF_CLOSES:
                    # close exits no rule wants after this entry (libpyfalco's close trailer):
                    # the _K_CLOSE path above for each, with its bookkeeping (flags is 0 for
                    # most entries: one test for them)
                    pad = (length + 7) & ~7
                    k = (rlen - pad) >> 5
                    num += k
                    self.n_events += k
                    at = off + ENTRY_SIZE + pad
                    if k == 1:
                        # the common trailer (a close after an open, a read...): no loop
                        rts, rtid, res, fd = close_item(buf, at)
                        t = threads.get(rtid)
                        if t is None or parser.pending_exit is not None:
                            close_fd(rtid, rts, res, fd)
                        else:
                            if res >= 0:
                                t.proc.fds.pop(fd, None)
                            t.last_ts = rts
                        if rts >= next_purge:
                            if next_purge:
                                self.purge(rts)
                            next_purge = self._next_purge = rts + self.purge_interval_ns
                        last_ts = rts
                        off += (ENTRY_SIZE + rlen + 7) & ~7
                        continue
                    for rts, rtid, res, fd in _CLOSE_ITEM.iter_unpack(buf[at:at + 32 * k]):
                        t = threads.get(rtid)
                        if t is None or parser.pending_exit is not None:
                            close_fd(rtid, rts, res, fd)
                        else:
                            if res >= 0:
                                t.proc.fds.pop(fd, None)
                            t.last_ts = rts
                        if rts >= next_purge:
                            if next_purge:
                                self.purge(rts)
                            next_purge = self._next_purge = rts + self.purge_interval_ns
                    last_ts = rts
                off += (ENTRY_SIZE + rlen + 7) & ~7
        finally:
            self.last_ts = last_ts
        return out

    #: evt.type name by event code (what the field provider's event_type gives), for rule indexes
    event_code_names = tuple(e.name for e in _schema.EVENTS)

    def events(self, max_events: int | None = None, duration: float | None = None) -> Iterator[InspectedEvent]:
        """InspectedEvents of the capture (see Capture.events for the limits)."""
        if self.capture is None:
            raise ValueError("this Inspector has no capture: use process(evt)")
        process = self.process
        for evt in self.capture.events(max_events=max_events, duration=duration):
            yield process(evt)

    def __iter__(self) -> Iterator[InspectedEvent]:
        return self.events()

    def purge(self, now_ts: int) -> int:
        """Drops threads that showed no activity for a purge interval and (live) no longer exist."""
        if not self.live:
            return 0
        cutoff = now_ts - self.purge_interval_ns
        gone = 0
        for t in list(self.threads.threads.values()):
            if t.last_ts < cutoff and not os.path.exists(f"/proc/{t.tid}"):
                self.threads.remove(t.tid)
                gone += 1
        self._environ_cache.clear()
        return gone

    def _container_event(self, evt, ie: InspectedEvent | None = None) -> None:
        """A container event (a capture's, or a meta event of ours): its metadata goes into the
        container table and the event gets a thread of that container, with nothing else known
        about it, so container.* fields answer for it as libsinsp's do."""
        raw = evt.get("json")
        if isinstance(raw, (bytes, bytearray)):
            raw = bytes(raw).decode("utf-8", "replace")
        if isinstance(raw, str):
            info = container_from_json(raw.rstrip("\0"))
            if info is not None and info.id:
                known = self.containers.containers.get(info.id)
                if known is None or known.source == "capture" or not known.complete:
                    self.containers.add(info)
                if ie is not None:
                    ie.thread = _container_thread(info.id)

    # -- container meta events
    def _container_seen(self, t: Thread, cid: str, rtype: str) -> None:
        """StateParser: a thread of a container appeared; start the metadata lookup at once."""
        if cid not in self.containers.containers and cid not in self._meta_done:
            self.containers.get(cid, rtype)

    def meta_events(self, ts: int | None = None) -> list[InspectedEvent]:
        """The container meta events that became due (metadata found, or its lookup given up),
        once per container, stamped ``ts`` (default: the last event's time). process() and
        process_raw() call this themselves; call it directly only when feeding neither."""
        out = []
        pending = self._meta_pending
        while pending:
            info = pending.popleft()
            if info.id in self._meta_done or not info.id:
                continue
            if len(self._meta_done) > 65536:
                self._meta_done.clear()
            self._meta_done.add(info.id)
            # a number of its own (never 0: never_true is evt.num = 0 in Falco's rules)
            evt = Event.from_bytes(container_event_record(info, ts if ts is not None else self.last_ts),
                                   num=self.n_events + 1)
            ie = InspectedEvent(evt, self, _container_thread(info.id))
            ie.prev_ts = self.last_ts or None
            out.append(ie)
        return out

    # -- helpers for the extractors
    @property
    def provider(self) -> "StateProvider":
        """The field provider of this state (Falco's syscall fields); rules compile against it."""
        if self._provider is None:
            from .fields.provider import StateProvider
            self._provider = StateProvider()
        return self._provider

    def field(self, ie: InspectedEvent, text: str, default: Any = None) -> Any:
        """Value of a field given as text (``proc.aname[2]``, ``evt.arg.flags``): ``default`` when
        the event has no value for it; a name no field has raises :class:`UnknownFieldError`."""
        fn = self._accessors.get(text)
        if fn is None:
            if not isinstance(text, str):
                raise TypeError(f"field: expected a field name (str), not {type(text).__name__}")
            name, arg = text, None
            if text.endswith("]") and "[" in text:
                name, _, arg = text[:-1].partition("[")
            prov = self.provider
            if prov.field_info(name) is None:
                from .fields.catalog import FIELDS
                raise UnknownFieldError(name, FIELDS)
            fn = prov.accessor(name, arg)
            self._accessors[text] = fn
        v = fn(ie)
        return default if v is None else v

    def container(self, t: Thread) -> ContainerInfo | None:
        """The container of a thread (None on the host); a container not yet known is looked up."""
        cid = t.container_id
        if not cid:
            return None
        info = self.containers.containers.get(cid)
        if info is None:
            from .state.cgroups import container_from_cgroups
            hit = container_from_cgroups(t.cgroups)
            info = self.containers.get(cid, hit[1] if hit else "")
        return info

    def paths_of(self, ie: InspectedEvent) -> dict[str, tuple[str, str]]:
        """{"name"|"source"|"target": (normalized, raw)} for a file-path syscall."""
        evt = ie.evt
        info = evt.info
        t = ie.thread
        cwd = t.proc.cwd if t is not None else ""
        out: dict[str, tuple[str, str]] = {}
        params = info.params
        names = [p.name for p in params]

        def resolve(idx: int) -> tuple[str, str] | None:
            raw = evt.param(idx)
            if not isinstance(raw, str):
                return None
            base = cwd
            if params[idx].extra.startswith("DIRFD_PARAM("):
                try:
                    dfd = evt.param(int(params[idx].extra[12:-1]))
                except ValueError:
                    dfd = None
                if isinstance(dfd, int) and dfd != -100 and t is not None:
                    f = t.proc.fds.get(dfd)
                    base = f.name if f is not None else ""
            return resolve_path(base, raw) if raw else raw, raw

        two = _TWO_PATHS.get(info.name)
        if two is not None:
            for key, pname in zip(("source", "target"), two):
                if pname in names:
                    r = resolve(names.index(pname))
                    if r is not None:
                        out[key] = r
            return out
        for i, p in enumerate(params[:evt.nparams]):
            if p.type in _PATH_TYPES or (p.name in ("path", "name", "filename", "pathname") and p.type == 9):
                r = resolve(i)
                if r is not None:
                    out["name"] = r
                    break
        return out

    def network_of(self, ip: Any) -> Any:
        """The network an address belongs to, for network fields: the address itself (the rule
        engine matches it against network literals)."""
        return ip

    def ip_name(self, ip: Any) -> str | None:
        """The host name of an address: None (no DNS lookups on the event loop)."""
        return None

    _ports: dict = {}

    def port_name(self, port: int, l4proto: int) -> str | None:
        """The service name of a port (``/etc/services``), cached; None when it has none."""
        key = (port, l4proto)
        hit = self._ports.get(key, False)
        if hit is not False:
            return hit
        try:
            name = socket.getservbyport(port, "udp" if l4proto == 3 else "tcp")
        except (OSError, OverflowError):
            name = None
        self._ports[key] = name
        return name

    def read_environ(self, t: Thread) -> tuple:
        """The environment of a live process whose exec we did not see (from /proc, cached)."""
        hit = self._environ_cache.get(t.pid)
        if hit is not None:
            return hit
        try:
            with open(f"/proc/{t.pid}/environ", "rb") as f:
                raw = f.read()
        except OSError:
            raw = b""
        env = tuple(e.decode("utf-8", "surrogateescape") for e in raw.split(b"\0") if e)
        if len(self._environ_cache) > 4096:
            self._environ_cache.clear()
        self._environ_cache[t.pid] = env
        return env

    def stats(self) -> dict[str, int]:
        """Counters: events, threads, evicted threads, threads missing from the state, containers."""
        return {"n_events": self.n_events, "n_threads": len(self.threads), "n_evicted": self.threads.n_evicted,
                "n_missing_threads": self.parser.n_missing_threads, "n_containers": len(self.containers.containers)}


_CONTAINER_EVENTS = frozenset(e.code for e in _schema.EVENTS if e.name == "container")
_CONTAINER_JSON_2_E = next(e.code for e in _schema.EVENTS if e.enum == "PPME_CONTAINER_JSON_2_E")
_RUNTIME_TYPES = {"docker": 0, "containerd": 7, "cri-o": 6, "podman": 9}


def _container_thread(cid: str) -> Thread:
    """The thread a container event is attributed to: none of a process, only the container."""
    t = Thread(-1, -1, 0)
    t.container_id = cid
    t.uid = t.gid = 0xFFFFFFFF
    return t


def container_json(info: ContainerInfo) -> str:
    """A ContainerInfo as the JSON of Falco's container event (the keys libsinsp writes and
    pyfalco.state.containers.container_from_json reads back)."""
    c = {"id": info.id[:12], "full_id": info.id, "type": _RUNTIME_TYPES.get(info.type, 0xFFFF),
         "name": info.name or "", "image": info.image or "", "imageid": info.image_id or "",
         "imagerepo": info.image_repository or "", "imagetag": info.image_tag or "",
         "imagedigest": info.image_digest or "", "privileged": bool(info.privileged),
         "Mounts": [{"Source": m.source, "Destination": m.dest, "Mode": m.mode, "RW": m.rdwr,
                     "Propagation": m.propagation} for m in info.mounts],
         "labels": dict(info.labels), "created_time": (info.start_ts or 0) // 1_000_000_000,
         "ip": info.ip or "0.0.0.0", "cni_json": info.cni_json or "",
         "host_pid": bool(info.host_pid), "host_network": bool(info.host_network),
         "host_ipc": bool(info.host_ipc), "lookup_state": 1 if info.source else 2}
    if info.privileged is None:
        del c["privileged"]
    return json.dumps({"container": c}, separators=(",", ":"))


def container_event_record(info: ContainerInfo, ts: int) -> bytes:
    """The scap record of a container meta event (PPME_CONTAINER_JSON_2_E, tid -1, u32 length)."""
    payload = container_json(info).encode("utf-8", "surrogateescape") + b"\0"
    length = HDR_SIZE + 4 + len(payload)
    return pack_header(ts, 0xFFFFFFFFFFFFFFFF, length, _CONTAINER_JSON_2_E, 1) + struct.pack("<I", len(payload)) + payload
_ALL_CODES = b"\x01" * 65536
_PARSE = object()            # process_raw: the event is still to be parsed
# process_raw's kinds of event codes
_K_OTHER, _K_SKIP, _K_CLOSE, _K_WANTED, _K_NOLOOKUP, _K_RUN, _K_RUN_NOLOOKUP, _K_MEMORY = 0, 1, 2, 3, 4, 5, 6, 7
# exits that lead with res and the thread's memory counters (u32 vm_size, vm_rss, vm_swap)
_MEMORY_EXITS = tuple(e.code for e in _schema.EVENTS if e.code & 1 and [(p.name, p.type) for p in e.params[:4]][1:]
                      == [("vm_size", 7), ("vm_rss", 7), ("vm_swap", 7)] and e.params[0].name == "res")
_MEMORY_LENS = struct.pack("<HHHH", 8, 4, 4, 4)
_K_SOCKIO = 8
# send/recv exits (not recvmsg: its msgcontrol may carry fds): (index of res, index of fd)
_SOCKIO_AT = {e.code: ([p.name for p in e.params].index("res"), [p.name for p in e.params].index("fd"))
              for e in _schema.EVENTS if e.code & 1 and e.name in ("send", "sendto", "sendmsg", "recv", "recvfrom")
              and {"res", "fd", "tuple"} <= {p.name for p in e.params}}
_I64 = struct.Struct("<q")
_TCP_TYPES = (FD_IPV4_SOCK, FD_IPV6_SOCK)


def _sockio(buf: bytes, off: int, etype: int, nparams: int, t: Thread, fd_loader: Any) -> bool:
    """StateParser._send/_recv of a known thread straight from the record, when the event can
    change nothing but a named TCP socket's connected flag (a failed call, or a socket whose
    ends are known): True when applied, False to parse the event."""
    ri, fi = _SOCKIO_AT[etype]
    if nparams <= ri or nparams <= fi:
        return False
    base = off + _CLOSE_LENS_AT
    lens = _unpack_from(f"<{nparams}H", buf, base)
    if lens[ri] != 8 or lens[fi] != 8:
        return False
    vals = base + 2 * nparams
    fd = _I64.unpack_from(buf, vals + sum(lens[:fi]))[0]
    f = t.proc.fds.get(fd)
    if f is None and fd >= 0 and fd_loader is not None:
        return False            # lookup_fd would read it from /proc
    if _I64.unpack_from(buf, vals + sum(lens[:ri]))[0] < 0:
        return True             # a failed call: only the fd lookup
    if f is None or f.type not in _TCP_TYPES or not f.name or f.l4proto != L4_TCP:
        return False
    f.connected = True
    return True
_MEMORY_VALS = struct.Struct("<8xIII")
_SKIP_RUN_TYPE = 0xFFFF      # libpyfalco's PYFALCO_SKIP_RUN_TYPE
_RUN_PAIRS_AT = ENTRY_SIZE + HDR_SIZE
_EF_SKIP_RUN = 2             # libpyfalco's PYFALCO_EF_SKIP_RUN: the entry is a run, not an event
_unpack_from = struct.unpack_from
_RUN_PAIR = struct.Struct("<QQ")
_LITTLE = sys.byteorder == "little"    # the run's pairs read as native u64 (memoryview.cast)
# a close exit as the current table has it (res, fd: 8 bytes each), from its batch entry on:
# the two lengths (8, 8) as one u32, res, fd
_CLOSE_RECORD = struct.Struct("<Iqq")
_CLOSE_LENS = struct.unpack("<I", struct.pack("<HH", 8, 8))[0]
_CLOSE_LENS_AT = ENTRY_SIZE + HDR_SIZE
_CLOSE_LEN = HDR_SIZE + 4 + 16
_EF_CLOSES = 4               # libpyfalco's PF_EF_CLOSES: the entry has a close trailer
_CLOSE_ITEM = struct.Struct("<QQqq")    # a trailer's close: ts, tid, res, fd
