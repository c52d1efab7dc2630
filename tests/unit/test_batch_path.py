# SPDX-License-Identifier: Apache-2.0
"""The batch path (Capture.next_raw_batch -> Inspector.process_raw -> Ruleset.code_matchers) gives
what the event-by-event path (split_batch -> Inspector.process -> Ruleset.match) gives: the same
parameter values, the same state, the same rules matching every event."""

from __future__ import annotations

from pathlib import Path

import pytest

import pyfalco
from pyfalco.events import Event, split_batch
from pyfalco.inspector import Inspector
from pyfalco.rules import load_rules

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = sorted((ROOT.parent / "shared" / "captures").glob("*.scap"))
RULES = {"default": ROOT / "rules" / "pyfalco_rules.yaml",
         "stable": ROOT.parent / "shared" / "rules" / "falco_rules.yaml"}
# conditions that hold often on inspect_502Error: many matches, fields shared between rules
BROAD = """
- macro: opens
  condition: evt.type in (open, openat, openat2)
- rule: any open
  desc: x
  condition: opens and fd.name startswith / and proc.name exists
  output: "%proc.name %fd.name"
  priority: INFO
- rule: open under etc
  desc: x
  condition: opens and fd.directory = /etc and evt.is_open_read = true
  output: "%fd.name"
  priority: INFO
- rule: reads
  desc: x
  condition: evt.type in (read, recvfrom, sendto) and fd.typechar in (f, 4, 6, u) and evt.res exists
  output: "%fd.name"
  priority: INFO
- rule: spawned
  desc: x
  condition: evt.type in (clone, execve) and evt.dir = < and proc.pname exists
  output: "%proc.pname"
  priority: INFO
- rule: connects
  desc: x
  condition: evt.type = connect and fd.sip exists and fd.sport > 0
  output: "%fd.name"
  priority: INFO
- rule: every close of a known fd
  desc: x
  condition: evt.type = close and fd.num >= 0 and not fd.name = ""
  output: "%fd.name"
  priority: INFO
"""


def _values_slow(e: Event) -> tuple:
    return tuple(e._param_slow(i) for i in range(e.nparams))


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_decoded_values_are_param_values(path):
    with pyfalco.Capture(engine="replay", capture_file=str(path)) as cap:
        for e in cap:
            fast = Event(e.buf, e.off).values()
            slow = _values_slow(e)
            assert fast == slow and [type(v) for v in fast] == [type(v) for v in slow], e


def _ruleset(which: str, provider, matching: str):
    src = BROAD if which == "broad" else RULES[which]
    res = load_rules(src, provider=provider, rule_matching=matching)
    assert res.ruleset is not None, res.as_text()
    return res.ruleset


def _one_by_one(path, ruleset_of):
    out = {}
    with pyfalco.Capture(engine="replay", capture_file=str(path)) as cap:
        insp = Inspector(cap)
        rs = ruleset_of(insp.provider)
        while True:
            raw = cap.next_raw_batch()
            if raw is None:
                break
            for evt in split_batch(*raw):
                ie = insp.process(evt)
                hits = rs.match(ie)
                t = ie.thread
                out[evt.num] = ([r.name for r in hits], t.comm if t is not None else None,
                                ie.fd.name if ie.fd is not None else None, ie.fdnum)
        return out, insp.stats()


def _batched(path, ruleset_of):
    out = {}
    with pyfalco.Capture(engine="replay", capture_file=str(path)) as cap:
        insp = Inspector(cap)
        rs = ruleset_of(insp.provider)
        matchers, wanted = rs.code_matchers(insp.event_code_names)

        def on_event(ie):
            hits = matchers[ie.evt.type](ie)
            t = ie.thread
            out[ie.evt.num] = ([r.name for r in hits], t.comm if t is not None else None,
                               ie.fd.name if ie.fd is not None else None, ie.fdnum)
        while True:
            raw = cap.next_raw_batch()
            if raw is None:
                break
            insp.process_raw(*raw, wanted, on_event)
        return out, insp.stats()


@pytest.mark.parametrize("matching", ["first", "all"])
@pytest.mark.parametrize("which", ["broad", "default", "stable"])
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_batch_path_matches_event_by_event(path, which, matching):
    def ruleset_of(provider):
        return _ruleset(which, provider, matching)
    ref, ref_stats = _one_by_one(path, ruleset_of)
    got, got_stats = _batched(path, ruleset_of)
    assert got_stats == ref_stats
    # every event some rule matched reached the rules, with the same state and the same rules
    for num, (hits, *ctx) in ref.items():
        if hits:
            assert got.get(num) == (hits, *ctx), num
    for num, row in got.items():
        assert ref[num] == row, num
    if which == "broad" and path.name == "inspect_502Error.scap":
        assert sum(1 for hits, *_ in ref.values() if hits) > 1000


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
