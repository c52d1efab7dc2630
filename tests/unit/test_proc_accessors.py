# SPDX-License-Identifier: Apache-2.0
"""The proc.* accessors written out with their getter inline (one frame per read: proc.exe,
proc.exepath, proc.args, proc.cmdline, proc.pname, proc.is_exe_*) give what the generic
``_on(getter, who)`` composition gives, on every event of the shared captures and on an event
with no thread."""

from __future__ import annotations

from pathlib import Path

import pytest

import pyfalco
from pyfalco.fields import proc as P

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = sorted((ROOT.parent / "shared" / "captures").glob("*.scap"))
PAIRS = {
    "proc.exe": P._on(P._g_exe, P._self), "proc.exepath": P._on(P._g_exepath, P._self),
    "proc.args": P._on(P._g_args, P._self), "proc.cmdline": P._on(P._g_cmdline, P._self),
    "proc.pname": P._on(P._g_comm, P._par),
    **{f"proc.{n}": P._on(P._exe_flag(bit), P._self)
       for n, bit in (("is_exe_writable", 1), ("is_exe_upper_layer", 2), ("is_exe_from_memfd", 4),
                      ("is_exe_lower_layer", 8))},
}


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_written_out_accessors_equal_the_generic_ones(path):
    seen = 0
    with pyfalco.Capture("replay", capture_file=str(path)) as cap:
        insp = pyfalco.Inspector(cap)
        for evt in cap.events():
            ie = insp.process(evt)
            for name, generic in PAIRS.items():
                assert P.EXTRACTORS[name](ie) == generic(ie), (name, evt)
            seen += ie.thread is not None
        insp.close()
    assert seen > 0 or "empty" in path.name     # events with a thread were compared


def test_no_thread():
    insp = pyfalco.Inspector()
    with pyfalco.Capture("replay", capture_file=str(CAPTURES[0])) as cap:
        evt = next(iter(cap.events()))
    ie = insp.parser.parse(evt)
    ie.thread = None
    for name in PAIRS:
        assert P.EXTRACTORS[name](ie) is None
    insp.close()
