#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Fuzz target: a whole capture file through the replay engine (libpyfalco's .scap reader, plain
or gzip), its metadata blocks into an InitialState (pyfalco/scap/metadata.py), every event
through the Python decoders and the state engine (Inspector / state/parser.py), and a set of
fields extracted from each event, as ``pyfalco -e`` does.

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
#: fields read from every event (each is a different extractor path)
FIELDS = ("evt.type", "evt.args", "evt.res", "evt.dir", "proc.name", "proc.cmdline", "proc.pname", "proc.aname[2]",
          "proc.exepath", "proc.cwd", "proc.env", "proc.tty", "proc.is_exe_upper_layer", "thread.cap_effective",
          "user.name", "group.name", "fd.name", "fd.type", "fd.directory", "fd.filename", "fd.sip", "fd.cport",
          "fd.sport", "fd.l4proto", "fd.rip", "fd.net", "evt.arg.flags", "evt.rawarg.res", "evt.is_open_write",
          "container.id", "container.name", "container.image", "k8s.pod.name", "evt.time", "evt.latency")

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
    fields = []
    for text in FIELDS:
        name, arg = text, None
        if text.endswith("]"):
            name, _, arg = text[:-1].partition("[")
        fields.append(insp.provider.accessor(name, arg))
    _G["fields"] = fields
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
                fields = _G["fields"]
                for ie in insp.events(max_events=5000):
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
