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

#: measured rates (matches + explained differences) / compared, per field; a drop fails
FLOOR = {
    "evt.arg.addr": 1.0,
    "evt.arg.args": 0.99,
    "evt.arg.argument": 1.0,
    "evt.arg.backlog": 1.0,
    "evt.arg.cgroups": 0.0,
    "evt.arg.cmd": 1.0,
    "evt.arg.comm": 1.0,
    "evt.arg.cur": 1.0,
    "evt.arg.cwd": 1.0,
    "evt.arg.data": 0.769,
    "evt.arg.domain": 1.0,
    "evt.arg.env": 0.0,
    "evt.arg.exe": 1.0,
    "evt.arg.fd": 0.985,
    "evt.arg.fd1": 1.0,
    "evt.arg.fd2": 1.0,
    "evt.arg.fdlimit": 1.0,
    "evt.arg.fds": 0.332,
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
    "evt.arg.pid": 0.024,
    "evt.arg.prot": 1.0,
    "evt.arg.proto": 1.0,
    "evt.arg.ptid": 0.964,
    "evt.arg.queuelen": 1.0,
    "evt.arg.queuemax": 1.0,
    "evt.arg.queuepct": 1.0,
    "evt.arg.request": 1.0,
    "evt.arg.res": 0.888,
    "evt.arg.resource": 1.0,
    "evt.arg.sig": 1.0,
    "evt.arg.size": 1.0,
    "evt.arg.tid": 0.0,
    "evt.arg.timeout": 1.0,
    "evt.arg.tuple": 0.391,
    "evt.arg.type": 1.0,
    "evt.arg.uid": 1.0,
    "evt.arg.val": 1.0,
    "evt.arg.vm_rss": 1.0,
    "evt.arg.vm_size": 1.0,
    "evt.arg.vm_swap": 1.0,
    "evt.arg.vpid": 0.653,
    "evt.arg.vtid": 0.653,
    "evt.args": 0.009,
    "fd.cip": 1.0,
    "fd.cip.name": 1.0,
    "fd.connected": 1.0,
    "fd.cport": 1.0,
    "fd.cproto": 1.0,
    "fd.dev": 0.998,
    "fd.dev.major": 0.998,
    "fd.dev.minor": 0.998,
    "fd.directory": 1.0,
    "fd.filename": 1.0,
    "fd.is_server": 0.998,
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
    "fd.sproto": 0.998,
    "fd.type": 1.0,
    "fd.typechar": 1.0,
    "fd.uid": 1.0,
    "group.gid": 0.845,
    "group.name": 1.0,
    "proc.aname": 0.0,
    "proc.apid": 0.0,
    "proc.args": 1.0,
    "proc.cmdline": 1.0,
    "proc.cwd": 0.47,
    "proc.env": 1.0,
    "proc.exe": 1.0,
    "proc.exeline": 0.974,
    "proc.exepath": 0.014,
    "proc.fdlimit": 0.582,
    "proc.fdopencount": 0.88,
    "proc.fdusage": 0.154,
    "proc.is_exe_writable": 1.0,
    "proc.loginshellid": 1.0,
    "proc.name": 1.0,
    "proc.nchilds": 0.292,
    "proc.nthreads": 0.737,
    "proc.pcmdline": 1.0,
    "proc.pid": 1.0,
    "proc.pname": 1.0,
    "proc.ppid": 0.582,
    "proc.sid": 0.014,
    "proc.sname": 1.0,
    "proc.tty": 1.0,
    "proc.vmrss": 0.563,
    "proc.vmsize": 0.29,
    "proc.vmswap": 1.0,
    "proc.vpgid": 0.014,
    "proc.vpid": 0.901,
    "thread.cgroups": 0.304,
    "thread.ismain": 1.0,
    "thread.pfmajor": 1.0,
    "thread.pfminor": 0.981,
    "thread.tid": 1.0,
    "thread.vmrss": 0.207,
    "thread.vmsize": 0.201,
    "thread.vtid": 0.901,
    "user.homedir": 0.901,
    "user.loginname": 0.585,
    "user.loginuid": 0.57,
    "user.name": 1.0,
    "user.shell": 0.901,
    "user.uid": 0.901,
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
    assert set(reasons["user.name"]) == {"user_root"}


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
