#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Fuzz target: a whole capture file through the replay engine (libpyfalco's .scap reader, plain
or gzip), its metadata blocks into an InitialState (pyfalco/scap/metadata.py), every event
through the Python decoders and the state engine (Inspector / state/parser.py), and a set of
fields extracted from each event, as ``pyfalco -e`` does (the event-only renderings such as
evt.args from the first 64 events: see EVENT_FIELDS).

Input: the bytes of a capture file (written to a memfd, opened by path).
Expected errors: CaptureFileError (the reader or the metadata parser refuses the file).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuzzlib  # noqa: E402

EXPECTED = "pyfalco.errors.CaptureFileError"
MAX_LEN = 65536
CI_RUNS = 1500
#: fields read from every event (each is a different extractor path): the ones that read the
#: state the file's metadata and events built (threads, fds, users, containers)
FIELDS = ("proc.name", "proc.cmdline", "proc.pname", "proc.aname[2]",
          "proc.exepath", "proc.cwd", "proc.env", "proc.tty", "proc.is_exe_upper_layer", "thread.cap_effective",
          "user.name", "group.name", "fd.name", "fd.type", "fd.directory", "fd.filename", "fd.sip", "fd.cport",
          "fd.sport", "fd.l4proto", "fd.rip", "fd.net",
          "container.id", "container.name", "container.image", "k8s.pod.name", "evt.time", "evt.latency")
#: fields of the event alone, read from the first EVENT_FIELDS_EVENTS events of an input: their
#: rendering (evt.args most of all) was half this target's time on long captures, and the events
#: target fuzzes them on any record (a superset of what the reader hands out); every seed window
#: starts before an event type no earlier one has, so each type still gets them here
EVENT_FIELDS = ("evt.type", "evt.args", "evt.res", "evt.dir", "evt.arg.flags", "evt.rawarg.res", "evt.is_open_write")
EVENT_FIELDS_EVENTS = 64

_G: dict = {}


def setup() -> None:
    import pyfalco.capture
    import pyfalco.events
    import pyfalco.fields.extract
    import pyfalco.fields.provider
    import pyfalco.fields.render
    import pyfalco.inspector
    import pyfalco.scap.metadata
    import pyfalco.state.parser
    from pyfalco.errors import CaptureFileError
    _G["Capture"] = pyfalco.capture.Capture
    _G["Inspector"] = pyfalco.inspector.Inspector
    _G["expected"] = (CaptureFileError,)
    insp = pyfalco.inspector.Inspector(live=False, scan=False)
    def accessors(texts):
        out = []
        for text in texts:
            name, arg = text, None
            if text.endswith("]"):
                name, _, arg = text[:-1].partition("[")
            out.append(insp.provider.accessor(name, arg))
        return out
    _G["fields"] = accessors(FIELDS)
    _G["all_fields"] = accessors(EVENT_FIELDS) + _G["fields"]
    _G["insp"] = insp
    _G["initial_state_from_blocks"] = pyfalco.scap.metadata.initial_state_from_blocks


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' name
    fd = os.memfd_create("fuzz.scap")
    try:
        os.write(fd, data)
        try:
            cap = _G["Capture"](engine="replay", capture_file=f"/proc/self/fd/{fd}")
        except _G["expected"]:
            return
        with cap:
            try:
                # what Inspector(cap) does, on a long-lived Inspector (fuzzlib.reset_inspector)
                state = _G["initial_state_from_blocks"](cap.metadata_blocks())
                insp = fuzzlib.reset_inspector(_G["insp"], state)
                insp.capture = cap
                fields = _G["all_fields"]
                for n, ie in enumerate(insp.events(max_events=5000)):
                    if n == EVENT_FIELDS_EVENTS:
                        fields = _G["fields"]
                    for get in fields:
                        get(ie)
            except _G["expected"]:
                return
            finally:
                _G["insp"].capture = None
    finally:
        os.close(fd)


if __name__ == "__main__":
    fuzzlib.main(setup, TestOneInput, MAX_LEN)
