# SPDX-License-Identifier: Apache-2.0
"""Parameters rendered as Falco renders them: modes and the *at()/umount/rename/prctl flags by name
(libs flags_table.c names, ppm_events_public.h values), the raw value in evt.rawarg.*.

Events are written to a capture with pyfalco's writer and replayed through the Inspector, so the
whole path (decoder, state, field extraction) is the real one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "captures"))
from _scap_util import make_event  # noqa: E402

from pyfalco.initial_state import InitialState, MachineInfo, ThreadInfo  # noqa: E402

T0 = 1_700_000_000_000_000_000
TID = 4242


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    import pyfalco
    from pyfalco.inspector import Inspector
    from pyfalco.scap.writer import CaptureWriter
    path = tmp_path_factory.mktemp("params") / "params.scap"
    st = InitialState(machine=MachineInfo(num_cpus=1, hostname="h"))
    st.threads[TID] = ThreadInfo(TID, TID, 1, comm="chmod", exe="chmod", exepath="/usr/bin/chmod")
    raws = [
        make_event("PPME_SYSCALL_CHMOD_X", T0 + 1, TID, res=0, filename="/tmp/x", mode=0o4755),
        make_event("PPME_SYSCALL_FCHMODAT_X", T0 + 2, TID, res=0, dirfd=-100, filename="/tmp/y", mode=0o2750),
        make_event("PPME_SYSCALL_CHMOD_X", T0 + 3, TID, res=0, filename="/tmp/z", mode=0o644),
        make_event("PPME_SYSCALL_UNLINKAT_2_X", T0 + 4, TID, res=0, dirfd=-100, name="d", flags=0x200),
        make_event("PPME_SYSCALL_LINKAT_2_X", T0 + 5, TID, res=0, olddir=-100, oldpath="a", newdir=-100,
                   newpath="b", flags=0x400),
        make_event("PPME_SYSCALL_UMOUNT2_X", T0 + 6, TID, res=0, name="/mnt", flags=2),
        make_event("PPME_SYSCALL_RENAMEAT2_X", T0 + 7, TID, res=0, olddirfd=-100, oldpath="a", newdirfd=-100,
                   newpath="b", flags=1),
        make_event("PPME_SYSCALL_PRCTL_X", T0 + 8, TID, res=0, option=36, arg2_int=1),
    ]
    with CaptureWriter(path) as w:
        w.write_initial_state(st)
        for r in raws:
            w.write(r)
    out = []
    with pyfalco.Capture(engine="replay", capture_file=str(path)) as cap:
        insp = Inspector(cap)
        for ie in insp.events():
            out.append({f: ie.get(f) for f in ("evt.type", "evt.arg.mode", "evt.rawarg.mode", "evt.arg.flags",
                                                "evt.rawarg.flags", "evt.arg.option", "evt.args")})
    return out


def test_modes_by_name(events):
    chmod, fchmodat, plain = events[0], events[1], events[2]
    assert chmod["evt.arg.mode"] == "S_IXOTH|S_IROTH|S_IXGRP|S_IRGRP|S_IXUSR|S_IWUSR|S_IRUSR|S_ISUID"
    assert chmod["evt.rawarg.mode"] == 0o4755
    assert "mode=04755(S_IXOTH|" in chmod["evt.args"]
    assert "S_ISGID" in fchmodat["evt.arg.mode"] and "S_ISUID" not in fchmodat["evt.arg.mode"]
    assert "S_ISUID" not in plain["evt.arg.mode"] and "S_ISGID" not in plain["evt.arg.mode"]


def test_upstream_setuid_rule_condition(events):
    """Falco's "Set Setuid or Setgid bit" tests `evt.arg.mode contains "S_ISUID"` (or S_ISGID)."""
    hits = [e["evt.type"] for e in events
            if e["evt.arg.mode"] is not None and ("S_ISUID" in e["evt.arg.mode"] or "S_ISGID" in e["evt.arg.mode"])]
    assert hits == ["chmod", "fchmodat"]


def test_flags_by_name(events):
    by_type = {e["evt.type"]: e for e in events[3:]}
    assert by_type["unlinkat"]["evt.arg.flags"] == "AT_REMOVEDIR"
    assert by_type["unlinkat"]["evt.rawarg.flags"] == 0x200
    assert by_type["linkat"]["evt.arg.flags"] == "AT_SYMLINK_FOLLOW"
    assert by_type["umount2"]["evt.arg.flags"] == "DETACH"
    assert by_type["renameat2"]["evt.arg.flags"] == "RENAME_NOREPLACE"
    assert by_type["prctl"]["evt.arg.option"] == "PR_SET_CHILD_SUBREAPER"
