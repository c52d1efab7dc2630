# SPDX-License-Identifier: Apache-2.0
"""The proc.* accessors written out with their getter inline (one frame per read: proc.exe,
proc.exepath, proc.args, proc.cmdline, proc.pname, proc.is_exe_*) give what the generic
``_on(getter, who)`` composition gives, on every event of the shared captures and on an event
with no thread; so do proc.cwd (libs_main inline) and evt.res (``render.errno_name(_res(ie))``
in one frame). An execve sets a thread's args and their joined string at once
(threads.args_and_str): the string is always the join of the args."""

from __future__ import annotations

from pathlib import Path

import pytest

import pyfalco
from pyfalco.fields import evt as E
from pyfalco.fields import proc as P
from pyfalco.fields import render

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


def _generic_cwd(ie):
    """proc.cwd as it was composed before: libs_main, then the slash."""
    if ie.thread is None:
        return None
    m = P.libs_main(ie)
    if m is None:
        return "./"
    cwd = m.proc.cwd
    return cwd if not cwd or cwd.endswith("/") else cwd + "/"


def _generic_res(ie):
    r = E._res(ie)
    return None if r is None else render.errno_name(r)


def _joined(t) -> str:
    return " ".join(t.args)


def _generic_args(ie):
    """proc.args from the thread's args, not from a cached string (the fast accessors and the
    execve parser fill Thread's caches; a wrong cached string would fool a cached generic)."""
    t = ie.thread
    return None if t is None else _joined(t)


def _generic_cmdline(ie):
    t = ie.thread
    if t is None:
        return None
    a = _joined(t)
    return (f"{t.comm} {a}" if a else t.comm) or None


def _inlined() -> dict:
    """field -> (accessor, its ``inline`` expression compiled as a function of evt): what
    rules.compiler.compile_bucket writes into a bucket instead of the call."""
    from pyfalco.fields import container as C
    out = {}
    for name, fn in {**P.EXTRACTORS, **C.EXTRACTORS}.items():
        text = getattr(fn, "inline", None)
        if text is not None:
            out[name] = (fn, eval(f"lambda evt: {text}"))
    return out


INLINED = _inlined()
PAIRS["proc.cwd"] = _generic_cwd
PAIRS["proc.args"] = _generic_args
PAIRS["proc.cmdline"] = _generic_cmdline
FAST = {**P.EXTRACTORS, "evt.res": E.EXTRACTORS["evt.res"]}


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_written_out_accessors_equal_the_generic_ones(path):
    seen = res = 0
    with pyfalco.Capture("replay", capture_file=str(path)) as cap:
        insp = pyfalco.Inspector(cap)
        for evt in cap.events():
            ie = insp.process(evt)
            for name, generic in PAIRS.items():
                assert FAST[name](ie) == generic(ie), (name, evt)
            assert FAST["evt.res"](ie) == _generic_res(ie), evt
            for name, (fn, inline) in INLINED.items():
                assert inline(ie) == fn(ie), (name, evt)
            res += FAST["evt.res"](ie) is not None
            seen += ie.thread is not None
        for t in insp.threads.threads.values():
            assert t._args_str is None or t._args_str == " ".join(t.args), t
        insp.close()
    assert seen > 0 and res > 0 or "empty" in path.name     # events with a thread were compared


def test_no_thread():
    insp = pyfalco.Inspector()
    with pyfalco.Capture("replay", capture_file=str(CAPTURES[0])) as cap:
        evt = next(iter(cap.events()))
    ie = insp.parser.parse(evt)
    ie.thread = None
    for name in PAIRS:
        assert FAST[name](ie) is None
    for name, (fn, inline) in INLINED.items():
        assert inline(ie) is None and fn(ie) is None, name
    insp.close()


def test_inlined_reads_cover_the_execve_fields():
    assert {"proc.name", "proc.exe", "proc.exepath", "proc.args", "proc.cmdline", "proc.is_exe_from_memfd",
            "container.id"} <= set(INLINED)


def test_made_up_threads():
    """proc.cwd, proc.pname and the inlined reads on thread tables the shared captures do not have: a thread whose
    main thread is missing or unknown (pid -1), a thread that is its own parent, a cwd with and
    without its slash, an empty one."""
    from pyfalco.state.threads import Thread
    insp = pyfalco.Inspector()
    table = insp.threads
    with pyfalco.Capture("replay", capture_file=str(CAPTURES[0])) as cap:
        evt = next(iter(cap.events()))
    main = Thread(100, 100, 1)
    main.proc.cwd = "/srv"
    main.comm = "main"
    table.add(main)
    cases = [Thread(101, 100, 100, main.proc), Thread(102, 555, 100), Thread(103, -1, 100), Thread(104, 104, 104),
             Thread(105, 105, 0), Thread(106, 106, -1), Thread(107, 107, 999), main]
    cases[3].proc.cwd = "/a/"
    cases[4].proc.cwd = ""
    for t in cases[:-1]:
        t.comm = f"c{t.tid}"
        table.add(t)
    got = []
    for t in cases:
        ie = insp.parser.parse(evt)
        ie.inspector = insp
        ie.thread = t
        for name, generic in (("proc.cwd", _generic_cwd), ("proc.pname", PAIRS["proc.pname"])):
            v = FAST[name](ie)
            assert v == generic(ie), (name, t)
            got.append(v)
        t.container_id = "ab" * 32 if t.tid % 2 else ""
        t.exe_flags = t.tid & 15
        for name, (fn, inline) in INLINED.items():
            assert inline(ie) == fn(ie), (name, t)
    # the cases reach each branch: "./" (main missing, pid -1), the slash added and kept, "",
    # a parent's name, none for ptid 0/-1/own tid/unknown
    assert got.count("./") == 2 and "/srv/" in got and "/a/" in got and "" in got and "main" in got, got
    assert got.count(None) >= 4, got
    insp.close()
