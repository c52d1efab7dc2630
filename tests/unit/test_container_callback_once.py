# SPDX-License-Identifier: Apache-2.0
"""StateParser.on_container (the Inspector starts a container's metadata lookup from it) fires
once per thread and event: a child made from its own clone event got it twice before (from
_fill_from_clone and again from _new_child). inspect_502Error.scap has 37 threads of one docker
container, each made from its own clone event."""

from __future__ import annotations

import collections
from pathlib import Path

import pyfalco

ROOT = Path(__file__).resolve().parents[2]
CAPTURE = ROOT.parent / "shared" / "captures" / "inspect_502Error.scap"


def _callbacks() -> collections.Counter:
    """(event number, tid, container id) -> on_container calls, over the capture's events."""
    calls: collections.Counter = collections.Counter()
    with pyfalco.Capture("replay", capture_file=str(CAPTURE)) as cap:
        insp = pyfalco.Inspector(cap)
        now = [0]

        def count(t, cid: str, runtime: str) -> None:
            calls[(now[0], t.tid, cid)] += 1
        insp.parser.on_container = count
        for evt in cap.events():
            now[0] = evt.num
            insp.process(evt)
        insp.close()
    return calls


def test_on_container_once_per_thread_and_event():
    calls = _callbacks()
    assert len({tid for _, tid, _ in calls}) >= 30      # the container's threads were seen
    again = {k: n for k, n in calls.items() if n > 1}
    assert not again, again
