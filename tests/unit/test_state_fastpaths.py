# SPDX-License-Identifier: Apache-2.0
"""The state engine's cheaper per-event paths leave the state the general paths leave.

* ``Inspector.process_raw`` applies an open of a known thread through ``StateParser.open_layout``
  straight away, connect and the current table's execve and clone read their parameters by
  position without the picker, and ``Fd.made`` builds an Fd without ``__init__``. Every shared capture,
  and a live capture of the open-heavy workload tools/bench/bench_events.py records (modern eBPF
  probe: the current table's layouts, which the shared captures predate), is replayed through
  process_raw with those paths, and through ``Inspector.process`` (parse() for every event) with
  the positional reads sent back through the picker: what each event shows a rule right after
  it is parsed (its thread, fd, numbers) and, at the end, every thread's and fd's slots must
  be equal.
* ``Fd.made`` sets every slot ``Fd()`` sets, to the same values.
* ``StateParser.parse`` and process_raw's open path build their InspectedEvent without
  ``__init__`` (nine stores inline: an ``InspectedEvent.made`` call costs ~80 ns more per event
  here, 2% of an openat): every event either hands a rule has every slot set, and each slot
  no parser handler sets has ``__init__``'s value, so a slot added to InspectedEvent and not to
  those two places fails here.

That alerts and field values stay the same end to end is tests/api/test_engine_paths.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import pyfalco
from pyfalco.state import parser as sp
from pyfalco.state.event import InspectedEvent
from pyfalco.state.fds import Fd
from pyfalco.state.threads import Thread

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = sorted((ROOT.parent / "shared" / "captures").glob("*.scap"))
_SKIP_SLOTS = {"proc", "children", "__weakref__"}


def _fd_state(f: Fd) -> tuple:
    return tuple((s, repr(getattr(f, s))) for s in Fd.__slots__)


def _state(insp: pyfalco.Inspector) -> dict:
    out = {}
    for tid, t in insp.threads.threads.items():
        slots = tuple((s, repr(getattr(t, s, "<unset>"))) for s in Thread.__slots__ if s not in _SKIP_SLOTS)
        proc = t.proc
        fds = tuple(sorted((n, _fd_state(f)) for n, f in proc.fds.items()))
        out[tid] = (slots, proc.cwd, proc.root, proc.nthreads, fds, tuple(sorted(t.children or ())))
    return out


#: the InspectedEvent slots the parser's handlers (or its bookkeeping) set
_SET_BY_PARSER = {"evt", "inspector", "thread", "fd", "fdnum", "name_changed", "extra", "prev_ts"}


def _as_init(ie) -> None:
    """ie was built with every slot, those no handler sets as InspectedEvent.__init__ sets them."""
    ref = InspectedEvent(ie.evt, ie.inspector)
    for slot in InspectedEvent.__slots__:
        assert hasattr(ie, slot), slot
        if slot not in _SET_BY_PARSER:
            assert getattr(ie, slot) == getattr(ref, slot), slot


def _seen(ie) -> tuple:
    """What a rule sees of an event right after it was parsed."""
    _as_init(ie)
    t, f = ie.thread, ie.fd
    return (ie.evt.num, ie.evt.type, ie.fdnum, ie.name_changed, ie.prev_ts, _fd_state(f) if f is not None else None,
            (t.tid, t.pid, t.last_ts, t.comm, t.exepath) if t is not None else None)


def _fast(path: Path) -> tuple[dict, list]:
    cap = pyfalco.Capture("replay", capture_file=str(path))
    insp = pyfalco.Inspector(cap)
    seen: list = []
    try:
        while True:
            raw = cap.next_raw_batch(0)
            if raw is None:
                break
            buf, k, first = raw[:3]
            insp.process_raw(buf, k, first, None, lambda ie: seen.append(_seen(ie)))
    finally:
        cap.close()
        insp.close()
    return _state(insp), seen


def _general(path: Path, monkeypatch) -> tuple[dict, list]:
    monkeypatch.setattr(sp, "_CONNECT_CURRENT", False)
    monkeypatch.setattr(sp, "_EXECVE_CURRENT_N", 0)
    monkeypatch.setattr(sp, "_CLONE_CURRENT_N", 0)
    cap = pyfalco.Capture("replay", capture_file=str(path))
    insp = pyfalco.Inspector(cap)
    seen: list = []
    try:
        for evt in cap.events():
            seen.append(_seen(insp.process(evt)))
    finally:
        cap.close()
        insp.close()
    return _state(insp), seen


def _check(path: Path, monkeypatch) -> None:
    fast, seen_fast = _fast(path)
    general, seen_general = _general(path, monkeypatch)
    assert len(seen_fast) == len(seen_general)
    for a, b in zip(seen_fast, seen_general):
        assert a == b
    assert fast.keys() == general.keys()
    for tid in fast:
        assert fast[tid] == general[tid], tid


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_fast_paths_leave_the_state_of_the_general_ones(path, monkeypatch):
    _check(path, monkeypatch)


def test_fast_paths_on_a_live_open_heavy_capture(tmp_path, monkeypatch):
    """openat/close/connect/execve/clone as the modern probe records them today (needs root and
    the modern eBPF driver, as every live test of this machine)."""
    sys.path.insert(0, str(ROOT / "tools" / "bench"))
    try:
        import bench_events
    finally:
        sys.path.remove(str(ROOT / "tools" / "bench"))
    path = tmp_path / "open_heavy.scap"
    assert bench_events.record(str(path), 0.3) > 1000
    opens = execs = connects = clones = 0
    with pyfalco.Capture("replay", capture_file=str(path)) as cap:
        for e in cap:
            opens += e.type == sp.E_OPENAT and e.nparams == sp.OPEN_LAYOUT[sp.E_OPENAT][0]
            execs += e.type == sp.E_EXECVE and e.nparams == sp._EXECVE_CURRENT_N
            clones += e.type == sp.E_CLONE and e.nparams == sp._CLONE_CURRENT_N
            connects += e.type == sp.E_CONNECT and e.nparams == 4
    assert opens > 100 and execs > 0 and connects > 10 and clones > 0, (opens, execs, connects, clones)
    _check(path, monkeypatch)


def test_fd_made_is_fd_init_plus_its_arguments():
    a = Fd.made(7, 3, "/etc/passwd", 1 << 12, "passwd", 2049, 1234, 99)
    b = Fd(7, 3, "/etc/passwd", 1 << 12)
    b.nameraw, b.dev, b.ino, b.pid = "passwd", 2049, 1234, 99
    assert _fd_state(a) == _fd_state(b)
