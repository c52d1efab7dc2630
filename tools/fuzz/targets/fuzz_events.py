#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Fuzz target: raw scap event records, not checked by libpyfalco's reader, through the Python
decoders (pyfalco/events.py: Event, the generated per-type decoders, the generic path,
flag names) and the state engine both ways the agent uses it: ``Inspector.process`` one event
at a time and ``Inspector.process_raw`` on a libpyfalco-style batch buffer (the agent's path),
with fields extracted from every event; the batch path must give every field (but the renderings
of the record alone: evt.args, evt.info, evt.arg.flags, evt.buffer) the value the per-event path
gave, and hand out every event; ``split_batch`` must find the same records.

Input: scap records back to back (26-byte header ts, tid, len, type, nparams; then the
parameter lengths and values). Reading stops at the first record whose header or lengths do
not hold together (Event.validate raises EventDecodeError: expected, the reader never hands such
a record out); the records before it are processed.
Expected errors: pyfalco.errors.EventDecodeError from Event.validate only.
"""

from __future__ import annotations

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
    # the batch path reads every field but these renderings of the record alone (the same bytes
    # through the same code as the per-event path: half the time of a second pass)
    record_only = {"evt.args", "evt.info", "evt.arg.flags", "evt.buffer"}
    _G["batch_fields"] = [(i, get) for i, (text, get) in enumerate(zip(_G["field_names"], fields))
                          if text not in record_only]
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
        seen.append([get(ie) for get in fields])
        insp.paths_of(ie)
    # the batch path, on the same records in a libpyfalco batch buffer: the state it builds must
    # give every field the value the per-event path gave (the agent uses one, tests the other)
    batch = bytearray()
    for evt in records:
        rec = data[evt.off:evt.off + evt.len]
        batch += struct.pack("<HHI", evt.cpu, 0, len(rec)) + rec
        batch += b"\0" * (-len(batch) % 8)
    insp = _inspector()
    batch_fields = _G["batch_fields"]
    names = _G["field_names"]
    n = 0

    def handler(ie):
        nonlocal n
        want = seen[n]
        for i, get in batch_fields:
            got = get(ie)
            if got != want[i] and got == got:   # NaN-free values; != alone would flag nan
                raise AssertionError(f"event {n + 1}: {names[i]} is {got!r} after process_raw, "
                                     f"{want[i]!r} after process")
        n += 1
    insp.process_raw(bytes(batch), len(records), 0, None, handler)
    if n != len(records):
        raise AssertionError(f"process_raw handed out {n} of {len(records)} events")
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


if __name__ == "__main__":
    fuzzlib.main(setup, TestOneInput, MAX_LEN)
