# SPDX-License-Identifier: Apache-2.0
"""The batch path's decoding (Event.values and Inspector.process_raw) gives what the event-by-event
decoding gives: the same parameter values, the wanted events only, the same errors on malformed
records. That both paths give the same alerts and the same state is tested once, on the engine
(tests/api/test_engine_paths.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import pyfalco
from pyfalco.events import Event
from pyfalco.inspector import Inspector

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = sorted((ROOT.parent / "shared" / "captures").glob("*.scap"))
def _values_slow(e: Event) -> tuple:
    return tuple(e._param_slow(i) for i in range(e.nparams))


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_decoded_values_are_param_values(path):
    with pyfalco.Capture(engine="replay", capture_file=str(path)) as cap:
        for e in cap:
            fast = Event(e.buf, e.off).values()
            slow = _values_slow(e)
            assert fast == slow and [type(v) for v in fast] == [type(v) for v in slow], e


def test_process_raw_without_handler_returns_the_wanted_events():
    path = ROOT.parent / "shared" / "captures" / "inspect_502Error.scap"
    with pyfalco.Capture(engine="replay", capture_file=str(path)) as cap:
        insp = Inspector(cap)
        raw = cap.next_raw_batch()
        wanted = bytearray(65536)
        wanted[3] = 1          # open exit
        ies = insp.process_raw(*raw, bytes(wanted))
        assert ies and all(ie.evt.name == "open" and ie.evt.type == 3 for ie in ies)
        assert insp.n_events == raw[1]
        assert [ie.evt.num for ie in ies] == sorted(ie.evt.num for ie in ies)


def test_decoders_on_random_records():
    """Lengths of every size (empty, narrower, wider than the type), missing and extra parameters,
    records cut short: the generated decoders give param(i)'s values or raise the same error."""
    import random
    import struct

    from pyfalco import EventDecodeError
    from pyfalco.events import EVENTS

    rnd = random.Random(7)
    codes = [e.code for e in EVENTS if e.params]
    for _ in range(20000):
        info = EVENTS[rnd.choice(codes)]
        n = max(0, len(info.params) + rnd.choice([0, 0, 0, -1, 1]))
        parts = [bytes(rnd.getrandbits(8) for _ in range(rnd.choice([0, 1, 2, 4, 8, 8, 4, 16, rnd.randint(0, 40)])))
                 for _ in range(n)]
        large = "LARGE_PAYLOAD" in info.flags
        lens = struct.pack("<%d%s" % (n, "I" if large else "H"), *map(len, parts))
        body = b"".join(parts)
        rec = struct.pack("<QQIHI", 1, 2, 26 + len(lens) + len(body), info.code, n) + lens + body
        cut = rnd.choice([0] * 8 + [rnd.randint(1, 10)])
        if cut:
            rec = rec[:-cut]
        if len(rec) < 26:
            continue

        def outcome(fn):
            try:
                return fn(Event(rec, 0))
            except EventDecodeError:
                return "error"
        slow = outcome(_values_slow)
        fast = outcome(lambda e: e.values())
        assert fast == slow, (info.name, rec.hex())
        if slow != "error":
            assert [type(v) for v in fast] == [type(v) for v in slow], (info.name, rec.hex())
