# SPDX-License-Identifier: Apache-2.0
"""The writer on real hosts: every field fits its width (a process with a 5 TiB mapping has a
VmSize that does not fit the format's u32 kB), and a recording that fails leaves either no file
or a closed one, never a half-written header."""

from __future__ import annotations

import os
import resource
import signal
import stat
import struct
import subprocess
import sys
import textwrap

import pytest

from _scap_util import SYSDIG, make_event, replay

U32 = 0xFFFFFFFF

# A child that holds a 5 TiB mapping: PROT_NONE + MAP_NORESERVE, so no memory or overcommit is
# used, yet /proc/PID/status says VmSize: 5368709120 kB (what an ASan or Go process looks like).
_HOLDER = textwrap.dedent("""
    import ctypes, mmap, sys
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    MAP_NORESERVE = 0x4000
    PROT_NONE = 0
    p = libc.mmap(None, 5 << 40, PROT_NONE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    if p is None or p == ctypes.c_void_p(-1).value:
        sys.exit("mmap of 5 TiB failed: errno %d" % ctypes.get_errno())
    print("ready", flush=True)
    sys.stdin.read()   # until the test closes our stdin
""")


@pytest.fixture(scope="module")
def huge_vm_process():
    """pid of a live process whose VmSize is above 4 TiB."""
    child = subprocess.Popen([sys.executable, "-c", _HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        line = child.stdout.readline()
        assert line == "ready\n", f"the 5 TiB holder did not start (exit {child.poll()})"
        with open(f"/proc/{child.pid}/status") as f:
            vmsize_kb = int(next(x for x in f if x.startswith("VmSize:")).split()[1])
        assert vmsize_kb > U32, vmsize_kb
        yield child.pid
    finally:
        child.stdin.close()
        child.wait(timeout=30)


def test_host_scan_with_a_5tib_process_is_written_and_read_back(huge_vm_process, tmp_path):
    from pyfalco.procscan import scan
    from pyfalco.scap import CaptureWriter, read_initial_state
    st = scan()
    assert st.threads[huge_vm_process].vmsize_kb > U32
    out = tmp_path / "host.scap"
    with CaptureWriter(out) as w:
        w.write_initial_state(st)
        w.write(make_event("PPME_SYSCALL_CLOSE_X", 1, huge_vm_process, res=0, fd=3))
    back = read_initial_state(out)
    t = back.threads[huge_vm_process]
    assert t.vmsize_kb == U32  # clamped to the u32 kB field, as the kernel's counters saturate
    orig = st.threads[huge_vm_process]
    assert (t.comm, t.exe, t.args, t.vmrss_kb, t.uid) == (orig.comm, orig.exe, orig.args, orig.vmrss_kb, orig.uid)
    assert set(back.threads) == set(st.threads)
    assert len(replay(out)) == 1
    if SYSDIG:
        r = subprocess.run([SYSDIG, "-r", str(out), "-p", "%proc.name"], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr


@pytest.mark.root
def test_live_recording_with_a_5tib_process_on_the_host(huge_vm_process, tmp_path):
    """The fresh-machine CI failure: DetectionSession(record=...) died in write_initial_state."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root (live eBPF)")
    from pyfalco.testing import DetectionSession
    rules = textwrap.dedent("""
        - rule: touch marker
          desc: t
          condition: evt.type in (openat, open) and fd.name endswith "/marker-5tib"
          output: "marker %fd.name"
          priority: WARNING
    """)
    out = tmp_path / "rec.scap"
    with DetectionSession(rules, record=str(out)) as s:
        with s.watch() as w:
            (tmp_path / "marker-5tib").write_text("x")
        w.assert_fired("touch marker")
    from pyfalco.scap import read_initial_state
    st = read_initial_state(out)
    assert st.threads[huge_vm_process].vmsize_kb == U32
    assert any(e.name == "openat" for e in replay(out))


_VALUES = (-(1 << 70), -(1 << 63) - 1, -(1 << 31) - 1, -2, -1, 0, 1, 1 << 31, U32, 1 << 32, (1 << 63) - 1, 1 << 63,
           (1 << 64) - 1, 1 << 64, 1 << 100, None)


@pytest.mark.parametrize("value", _VALUES)
def test_every_integer_field_fits_whatever_its_value(value, tmp_path):
    """Every integer field of every metadata entry given the same extreme value: the blocks are
    built (no struct.error), and read back as the value made to fit the field."""
    from pyfalco.initial_state import (FD_FILE_V2, FD_IPV4_SOCK, FD_UNIX_SOCK, FdInfo, GroupInfo, InitialState,
                                       InterfaceInfo, MachineInfo, ThreadInfo, UserInfo)
    from pyfalco.scap import CaptureWriter, read_initial_state
    from pyfalco.scap.metadata import _fit
    import dataclasses

    def filled(cls, **fixed):
        kw = {f.name: value for f in dataclasses.fields(cls) if f.type in ("int", int)}
        kw.update(fixed)
        return cls(**kw)

    st = InitialState()
    st.machine = filled(MachineInfo, hostname="h")
    t = filled(ThreadInfo, tid=100, comm="c")
    t.fds = {3: filled(FdInfo, fd=3, type=FD_FILE_V2, name="/f"), 4: filled(FdInfo, fd=4, type=FD_IPV4_SOCK),
             5: filled(FdInfo, fd=5, type=FD_UNIX_SOCK)}
    st.threads = {100: t}
    st.users = {1: filled(UserInfo, name="u")}
    st.groups = {1: filled(GroupInfo, name="g")}
    st.interfaces = [filled(InterfaceInfo, name="eth0", family=2, addr=b"\1\2\3\4", netmask=b"\xff" * 4)]
    out = tmp_path / "extreme.scap"
    with CaptureWriter(out) as w:
        w.write_initial_state(st)
        w.write(make_event("PPME_SYSCALL_CLOSE_X", 1, 100, res=0, fd=3))
    back = read_initial_state(out)
    bt = back.threads[100]
    assert bt.vmsize_kb == _fit(value, "I") and bt.pfmajor == _fit(value, "Q")
    assert bt.vtid == _fit(value, "q") and bt.uid == _fit(value, "I") and bt.fdlimit == _fit(value, "Q")
    assert back.machine.num_cpus == _fit(value, "I") and back.machine.memory_size_bytes == _fit(value, "Q")
    assert bt.fds[3].dev == _fit(value, "I") and bt.fds[3].name == "/f"
    assert bt.fds[4].sport == _fit(value, "H") and bt.fds[4].l4proto == _fit(value, "B")
    assert [u.gid for u in back.users.values()] == [_fit(value, "I")]
    assert back.interfaces[0].linkspeed == _fit(value, "Q")


def test_fit_rules():
    from pyfalco.scap.metadata import _fit
    assert _fit(5368709120, "I") == U32          # above the range: clamped
    assert _fit(-1, "I") == U32                  # -1, the "none" of uid/loginuid: its two's complement
    assert _fit(-(1 << 40), "I") == 0            # far below: clamped to 0
    assert _fit(-1, "Q") == (1 << 64) - 1
    assert _fit(1 << 64, "q") == (1 << 63) - 1 and _fit(-(1 << 64), "q") == -(1 << 63)
    assert _fit(None, "H") == 0 and _fit(True, "B") == 1


def test_big_lists_are_split_into_blocks_that_readers_merge(tmp_path):
    from pyfalco.initial_state import FD_FILE_V2, FdInfo, InitialState, ThreadInfo
    from pyfalco.scap import CaptureWriter, read_initial_state
    from pyfalco.scap import metadata
    st = InitialState()
    for tid in range(1, 101):
        t = ThreadInfo(tid=tid, pid=tid, ptid=1, comm=f"t{tid}", args=["x" * 3000])
        t.fds = {fd: FdInfo(fd=fd, type=FD_FILE_V2, name=f"/f/{tid}/{fd}" + "y" * 900) for fd in range(3, 100)}
        st.threads[tid] = t
    old = metadata.MAX_BLOCK_BODY
    metadata.MAX_BLOCK_BODY = 64 * 1024  # the same code path as 16 MiB, with a small state
    try:
        blocks = metadata.blocks_from_initial_state(st)
    finally:
        metadata.MAX_BLOCK_BODY = old
    pl = [b for t, b in blocks if t == metadata.BT_PL_V9]
    fdl = [b for t, b in blocks if t == metadata.BT_FDL_V2]
    assert len(pl) > 1 and all(len(b) <= 64 * 1024 for b in pl)
    assert len(fdl) > 100 and all(len(b) <= 64 * 1024 for b in fdl)
    out = tmp_path / "split.scap"
    with CaptureWriter(out) as w:
        for btype, body in blocks:
            w.write_block(btype, body)
        w.write(make_event("PPME_SYSCALL_CLOSE_X", 1, 1, res=0, fd=3))
    back = read_initial_state(out)
    assert set(back.threads) == set(st.threads)
    assert all(set(back.threads[t].fds) == set(range(3, 100)) for t in st.threads)
    assert back.threads[100].fds[99].name == st.threads[100].fds[99].name
    if SYSDIG:
        r = subprocess.run([SYSDIG, "-r", str(out), "-p", "%proc.name %fd.num"], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr


# -- failed recordings ---------------------------------------------------------------------------

_FSIZE_CHILD = textwrap.dedent("""
    import resource, signal, sys
    sys.path[:0] = [{tests!r}]
    from _scap_util import make_event
    from pyfalco.initial_state import InitialState, ThreadInfo
    from pyfalco.scap import CaptureWriter
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)       # write() then fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
    st = InitialState()
    st.threads = {{t: ThreadInfo(tid=t, pid=t, ptid=1, comm="c", env=["E=" + "v" * 2000]) for t in range(1, {threads})}}
    w = CaptureWriter({path!r})
    try:
        w.write_initial_state(st)
        for i in range({events}):
            w.write(make_event("PPME_SYSCALL_OPENAT_2_X", i, 1, fd=3, dirfd=-100, name="/x" * 200, flags=1))
        w.close()
    except OSError as err:
        print("ERROR", err)
        sys.exit(3)
""")


def _run_fsize(tmp_path, limit, threads, events):
    path = tmp_path / "limited.scap"
    code = _FSIZE_CHILD.format(tests=os.path.dirname(__file__), limit=limit, threads=threads, events=events,
                               path=str(path))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return r, path


def test_recording_that_fails_in_its_metadata_removes_the_file(tmp_path):
    """A real write error (the file size limit: EFBIG) while the metadata is written: no file left."""
    r, path = _run_fsize(tmp_path, limit=100_000, threads=400, events=0)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "File too large" in r.stdout and f"the partial file {path} was removed" in r.stdout
    assert not path.exists()


def test_recording_that_fails_after_events_keeps_what_was_written(tmp_path):
    """The same error after events were written: the file is closed, the events before the
    damage read back, then the truncation is reported with its offset."""
    from pyfalco.errors import CaptureFileError
    from pyfalco.scap._native_scap import Replay
    r, path = _run_fsize(tmp_path, limit=600_000, threads=3, events=5000)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "was closed after the" in r.stdout
    assert path.exists() and path.stat().st_size <= 600_000
    got = []
    with pytest.raises(CaptureFileError, match=r"truncated block at offset \d+"):
        with Replay(str(path)) as rp:
            for rec in rp:
                got.append(rec)
    assert 100 < len(got) < 5000


def test_with_block_left_by_an_exception_before_any_event_removes_the_file(tmp_path):
    from pyfalco.initial_state import InitialState
    from pyfalco.scap import CaptureWriter
    out = tmp_path / "aborted.scap"
    with pytest.raises(RuntimeError):
        with CaptureWriter(out) as w:
            w.write_initial_state(InitialState())
            raise RuntimeError("the capture could not start")
    assert not out.exists()
    kept = tmp_path / "kept.scap"
    with pytest.raises(RuntimeError):
        with CaptureWriter(kept) as w:
            w.write(make_event("PPME_SYSCALL_CLOSE_X", 1, 1, res=0, fd=3))
            raise RuntimeError("stopped after one event")
    assert len(replay(kept)) == 1


def test_bad_initial_state_removes_the_file(tmp_path):
    from pyfalco.initial_state import InitialState, ThreadInfo
    from pyfalco.scap import CaptureWriter
    out = tmp_path / "bad.scap"
    st = InitialState()
    st.threads = {1: ThreadInfo(tid=1, pid="not a number", ptid=0)}
    w = CaptureWriter(out)
    with pytest.raises(ValueError):
        w.write_initial_state(st)
    assert not out.exists() and w.closed


@pytest.mark.root
def test_a_device_is_never_removed(tmp_path):
    """Writing to a character device (a private node of /dev/full: every write fails with
    ENOSPC) fails, and the node stays: only the regular file the writer created is removed."""
    if os.geteuid() != 0:
        pytest.fail("mknod needs root")
    from pyfalco.scap import CaptureWriter
    full = os.stat("/dev/full").st_rdev
    node = tmp_path / "full"
    os.mknod(node, 0o600 | stat.S_IFCHR, full)
    from pyfalco.initial_state import InitialState
    with pytest.raises(OSError, match="No space left on device"):
        with CaptureWriter(node) as w:   # fails at the final flush, before any event
            w.write_initial_state(InitialState())
    assert stat.S_ISCHR(os.stat(node).st_mode)
    with pytest.raises(RuntimeError):
        with CaptureWriter(node) as w:   # left by an exception: abort()
            raise RuntimeError("x")
    assert stat.S_ISCHR(os.stat(node).st_mode)


def test_event_block_near_64k_uses_the_large_type_libs_needs(tmp_path):
    """libs refuses a non-LARGE event block whose length less 8 exceeds 64 KiB; the writer
    switches to EV_V2_LARGE at that size (it used to count without the trailer and padding)."""
    from pyfalco.scap import CaptureWriter
    base = len(make_event("PPME_SYSCALL_WRITE_X", 1, 1, res=5, data=b"", fd=3, size=5))
    rec = make_event("PPME_SYSCALL_WRITE_X", 1, 1, res=5, data=b"d" * (65532 - base), fd=3, size=5)
    assert len(rec) == 65532 and 2 + len(rec) <= 65536 < ((2 + len(rec) + 4 + 3) & ~3)
    small = make_event("PPME_SYSCALL_CLOSE_X", 2, 1, res=0, fd=3)
    out = tmp_path / "near64k.scap"
    with CaptureWriter(out, full_params=True) as w:   # the exit event is written as it is
        w.write(rec)
        w.write(small)
    data = out.read_bytes()
    sizes = {}
    off = 0
    while off < len(data):
        btype, total = struct.unpack_from("<II", data, off)
        sizes[total] = btype
        off += total
    big = max(sizes)
    assert sizes[big] == 0x221 and big - 8 > 65536
    assert [e.type for e in replay(out)] == [9, 5] and len(replay(out)[0].params[1]) == 65532 - base
    if SYSDIG:
        r = subprocess.run([SYSDIG, "-r", str(out), "-p", "%evt.type"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        assert "write" in r.stdout
