# SPDX-License-Identifier: Apache-2.0
"""The clone/execve handlers' cheaper reads give what the dict reads gave: the positional
parameter picker answers ``evt.params.get(key)`` for every key on every clone/execve of the
shared captures (and on records with fewer parameters than the table), and ``Thread.inherit``'s
straight assignments copy exactly the slots the old getattr/setattr loop copied. That the state
and alerts stay the same end to end is tests/api/test_engine_paths.py and tests/compliance."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

import pyfalco
from pyfalco.events import Event
from pyfalco.record import HDR_SIZE, pack_header
from pyfalco.state import parser as sp
from pyfalco.state.threads import INHERITED, Proc, Thread, split_args, _split_nul

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = sorted((ROOT.parent / "shared" / "captures").glob("*.scap"))
PICKS = {sp.E_CLONE: sp._CLONE_PICK, sp.E_FORK: sp._CLONE_PICK, sp.E_VFORK: sp._CLONE_PICK,
         sp.E_CLONE3: sp._CLONE_PICK, sp.E_EXECVE: sp._EXECVE_PICK, sp.E_EXECVEAT: sp._EXECVE_PICK}


def _expected(pick, evt) -> tuple:
    p = evt.params
    return tuple(p.get(k) for k in pick.keys)


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_picker_is_params_get_on_real_events(path):
    seen = 0
    with pyfalco.Capture(engine="replay", capture_file=str(path)) as cap:
        for e in cap:
            pick = PICKS.get(e.type)
            if pick is None:
                continue
            fresh = Event(e.buf, e.off)
            assert pick(fresh) == _expected(pick, Event(e.buf, e.off)), e
            seen += 1
    if path.name == "inspect_502Error.scap":
        assert seen > 100


@pytest.mark.parametrize("code", sorted(PICKS))
def test_picker_on_short_records(code):
    """A record with fewer parameters than the table (an older driver): absent ones are None."""
    pick = PICKS[code]
    for n in (0, 1, 3, 5):
        vals = [struct.pack("<q", 7 + i) for i in range(n)]   # whatever the types: 8 bytes each
        body = struct.pack(f"<{n}H", *(len(v) for v in vals)) + b"".join(vals)
        rec = pack_header(1, 42, HDR_SIZE + len(body), code, n) + body
        evt = Event(rec, 0)
        got = pick(evt)
        assert got == _expected(pick, Event(rec, 0))
        assert got.count(None) >= len(pick.keys) - n


SLOTS = [s for s in Thread.__slots__ if s != "__weakref__"]


def _marked_parent() -> Thread:
    """A thread whose every slot but ``proc`` holds a value of its own (to see what is copied)."""
    parent = Thread(10, 10, 1)
    for i, s in enumerate(SLOTS):
        if s != "proc":
            setattr(parent, s, ("parent", i))
    return parent


def test_inherit_copies_exactly_the_inherited_slots():
    parent = _marked_parent()
    slots = SLOTS
    child = Thread(11, 11, 10)
    before = {s: getattr(child, s) for s in slots}
    child.inherit(parent)
    changed = {s for s in slots if getattr(child, s) is not before[s]}
    assert changed == set(INHERITED)
    assert all(getattr(child, s) is getattr(parent, s) for s in INHERITED)


def test_thread_takes_a_given_proc_as_it_is():
    proc = Proc(cwd="/x")
    proc.nthreads = 3
    t = Thread(5, 5, 1, proc)
    assert t.proc is proc and proc.nthreads == 3
    assert Thread(6).proc.nthreads == 1


def test_split_args_is_split_nul():
    for raw in (None, b"", b"a\0", b"a\0b\0", b"a\0\0b", b"x\xff\0y"):
        assert split_args(raw) == _split_nul(raw)
    assert split_args(b"ls\0-l\0") is split_args(b"ls\0-l\0")


def test_container_from_cgroups_by_identity_and_by_value_agree():
    from pyfalco.state.cgroups import container_from_cgroups
    cid = "ab" * 32
    inside = (("cpu", f"/docker/{cid}"), ("memory", f"/docker/{cid}"))
    same_value = tuple(list(inside))
    assert same_value is not inside
    assert container_from_cgroups(inside) == container_from_cgroups(same_value) == (cid, "docker")
    assert container_from_cgroups(inside) == (cid, "docker")          # the identity hit
    assert container_from_cgroups((("cpu", "/user.slice"),)) is None
    t = Thread(7)
    t.set_cgroups(f"cpu=/docker/{cid}\0".encode())
    assert container_from_cgroups(t.cgroups) == (cid, "docker")


def test_child_of_is_init_then_inherit():
    parent = _marked_parent()
    slots = SLOTS
    proc = Proc()
    made = Thread.child_of(parent, 11, 12, 10, proc)
    ref = Thread(11, 12, 10, proc)
    ref.inherit(parent)
    for s in slots:
        assert getattr(made, s) == getattr(ref, s), s
    assert made.proc is proc and proc.nthreads == 0


def _resolve_by_normpath(base: str, path: str) -> str:
    import posixpath
    if not path:
        return path
    if path[0] != "/":
        if not base:
            return path
        path = base + "/" + path
    out = posixpath.normpath(path)
    return "/" + out.lstrip("/") if out.startswith("//") else out


def test_resolve_path_fast_case_is_normpath():
    import itertools
    parts = ["", "/", "a", ".", "..", ".x", "b.", "//", "/./", "/../", "x/", "é"]
    for combo in itertools.product(parts, repeat=3):
        path = "".join(combo)
        for candidate in (path, "/" + path):
            for base in ("", "/", "/home/u", "/tmp/"):
                assert sp.resolve_path(base, candidate) == _resolve_by_normpath(base, candidate), (base, candidate)
