# SPDX-License-Identifier: Apache-2.0
"""The capture-side skip of the batch path (Inspector.batch_skip -> Capture.next_raw_skip_batch):
events that no rule wants and that the state only looks up (read, fstat, setsockopt, ... in a
replay) stay in libpyfalco as runs of (ts, tid); alerts, every rendered field value (event
numbers, delta times, threads, fds), event counts and the state engine's counters are the same
with the skip on and off, on every shared capture with pyfalco's default rules, Falco's stable
rules and a ruleset that renders fields reading the skipped events' effects."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

import pyfalco
from pyfalco.events import ENTRY_HDR, ENTRY_SIZE
from pyfalco.record import HDR_SIZE
from pyfalco.inspector import Inspector

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = sorted((ROOT.parent / "shared" / "captures").glob("*.scap"))
# fields that could observe a skipped event: its number (evt.num of later events), the time since
# the previous event (a skipped one), threads the skipped events made (missing ones), fds
FIELDS = """
- rule: every wanted event
  desc: x
  condition: evt.type in (open, openat, openat2, close, execve, clone, connect, accept, socket, procexit)
  output: "%evt.num %evt.deltatime %evt.rawtime %evt.type %thread.tid %proc.name %proc.pname %fd.name %fd.num %fd.connected %fd.l4proto %proc.vmsize %thread.vmrss"
  priority: INFO
"""
RULES = {"fields": FIELDS, "default": ROOT / "rules" / "pyfalco_rules.yaml",
         "stable": ROOT.parent / "shared" / "rules" / "falco_rules.yaml"}


def _run(capture: Path, rules, skip: bool, monkeypatch) -> tuple[list, int, dict]:
    monkeypatch.setattr(Inspector, "skip_in_capture", skip)
    engine = pyfalco.Engine(rules, capture=pyfalco.Capture("replay", capture_file=str(capture)), batch=True)
    with engine:
        got = [(a.rule, a.time_ns, a.priority, a.message, a.fields) for a in engine.alerts()]
        stats = engine.inspector.stats()
        counters = engine.capture.stats()
    return got, engine.n_events, {**stats, "delivered": counters.get("n_evts_delivered")}


@pytest.mark.parametrize("rules", sorted(RULES))
@pytest.mark.parametrize("capture", CAPTURES, ids=[c.name for c in CAPTURES])
def test_skip_in_capture_changes_nothing(capture, rules, monkeypatch):
    on = _run(capture, RULES[rules], True, monkeypatch)
    off = _run(capture, RULES[rules], False, monkeypatch)
    assert on[1] == off[1]
    assert on[2] == off[2]
    assert on[0] == off[0]


def test_skipped_runs_hold_every_event():
    """On the largest capture with the stable rules most events come as runs, and the runs' events
    plus the copied ones are every event of the file, numbered without a gap."""
    big = max(CAPTURES, key=lambda p: p.stat().st_size)
    engine = pyfalco.Engine(RULES["stable"], capture=pyfalco.Capture("replay", capture_file=str(big)))
    with engine:
        insp = engine.inspector
        _m, wanted = engine.evaluator("syscall").code_matchers(insp.event_code_names)
        skip = insp.batch_skip(wanted)
        assert skip is not None
        cap = engine.capture
        entries = events = 0
        nxt = 0
        while True:
            raw = cap.next_raw_skip_batch(0, skip, max_events=4096)
            if raw is None:
                break
            _buf, n, first, nev = raw
            assert first == nxt and n <= nev <= 4096
            nxt += nev
            entries += n
            events += nev
    with pyfalco.Capture("replay", capture_file=str(big)) as plain:
        total = 0
        while (b := plain.next_raw_batch(0)) is not None:
            total += b[1]
    assert events == total
    assert entries < events // 2    # most events came as runs


def test_no_skip_when_live_state_is_loaded():
    """With a thread/fd loader (live), nothing is skipped in the capture: the looked-up fd may be read
    from /proc, a state change the skip would lose."""
    insp = Inspector(live=True, scan=False)
    try:
        assert insp.batch_skip(None) is None
    finally:
        insp.close()


@pytest.mark.parametrize("capture", CAPTURES, ids=[c.name for c in CAPTURES])
def test_fields_batch_equal_per_event(capture):
    """The field-heavy rules (memory counters that process_raw takes straight from mmap/munmap/brk
    records, event numbers, delta times) render the same on the batch and per-event paths."""
    got = {}
    for batch in (True, False):
        engine = pyfalco.Engine(FIELDS, capture=pyfalco.Capture("replay", capture_file=str(capture)), batch=batch)
        with engine:
            got[batch] = ([(a.rule, a.time_ns, a.message, a.fields) for a in engine.alerts()],
                          engine.n_events, engine.inspector.stats())
    assert got[True] == got[False]
    if capture.name == "inspect_502Error.scap":
        # not vacuous: memory counters were set by the records and rendered
        assert any(a[3].get("proc.vmsize") not in (None, 0) for a in got[True][0])


def _walk(raw_batches, mask: bytes | None) -> list:
    """(ts, tid, type or 'skip', mask value) of every event, runs unrolled."""
    out = []
    for buf, n in raw_batches:
        off = 0
        for _ in range(n):
            _cpu, flags, rlen, ts, tid, _length, etype, nparams = ENTRY_HDR.unpack_from(buf, off)
            if etype >= 0xFFFE:
                assert flags == 2
                vals = struct.unpack_from(f"<{2 * nparams}Q", buf, off + ENTRY_SIZE + HDR_SIZE)
                out += [(vals[i], vals[i + 1], "skip", 0x10000 - etype) for i in range(0, len(vals), 2)]
            elif mask is not None and etype < len(mask) and mask[etype]:
                out.append((ts, tid, "skip", mask[etype]))
            else:
                out.append((ts, tid, etype, 0))
            off += (ENTRY_SIZE + rlen + 7) & ~7
    return out


@pytest.mark.parametrize("batch_bytes,max_events", [(256, 1 << 20), (4096, 7), (1 << 20, 1 << 20)])
def test_runs_hold_the_skipped_events_in_order(batch_bytes, max_events):
    """Small buffers and event limits cut runs anywhere: unrolled, the runs and copied events are
    the file's events in order, each skipped one with its own ts, tid and mask value."""
    big = max(CAPTURES, key=lambda p: p.stat().st_size)
    engine = pyfalco.Engine(RULES["stable"], capture=pyfalco.Capture("replay", capture_file=str(big)))
    with engine:
        insp = engine.inspector
        skip = insp.batch_skip(engine.evaluator("syscall").code_matchers(insp.event_code_names)[1])
    assert skip is not None and set(skip) >= {0, 1, 2}
    with pyfalco.Capture("replay", capture_file=str(big), batch_bytes=batch_bytes) as cap:
        got = []
        while (b := cap.next_raw_skip_batch(0, skip, max_events=max_events)) is not None:
            assert b[1] <= b[3] <= max_events
            got.append(b[:2])
    with pyfalco.Capture("replay", capture_file=str(big)) as cap:
        plain = []
        while (b := cap.next_raw_batch(0)) is not None:
            plain.append(b[:2])
    expect = _walk(plain, skip)
    assert _walk(got, None) == expect
    assert sum(1 for e in expect if e[2] == "skip") > len(expect) // 2
