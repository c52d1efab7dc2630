# SPDX-License-Identifier: Apache-2.0
"""Differential harness (tools/diff_sysdig.py) on every shared capture: pyfalco's fields vs Debian's
sysdig 0.29, every field both support (proc.*, thread.*, user.*, group.*, fd.*, evt.arg.*, evt.args).

A difference counts as explained only when it is one of the harness's KNOWN cases (sysdig 0.29
wrong or older than libs master, each citing the libs code pyfalco follows); the per-field rates
with explained differences are pinned below at their measured values (docs/state-and-fields.md has
the table and what remains). The sockets' cases are shown on a capture of their own in
test_socket_roles.py; the sendmsg misread is shown here on the real capture.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

#: measured rates (matches + explained differences) / compared, per field; a drop fails (every
#: field is at 1.0: each difference from sysdig 0.29 is one of the harness's KNOWN cases)
FLOOR = {
    "evt.arg.addr": 1.0,
    "evt.arg.args": 1.0,
    "evt.arg.argument": 1.0,
    "evt.arg.backlog": 1.0,
    "evt.arg.cgroups": 1.0,
    "evt.arg.cmd": 1.0,
    "evt.arg.comm": 1.0,
    "evt.arg.cur": 1.0,
    "evt.arg.cwd": 1.0,
    "evt.arg.data": 1.0,
    "evt.arg.domain": 1.0,
    "evt.arg.env": 1.0,
    "evt.arg.exe": 1.0,
    "evt.arg.fd": 1.0,
    "evt.arg.fd1": 1.0,
    "evt.arg.fd2": 1.0,
    "evt.arg.fdlimit": 1.0,
    "evt.arg.fds": 1.0,
    "evt.arg.flags": 1.0,
    "evt.arg.gid": 1.0,
    "evt.arg.how": 1.0,
    "evt.arg.ino": 1.0,
    "evt.arg.interval": 1.0,
    "evt.arg.length": 1.0,
    "evt.arg.max": 1.0,
    "evt.arg.mode": 1.0,
    "evt.arg.name": 1.0,
    "evt.arg.offset": 1.0,
    "evt.arg.op": 1.0,
    "evt.arg.path": 1.0,
    "evt.arg.pgft_maj": 1.0,
    "evt.arg.pgft_min": 1.0,
    "evt.arg.pid": 1.0,
    "evt.arg.prot": 1.0,
    "evt.arg.proto": 1.0,
    "evt.arg.ptid": 1.0,
    "evt.arg.queuelen": 1.0,
    "evt.arg.queuemax": 1.0,
    "evt.arg.queuepct": 1.0,
    "evt.arg.request": 1.0,
    "evt.arg.res": 1.0,
    "evt.arg.resource": 1.0,
    "evt.arg.sig": 1.0,
    "evt.arg.size": 1.0,
    "evt.arg.tid": 1.0,
    "evt.arg.timeout": 1.0,
    "evt.arg.tuple": 1.0,
    "evt.arg.type": 1.0,
    "evt.arg.uid": 1.0,
    "evt.arg.val": 1.0,
    "evt.arg.vm_rss": 1.0,
    "evt.arg.vm_size": 1.0,
    "evt.arg.vm_swap": 1.0,
    "evt.arg.vpid": 1.0,
    "evt.arg.vtid": 1.0,
    "evt.args": 1.0,
    "fd.cip": 1.0,
    "fd.cip.name": 1.0,
    "fd.connected": 1.0,
    "fd.cport": 1.0,
    "fd.cproto": 1.0,
    "fd.dev": 1.0,
    "fd.dev.major": 1.0,
    "fd.dev.minor": 1.0,
    "fd.directory": 1.0,
    "fd.filename": 1.0,
    "fd.is_server": 1.0,
    "fd.l4proto": 1.0,
    "fd.lip": 1.0,
    "fd.lip.name": 1.0,
    "fd.lport": 1.0,
    "fd.lproto": 1.0,
    "fd.name": 1.0,
    "fd.name_changed": 1.0,
    "fd.num": 1.0,
    "fd.rip": 1.0,
    "fd.rip.name": 1.0,
    "fd.rport": 1.0,
    "fd.rproto": 1.0,
    "fd.sip": 1.0,
    "fd.sip.name": 1.0,
    "fd.sockfamily": 1.0,
    "fd.sport": 1.0,
    "fd.sproto": 1.0,
    "fd.type": 1.0,
    "fd.typechar": 1.0,
    "fd.uid": 1.0,
    "group.gid": 1.0,
    "group.name": 1.0,
    "proc.aname": 1.0,
    "proc.apid": 1.0,
    "proc.args": 1.0,
    "proc.cmdline": 1.0,
    "proc.cwd": 1.0,
    "proc.env": 1.0,
    "proc.exe": 1.0,
    "proc.exeline": 1.0,
    "proc.exepath": 1.0,
    "proc.fdlimit": 1.0,
    "proc.fdopencount": 1.0,
    "proc.fdusage": 1.0,
    "proc.is_exe_writable": 1.0,
    "proc.loginshellid": 1.0,
    "proc.name": 1.0,
    "proc.nchilds": 1.0,
    "proc.nthreads": 1.0,
    "proc.pcmdline": 1.0,
    "proc.pid": 1.0,
    "proc.pname": 1.0,
    "proc.ppid": 1.0,
    "proc.sid": 1.0,
    "proc.sname": 1.0,
    "proc.tty": 1.0,
    "proc.vmrss": 1.0,
    "proc.vmsize": 1.0,
    "proc.vmswap": 1.0,
    "proc.vpgid": 1.0,
    "proc.vpid": 1.0,
    "thread.cgroups": 1.0,
    "thread.ismain": 1.0,
    "thread.pfmajor": 1.0,
    "thread.pfminor": 1.0,
    "thread.tid": 1.0,
    "thread.vmrss": 1.0,
    "thread.vmsize": 1.0,
    "thread.vtid": 1.0,
    "user.homedir": 1.0,
    "user.loginname": 1.0,
    "user.loginuid": 1.0,
    "user.name": 1.0,
    "user.shell": 1.0,
    "user.uid": 1.0,
}


@pytest.fixture(scope="module")
def result():
    if shutil.which("sysdig") is None:
        pytest.fail("sysdig is needed (tools/setup installs it)")
    import diff_sysdig
    paths = sorted(diff_sysdig.CAPTURES.glob("*.scap"))
    return diff_sysdig.run(paths)


def test_every_field_holds_its_rate(result):
    ok, why, seen, samples, reasons, events = result
    assert events > 3500
    low = {}
    for f, n in seen.items():
        rate = (ok[f] + why[f]) / n
        if rate + 1e-9 < FLOOR.get(f, 1.0):
            low[f] = (round(rate, 4), samples.get(f, [])[:3])
    assert not low, low


def test_socket_and_process_fields_match(result):
    """The fields issue 13 named: fd.* at >= 99% with explained cases, proc.pname and user.name fully."""
    ok, why, seen, samples, reasons, events = result
    for f in seen:
        if f.startswith("fd."):
            assert (ok[f] + why[f]) / seen[f] >= 0.99, (f, samples.get(f))
    assert ok["proc.pname"] == seen["proc.pname"], samples.get("proc.pname")
    assert ok["proc.name"] == seen["proc.name"]
    assert ok["user.name"] + why["user.name"] == seen["user.name"], samples.get("user.name")
    # the threads user_root used to explain were libs' invalid entries (uid 0xffffffff, <NA> in
    # both): the case explains nothing on these captures any more
    assert set(reasons["user.name"]) <= {"user_root"}


def test_sendmsg_tuple_is_read_as_written():
    """The known case sendmsg_tuple_misread: the raw tuple of haproxy's syslog sendmsg says
    0.0.0.0:55441 -> 127.0.0.1:514; sysdig 0.29 prints 145.216.3.255 as the destination, the bytes
    of the source port 55441 (0xd891, little endian 0x91 0xd8 = 145.216)."""
    import pyfalco
    path = ROOT.parent / "shared" / "captures" / "inspect_502Error.scap"
    with pyfalco.Capture(engine="replay", capture_file=str(path)) as cap:
        for evt in cap:
            if evt.name == "sendmsg" and evt.type & 1 and evt.get("tuple") is not None:
                tup = evt.get("tuple")
                break
    assert (str(tup.sip), tup.sport, str(tup.dip), tup.dport) == ("0.0.0.0", 55441, "127.0.0.1", 514)
    assert list(tup.sport.to_bytes(2, "little")) == [145, 216]


def test_new_known_cases_are_what_explains(result):
    """Each field's explained differences come from the cases documented for it (a new kind of
    difference must be classified, not absorbed by an existing case)."""
    ok, why, seen, samples, reasons, events = result
    expect = {
        "evt.args": {"args_of_old_exit", "sendmsg_tuple_misread"},
        "evt.arg.res": {"mmap_res_is_errno", "socket_l4_at_exit"},      # fcntl's res on a fresh socket
        "evt.arg.data": {"empty_is_null", "param_not_in_old_exit"},
        "evt.arg.val": {"empty_is_null", "param_not_in_old_exit"},
        "evt.arg.fd": {"param_not_in_old_exit", "socket_l4_at_exit"},
        "proc.aname": {"no_argless_ancestors"},
        "proc.apid": {"no_argless_ancestors"},
        # threads a capture never describes and other thread-table cases
        "proc.pid": {"invalid_thread_pid"},
        "thread.ismain": {"invalid_thread_pid"},
        "proc.cwd": {"invalid_thread_pid"},
        "proc.fdlimit": {"invalid_thread_pid"},
        "proc.fdopencount": {"invalid_thread_pid"},
        "proc.ppid": {"invalid_thread_pid", "unknown_parent_is_0"},
        "proc.nchilds": {"nchilds_of_thread", "invalid_thread_pid"},
        "proc.vpid": {"execve_patches_invalid"},
        "thread.vtid": {"execve_patches_invalid"},
        "proc.exepath": {"execve_patches_invalid"},
        "group.gid": {"gid_high_word"},
        "user.loginuid": {"loginuid_unread", "loginuid_init_default"},
        "user.loginname": {"loginuid_init_default"},
        "fd.dev": {"dev_of_non_file", "sendmsg_tuple_misread", "failed_open_fd"},
        "fd.is_server": {"unconnected_is_server", "sendmsg_tuple_misread", "failed_open_fd", "connect_overwrites_dest"},
    }
    for f, allowed in expect.items():
        assert set(reasons.get(f, {})) <= allowed, (f, reasons.get(f))
    for f in ("evt.args", "evt.arg.res", "proc.aname", "evt.arg.data", "proc.pid", "proc.ppid", "proc.nchilds",
              "proc.vpid", "group.gid", "user.loginuid"):
        assert why[f] > 0, f
    # fields that need no explanation at all now: libs master and sysdig 0.29 agree on them
    for f in ("proc.sid", "proc.vpgid", "proc.vmsize", "proc.vmrss", "thread.vmsize", "thread.vmrss", "proc.exeline",
              "user.uid", "user.homedir", "user.shell", "thread.pfminor", "proc.fdusage"):
        assert ok[f] == seen[f], (f, samples.get(f))


def test_mmap_res_type_changed_between_the_tables():
    """mmap_res_is_errno: mmap's exit res is PT_ERRNO in libs master's event table (printed in
    decimal) and PT_UINT64 / PF_HEX in the 2022 table sysdig 0.29 uses."""
    import json
    spec = ROOT.parent / "shared" / "spec"
    master = json.loads((spec / "event_table_libs_master.json").read_text())
    old = json.loads((spec / "event_table_libs_2022.json").read_text())
    mm = [v for v in master.values() if v["name"] == "mmap" and v["enum"].endswith("_X")][0]
    mo = [v for v in old.values() if v["name"] == "mmap" and v["enum"].endswith("_X")][0]
    assert mm["params"][0][:3] == ["res", "PT_ERRNO", "PF_HEX"]
    assert mo["params"][0][:3] == ["res", "PT_UINT64", "PF_HEX"]


def test_libs_renderings_on_a_real_capture():
    """The renderings adopted from libs master, on inspect_502Error.scap: a pid resolves to its
    thread's comm, poll's fds as fd:<typechar><events hex>, an IP socket fd with its L4 protocol,
    an empty buffer and an empty tuple as NULL, cgroup v2's io as blkio."""
    import pyfalco
    from pyfalco.inspector import Inspector
    path = ROOT.parent / "shared" / "captures" / "inspect_502Error.scap"
    seen = {}
    with pyfalco.Capture(engine="replay", capture_file=str(path)) as cap:
        insp = Inspector(cap)
        for ie in insp.events():
            name = ie.name
            if not ie.evt.type & 1:
                continue
            if name == "clone" and ie.evt.get("res") == 0 and "pid" not in seen:
                seen["pid"] = (ie.get("evt.arg.pid"), ie.thread.comm, ie.get("thread.cgroups"))
            if name == "read" and ie.evt.get("res") == 0 and "data" not in seen:
                seen["data"] = ie.get("evt.arg.data")
            if name == "recvfrom" and ie.evt.raw_param(ie.evt.param_index("tuple")) == b"" and "tuple" not in seen:
                seen["tuple"] = ie.get("evt.arg.tuple")
            if name == "connect" and ie.fd is not None and ie.fd.is_ip and "fd" not in seen:
                seen["fd"] = ie.get("evt.arg.fd")
    pid, comm, cgroups = seen["pid"]
    assert pid == comm == "curl"
    assert " blkio=" in cgroups and " io=" not in cgroups
    assert seen["data"] == "NULL"
    assert seen["tuple"] == "NULL"
    assert seen["fd"].startswith("<4t>"), seen["fd"]
