# SPDX-License-Identifier: Apache-2.0
"""StateParser._execve applies the ids, fd limit, memory and page-fault counters inline (a
nine-argument call per execve saved) while clone calls ``_take_counters``: the inline copy must stay
the helper's body. Pinned twice: the statements themselves (the helper's body appears, statement
for statement, in _execve), and on every execve exit of the shared captures (the thread's counters
after the event are those the helper gives from the thread's values before it and the event's;
the shared captures hold one execve exit, tools/bench's recorded ones many)."""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
from pathlib import Path

import pytest

import pyfalco
from pyfalco.inspector import Inspector
from pyfalco.state.threads import invalid_thread
from pyfalco.state.parser import E_EXECVE, E_EXECVEAT, StateParser, _take_counters

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = sorted((ROOT.parent / "shared" / "captures").glob("*.scap"))
COUNTERS = ("uid", "gid", "fdlimit", "vmsize", "vmrss", "vmswap", "pfmajor", "pfminor")


def _body(fn) -> list:
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    body = tree.body[0].body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]                 # the docstring
    return [ast.dump(stmt) for stmt in body]


def test_execve_inlines_the_helper_statement_for_statement():
    helper = _body(_take_counters)
    assert len(helper) == 8
    execve = _body(StateParser._execve)      # its top-level statements, where the copy is
    n = len(helper)
    assert any(execve[i:i + n] == helper for i in range(len(execve) - n + 1)), \
        "StateParser._execve no longer holds _take_counters' body: update the inline copy or call the helper"


@pytest.mark.parametrize("capture", CAPTURES, ids=[c.name for c in CAPTURES])
def test_execve_counters_equal_the_helper(capture):
    cap = pyfalco.Capture("replay", capture_file=str(capture))
    insp = Inspector(cap)
    checked = 0
    try:
        for evt in cap.events():
            if evt.type not in (E_EXECVE, E_EXECVEAT):
                insp.process(evt)
                continue
            t = insp.threads.threads.get(evt.tid)
            # a thread the capture never described is made by the event (libs' invalid entry)
            old = t if t is not None else invalid_thread(evt.tid)
            before = types.SimpleNamespace(**{k: getattr(old, k) for k in COUNTERS})
            ie = insp.process(evt)
            # the event's values as evt.params names them (not the handler's positional unpack)
            params = evt.params
            res = params.get("res")
            uid, gid, fdlimit = params.get("uid"), params.get("gid"), params.get("fdlimit")
            vm_size, vm_rss, vm_swap = params.get("vm_size"), params.get("vm_rss"), params.get("vm_swap")
            pgft_maj, pgft_min = params.get("pgft_maj"), params.get("pgft_min")
            if res is None or res < 0 or ie.thread is None or (t is not None and ie.thread is not t):
                continue
            t = ie.thread
            _take_counters(before, uid, gid, fdlimit, vm_size, vm_rss, vm_swap, pgft_maj, pgft_min)
            assert {k: getattr(t, k) for k in COUNTERS} == vars(before), evt
            checked += 1
    finally:
        cap.close()
        insp.close()
    if capture.name == "libs_curl_google.scap":
        assert checked > 0          # not vacuous (the shared captures' only execve exit)
