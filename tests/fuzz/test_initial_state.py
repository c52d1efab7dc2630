# SPDX-License-Identifier: Apache-2.0
"""ThreadInfo and FdInfo (pyfalco/initial_state.py) are slotted dataclasses, built once per thread
and fd of a capture's metadata (the scap fuzz target's per-input work): what the plain
dataclasses gave must hold for them: the fields in their order (positional construction), the
defaults, a fresh list or dict per instance, equality, repr and ``dataclasses.replace``; and
the slots themselves (no per-instance ``__dict__``). docs/reliability.md, "The scap target's
per-input cost" (session 9)."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from pyfalco.initial_state import FD_FILE_V2, FD_IPV4_SOCK, FdInfo, ThreadInfo

THREAD_FIELDS = (
    ("tid", None), ("pid", None), ("ptid", None), ("comm", ""), ("exe", ""), ("exepath", ""), ("args", []),
    ("cwd", ""), ("sid", 0), ("vpgid", 0), ("pgid", 0), ("fdlimit", 0), ("flags", 0), ("uid", 0), ("gid", 0),
    ("loginuid", 0xFFFFFFFF), ("vtid", 0), ("vpid", 0), ("env", []), ("cgroups", []), ("root", "/"), ("tty", 0),
    ("cap_inheritable", 0), ("cap_permitted", 0), ("cap_effective", 0), ("exe_writable", False),
    ("exe_upper_layer", False), ("exe_lower_layer", False), ("exe_from_memfd", False), ("exe_ino", 0),
    ("exe_ino_ctime", 0), ("exe_ino_mtime", 0), ("pidns_init_start_ts", 0), ("start_ts", 0), ("vmsize_kb", 0),
    ("vmrss_kb", 0), ("vmswap_kb", 0), ("pfmajor", 0), ("pfminor", 0), ("fds", {}))
FD_FIELDS = (
    ("fd", None), ("type", None), ("name", ""), ("ino", 0), ("open_flags", 0), ("dev", 0), ("sip", None),
    ("dip", None), ("sport", 0), ("dport", 0), ("l4proto", 0), ("unix_source", 0), ("unix_dest", 0))


@pytest.mark.parametrize("cls,want", [(ThreadInfo, THREAD_FIELDS), (FdInfo, FD_FIELDS)], ids=["thread", "fd"])
def test_fields_order_and_defaults(cls, want):
    assert [f.name for f in dataclasses.fields(cls)] == [n for n, _ in want]
    required = [n for n, d in want if d is None and n not in ("sip", "dip")]
    obj = cls(*range(1, len(required) + 1))
    for name, default in want:
        if name not in required:
            assert getattr(obj, name) == default and type(getattr(obj, name)) is type(default), name


def test_slots_and_fresh_mutable_defaults():
    a, b = ThreadInfo(1, 1, 0), ThreadInfo(2, 2, 0)
    for obj in (a, FdInfo(3, FD_FILE_V2)):
        assert not hasattr(obj, "__dict__")
        with pytest.raises(AttributeError):
            obj.not_a_field = 1
    a.args.append("x")
    a.env.append("E=1")
    a.cgroups.append(("cpu", "/"))
    a.fds[3] = FdInfo(3, FD_FILE_V2, name="/f")
    assert (b.args, b.env, b.cgroups, b.fds) == ([], [], [], {})


def test_construction_equality_repr_replace_copy():
    f = FdInfo(4, FD_IPV4_SOCK, "", 7, 0, 0, b"\x7f\0\0\1", b"\x0a\0\0\1", 80, 443, 2, 0, 0)
    assert f == FdInfo(fd=4, type=FD_IPV4_SOCK, ino=7, sip=b"\x7f\0\0\1", dip=b"\x0a\0\0\1", sport=80, dport=443,
                       l4proto=2)
    assert repr(f) == ("FdInfo(fd=4, type=3, name='', ino=7, open_flags=0, dev=0, sip=b'\\x7f\\x00\\x00\\x01', "
                       "dip=b'\\n\\x00\\x00\\x01', sport=80, dport=443, l4proto=2, unix_source=0, unix_dest=0)")
    t = ThreadInfo(tid=10, pid=10, ptid=1, comm="sh", args=["-c", "x"], fds={4: f})
    assert repr(t).startswith("ThreadInfo(tid=10, pid=10, ptid=1, comm='sh', exe='', exepath='', args=['-c', 'x'], ")
    t2 = dataclasses.replace(t, comm="bash")
    assert (t2.comm, t2.tid, t2.fds) == ("bash", 10, {4: f}) and t2 != t
    assert dataclasses.replace(t2, comm="sh") == t
    assert copy.deepcopy(t) == t and pickle.loads(pickle.dumps(t)) == t
    assert dataclasses.astuple(f)[:3] == (4, FD_IPV4_SOCK, "")
    t.loginuid = 5          # every field stays assignable (the metadata reader sets them one by one)
    setattr(t, "exe_ino", 9)
    assert (t.loginuid, t.exe_ino) == (5, 9)
