#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Fuzz target: raw scap event records, not checked by libpyfalco's reader, through the Python
decoders (pyfalco/events.py: Event, the generated per-type decoders, the generic path,
flag names) and the state engine both ways the agent uses it: ``Inspector.process`` one event
at a time and ``Inspector.process_raw`` on a libpyfalco-style batch buffer (the agent's path),
with fields extracted from every event; the batch path must leave the same state for every event
(its thread, process and fd, slot by slot), give a field of each extractor module the value the
per-event path gave, and hand out every event; ``split_batch`` must find the same records.

Input: scap records back to back (26-byte header ts, tid, len, type, nparams; then the
parameter lengths and values). Reading stops at the first record whose header or lengths do
not hold together (Event.validate raises EventDecodeError: expected, the reader never hands such
a record out); the records before it are processed.
Expected errors: pyfalco.errors.EventDecodeError from Event.validate only.
"""

from __future__ import annotations

import operator
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuzzlib  # noqa: E402

EXPECTED = "pyfalco.errors.EventDecodeError (from Event.validate, on a record that does not hold together)"
MAX_LEN = 16384
CI_RUNS = 1500
FIELDS = ("evt.type", "evt.args", "evt.info", "evt.res", "evt.failed", "evt.dir", "evt.num", "evt.latency",
          "proc.name", "proc.cmdline", "proc.pname", "proc.aname[2]", "proc.exepath", "proc.cwd", "proc.env",
          "proc.sid", "proc.vpgid", "proc.tty", "proc.is_exe_upper_layer", "proc.loginshellid", "thread.cap_effective",
          "user.name", "user.loginuid", "group.name", "fd.name", "fd.type", "fd.typechar", "fd.directory",
          "fd.filename", "fd.sip", "fd.cip", "fd.cport", "fd.sport", "fd.l4proto", "fd.rip", "fd.lip", "fd.net",
          "fd.num", "fd.nameraw", "evt.arg.flags", "evt.rawarg.res", "evt.arg[0]", "evt.is_open_write",
          "evt.is_open_exec", "container.id", "container.name", "evt.buffer", "evt.abspath", "fs.path.name",
          "fs.path.source", "fs.path.target")

#: open findings (fuzzlib.known_finding); none now. events-1 (fixed): a record of type 0xFFFF whose
#: payload is not whole (ts, tid) pairs made process_raw raise struct.error: it keyed runs on the
#: type alone; now only a flagged entry with room for its pairs is a run
KNOWN: tuple = ()

_G: dict = {}


def setup() -> None:
    import pyfalco.events
    import pyfalco.fields.extract
    import pyfalco.fields.provider
    import pyfalco.fields.render
    import pyfalco.inspector
    import pyfalco.state.parser
    from pyfalco.errors import EventDecodeError
    _G["events"] = pyfalco.events
    _G["Inspector"] = pyfalco.inspector.Inspector
    _G["EventDecodeError"] = EventDecodeError
    insp = pyfalco.inspector.Inspector(live=False, scan=False)
    fields = []
    for text in FIELDS:
        name, arg = text, None
        if text.endswith("]"):
            name, _, arg = text[:-1].partition("[")
        try:
            fields.append(insp.provider.accessor(name, arg))
        except Exception:  # noqa: BLE001 - a field this provider does not have: not fuzzed
            continue
        _G.setdefault("field_names", []).append(text)
    _G["fields"] = fields
    # the batch path: the state it left for each event (thread, process, fd: every slot, compared
    # by this file's own code, which is not instrumented) and these fields, one per extractor
    # module, must be what the per-event path gave (every field over equal state is equal)
    batch = {"evt.type", "evt.num", "evt.latency", "evt.is_open_write", "proc.name", "proc.pname", "user.name",
             "group.name", "fd.name", "fd.sip", "container.id", "fs.path.name"}
    _G["batch_fields"] = [(i, get) for i, (text, get) in enumerate(zip(_G["field_names"], fields))
                          if text in batch]
    from pyfalco.state.fds import Fd
    from pyfalco.state.threads import Thread
    # lazily filled caches (_cmdline...), links (proc, children) and env_raw (decoded into _env on
    # first use: compared as ``env``) are left out of the slots
    _G["thread_slots"] = [a for a in Thread.__slots__
                          if not a.startswith("_") and a not in ("proc", "children", "env_raw")]
    _G["fd_slots"] = list(Fd.__slots__)
    # every slot at once (one C call); a slot left unset (AttributeError) takes the slot-by-slot
    # path, which reads it as None: the same tuple either way
    _G["thread_get"] = operator.attrgetter(*_G["thread_slots"])
    _G["fd_get"] = operator.attrgetter(*_G["fd_slots"])
    _G["insp"] = insp


def _inspector():
    return fuzzlib.reset_inspector(_G["insp"])


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' name
    ev = _G["events"]
    Event = ev.Event
    fields = _G["fields"]
    records = []
    off = 0
    while off + ev.HDR_SIZE <= len(data):
        evt = Event(data, off, cpu=len(records) & 3, num=len(records) + 1)
        try:
            evt.validate()
        except _G["EventDecodeError"]:
            break
        records.append(evt)
        off += evt.len
    if not records:
        return
    # one event at a time
    insp = _inspector()
    seen = []
    for evt in records:
        evt.values()
        evt.params
        for i, p in enumerate(evt.info.params[:evt.nparams]):
            evt.flag_names(p.name)
        ie = insp.process(evt)
        seen.append(([get(ie) for get in fields], _state(ie)))
        insp.paths_of(ie)
    # the batch path, on the same records in a libpyfalco batch buffer: the state it builds must
    # give every field the value the per-event path gave (the agent uses one, tests the other)
    batch = bytearray()
    for evt in records:
        rec = data[evt.off:evt.off + evt.len]
        batch += struct.pack("<HHI", evt.cpu, 0, len(rec)) + rec
        batch += b"\0" * (-len(batch) % 8)
    # the batch splitter (the agent's other reader of a batch) must find the same records; they
    # decode the same bytes as above, so one decode shows its Events are complete
    split = ev.split_batch(bytes(batch), len(records))
    if len(split) != len(records):
        raise AssertionError(f"split_batch found {len(split)} of {len(records)} events")
    for i, (got, want) in enumerate(zip(split, records)):
        if (got.ts, got.tid, got.type, got.len, got.nparams, got.cpu, got.num) != \
                (want.ts, want.tid, want.type, want.len, want.nparams, want.cpu, want.num) \
                or got.buf[got.off:got.off + got.len] != data[want.off:want.off + want.len]:
            raise AssertionError(f"split_batch: event {i + 1} differs from its record")
    if split[0].values() != records[0].values():
        raise AssertionError("split_batch: the first event decodes differently")
    insp = _inspector()
    batch_fields = _G["batch_fields"]
    names = _G["field_names"]
    n = 0

    # types 0xFFFE/0xFFFF stand for runs of skipped events in a batch (libpyfalco's
    # PYFALCO_SKIP_RUN_TYPE), so process_raw reads such a record as a run, not as an event: the
    # batch path then only has to run
    if any(evt.type >= 0xFFFE for evt in records):
        insp.process_raw(bytes(batch), len(records), 0, None, lambda ie: [get(ie) for get in fields])
        return

    def handler(ie):
        nonlocal n
        want, state = seen[n]
        if _state(ie) != state:
            raise AssertionError(f"event {n + 1}: the state after process_raw differs from the one after "
                                 f"process: {_state(ie)!r} != {state!r}")
        for i, get in batch_fields:
            got = get(ie)
            if got != want[i] and got == got:   # NaN-free values; != alone would flag nan
                raise AssertionError(f"event {n + 1}: {names[i]} is {got!r} after process_raw, "
                                     f"{want[i]!r} after process")
        n += 1
    insp.process_raw(bytes(batch), len(records), 0, None, handler)
    if n != len(records):
        raise AssertionError(f"process_raw handed out {n} of {len(records)} events")


def _state(ie) -> tuple:
    """What the state engine left for one event: its thread, process and fd, slot by slot."""
    t = ie.thread
    tstate = None
    if t is not None:
        try:
            tstate = _G["thread_get"](t) + (t.env,)
        except AttributeError:
            tstate = tuple(getattr(t, a, None) for a in _G["thread_slots"]) + (t.env,)
        proc = t.proc
        if proc is not None:
            tstate += (proc.cwd, proc.root, proc.nthreads, tuple(sorted(
                (n, _fd_state(f)) for n, f in proc.fds.items())))
    return (tstate, _fd_state(ie.fd), ie.fdnum, ie.name_changed, ie.prev_ts)


def _fd_state(f) -> tuple | None:
    if f is None:
        return None
    try:
        return _G["fd_get"](f)
    except AttributeError:
        return tuple(getattr(f, a, None) for a in _G["fd_slots"])


if __name__ == "__main__":
    fuzzlib.main(setup, TestOneInput, MAX_LEN, KNOWN)
