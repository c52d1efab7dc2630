# SPDX-License-Identifier: Apache-2.0
"""Threads a replayed capture never describes, as libs master keeps them (issue 13's last fields).

libs makes a "fake" entry for a thread that neither the capture's process list nor a clone event
describes (thread_manager.cpp get_thread: pid/ptid -1, comm/exe <NA>, uid/gid/loginuid
0xffffffff), patches it from later clone and execve events (parsers.cpp parse_clone_exit_child /
_caller, parse_execve_exit), and reads process-wide values through the main thread as
get_main_thread() finds it. Each check below is a value sysdig 0.29 prints otherwise; the
differential harness (tools/diff_sysdig.py) names the case for each.
"""

from __future__ import annotations

from pathlib import Path

import pyfalco
from pyfalco.inspector import Inspector
from pyfalco.rules.output import value_text

CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "captures"
FIELDS = ("proc.pid", "proc.name", "thread.ismain", "proc.cwd", "proc.fdlimit", "proc.fdopencount", "proc.ppid",
          "proc.sid", "proc.vpgid", "proc.vpid", "thread.vtid", "user.uid", "group.gid", "proc.exeline",
          "proc.nchilds", "thread.vmsize", "proc.vmsize", "proc.fdusage", "user.loginuid")


def _first(capture: str, pred) -> dict:
    """The fields (as text) of the first event of ``capture`` that ``pred(ie)`` accepts."""
    with pyfalco.Capture(engine="replay", capture_file=str(CAPTURES / capture)) as cap:
        insp = Inspector(cap)
        getters = {f: insp.provider.accessor(f, None) for f in FIELDS}
        for ie in insp.events():
            if pred(ie):
                return {f: value_text(g(ie)) for f, g in getters.items()}
    raise AssertionError(f"no such event in {capture}")


def test_a_thread_never_described_is_an_invalid_entry():
    """libs_single_ipv6_conn.scap: tid 25888 only makes socket/connect/bind calls. libs master: pid
    -1, not a main thread and without one (cwd "./", fd limit and count 0, no ppid), every id
    unknown (sysdig 0.29 gave it pid = tid: case invalid_thread_pid)."""
    v = _first("libs_single_ipv6_conn.scap", lambda ie: ie.evt.tid == 25888 and ie.name == "bind")
    assert v["proc.pid"] == "-1" and v["proc.name"] == "<NA>" and v["thread.ismain"] == "false"
    assert v["proc.cwd"] == "./" and v["proc.fdlimit"] == "0" and v["proc.fdopencount"] == "0"
    assert v["proc.ppid"] == "<NA>" and v["proc.sid"] == "-1" and v["proc.vpgid"] == "-1"
    assert v["proc.vpid"] == "<NA>" and v["thread.vtid"] == "<NA>"
    assert v["user.uid"] == "4294967295" and v["group.gid"] == "4294967295"
    assert v["proc.exeline"] == "<NA> "          # libs: exe, a space, then the (no) arguments


def test_a_thread_of_an_unknown_process_patches_its_main_thread():
    """inspect_502Error.scap: curl's thread 843 starts with its own clone event; its process 842 was
    never described. libs master patches 842 from the event (pid, ptid 0 for the unknown parent)
    and copies nothing from it into 843: proc.cwd "" and fdlimit -1 come from the invalid main
    thread, sid -1 and loginuid 0xffffffff (init's defaults), memory and uid from the event, thread.vmsize 0 off the main thread, and
    proc.nchilds counts 843 (sysdig 0.29: ppid -1 and nchilds 0, loginuid 0: cases unknown_parent_is_0,
    nchilds_of_thread, loginuid_init_default)."""
    v = _first("inspect_502Error.scap", lambda ie: ie.evt.tid == 843 and ie.name == "clone")
    assert v["proc.pid"] == "842" and v["proc.name"] == "curl" and v["thread.ismain"] == "false"
    assert v["proc.cwd"] == "" and v["proc.fdlimit"] == "-1" and v["proc.ppid"] == "0"
    assert v["proc.sid"] == "-1" and v["user.uid"] == "1000" and v["user.loginuid"] == "-1"
    assert v["proc.vmsize"] == "99192" and v["thread.vmsize"] == "0" and v["proc.nchilds"] == "1"
    assert v["proc.fdusage"] == "0.0"             # no positive limit: 0, printed as libs' "%.1lf"


def test_an_invalid_thread_that_runs_execve_is_patched():
    """libs_test_ipv6_client.scap: tid 19747 is first seen in its execve. libs master's
    parse_execve_exit sets pid, ptid (the shell, in the process list), vtid/vpid; the cwd stays unknown (never taken from an execve) and
    the uid stays 0xffffffff (the old execve has no uid parameter)."""
    v = _first("libs_test_ipv6_client.scap", lambda ie: ie.evt.tid == 19747 and ie.name == "brk")
    assert v["proc.pid"] == "19747" and v["thread.ismain"] == "true" and v["proc.vpid"] == "19747"
    assert v["proc.cwd"] == "" and v["user.uid"] == "4294967295" and v["proc.ppid"] == "19117"   # a known parent
    assert v["proc.exeline"] == "./test_ipv6_client "


def test_a_close_exit_still_counts_the_closed_fd():
    """libs' parse_close_exit only schedules the removal (verdict.add_fd_to_remove): the fields of
    the close exit still see the fd, the next event does not."""
    path = CAPTURES / "inspect_502Error.scap"
    with pyfalco.Capture(engine="replay", capture_file=str(path)) as cap:
        insp = Inspector(cap)
        count = insp.provider.accessor("proc.fdopencount", None)
        at_close = after = None
        for ie in insp.events():
            if at_close is None and ie.evt.tid == 13969 and ie.name == "close" and ie.evt.get("res") == 0 \
                    and ie.fd is not None:
                at_close = count(ie)
                continue
            if at_close is not None and ie.evt.tid == 13969:
                after = count(ie)
                break
    assert at_close is not None and after == at_close - 1, (at_close, after)
