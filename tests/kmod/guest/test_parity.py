# SPDX-License-Identifier: Apache-2.0
"""Parity: the kernel module and the eBPF driver, attached at the same time to the same kernel,
see the same syscall exits; their records must match byte for byte but for the timestamp.

Both captures select every syscall the drivers decode; a workload touching each family (files,
fds, pipes, sockets of three families, process creation and exec, credentials) runs in this
thread and in children, and the events of those threads are compared pairwise: type, tid,
number of parameters, and every parameter's bytes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

import pyfalco
from pyfalco import _schema

ALL = sorted(_schema.SYSCALL_NAMES[n] for n in _schema.DRIVER_SYSCALLS)
MARKER_FD = -434343


def workload(tmp: str) -> list[int]:
    """Deterministic syscalls of every family; returns the pids of the children it ran."""
    path = os.path.join(tmp, "f")
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o640)
    os.write(fd, b"parity" * 20)
    os.lseek(fd, 0, os.SEEK_SET)
    os.read(fd, 64)
    fd2 = os.dup(fd)
    os.dup2(fd, 100)
    os.close(100)
    os.close(fd2)
    os.fchmod(fd, 0o600)
    os.close(fd)
    os.stat(path)
    os.rename(path, path + ".2")
    os.link(path + ".2", path + ".3")
    os.symlink(path + ".2", path + ".4")
    os.readlink(path + ".4")
    for p in (".2", ".3", ".4"):
        os.unlink(path + p)
    os.mkdir(path + ".d")
    os.chdir(path + ".d")
    os.chdir(tmp)
    os.rmdir(path + ".d")
    r, w = os.pipe()
    os.write(w, b"x")
    os.read(r, 1)
    os.close(r)
    os.close(w)
    # sockets: unix pair, TCP and UDP over loopback, v4 and v6
    a, b = socket.socketpair()
    a.sendall(b"ping")
    b.recv(16)
    a.close()
    b.close()
    for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        srv = socket.socket(fam, socket.SOCK_STREAM)
        srv.bind((host, 0))
        srv.listen(1)
        cli = socket.socket(fam, socket.SOCK_STREAM)
        cli.connect(srv.getsockname()[:2])
        conn, _ = srv.accept()
        cli.send(b"hello")
        conn.recv(16)
        for s in (conn, cli, srv):
            s.close()
        u1, u2 = socket.socket(fam, socket.SOCK_DGRAM), socket.socket(fam, socket.SOCK_DGRAM)
        u1.bind((host, 0))
        u2.sendto(b"dgram", u1.getsockname()[:2])
        u1.recvfrom(16)
        u1.close()
        u2.close()
    us = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    us.bind(os.path.join(tmp, "sock"))
    us.listen(1)
    uc = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    uc.connect(os.path.join(tmp, "sock"))
    uconn, _ = us.accept()
    uc.send(b"u")
    uconn.recv(4)
    for s in (uconn, uc, us):
        s.close()
    # processes: fork + exec + exit, a thread
    child = subprocess.run(["/bin/sh", "-c", "echo $$; cat /etc/hostname >/dev/null; exit 3"], capture_output=True,
                           text=True, env={"PATH": "/usr/bin:/bin", "PARITY": "1"})
    t = threading.Thread(target=lambda: os.getpid())
    t.start()
    t.join()
    os.setuid(0)
    os.setgid(0)
    return [int(child.stdout.split()[0])]


#: memory counters of the process: another thread of it (a new thread's first malloc maps a 64 MiB
#: arena) may change them between the two drivers' probes on the same syscall exit
RACY = {"vm_size", "vm_rss", "vm_swap", "pgft_maj", "pgft_min"}
#: epoch times computed from the boot time: each driver's user space measures the realtime -
#: boottime offset when it opens, microseconds apart
BOOT_RELATIVE = {"pidns_init_start_ts"}


def same(name: str, a, b) -> bool:
    if a == b or name in RACY:
        return True
    if name in BOOT_RELATIVE:
        return abs(a - b) < 10_000_000  # 10 ms
    return False


def drain(cap, until_tid: int) -> list:
    out = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for e in cap.next_batch(50):
            if e.type == 5 and e.tid == until_tid and e.param(1) == MARKER_FD:
                return out
            out.append(e)
    raise AssertionError("end marker never arrived")


@pytest.mark.usefixtures("loaded")
def test_kmod_and_ebpf_write_the_same_records():
    from drivertools import syscall
    with pyfalco.Capture(engine="kmod", syscalls=ALL, start=False, snaplen=256) as km, \
            pyfalco.Capture(engine="modern_ebpf", syscalls=ALL, start=False, snaplen=256) as bpf:
        tmp = tempfile.mkdtemp(dir="/tmp")
        cwd = os.getcwd()
        km.start()
        bpf.start()
        try:
            children = workload(tmp)
        finally:
            os.chdir(cwd)
            syscall("close", MARKER_FD)
        me = threading.get_native_id()
        ev_km, ev_bpf = drain(km, me), drain(bpf, me)
        km.stop()
        bpf.stop()
    tids = {me, *children}
    mine_km = [e for e in ev_km if e.tid in tids]
    mine_bpf = [e for e in ev_bpf if e.tid in tids]
    assert len(mine_km) > 100
    names = sorted({e.name for e in mine_km})
    assert {"openat", "execve", "connect", "sendto", "procexit", "socketpair", "rename", "setuid"} <= set(names), names
    # per thread: threads on different CPUs interleave by timestamp, and each driver reads the
    # clock at its own instant
    pairs = []
    for tid in sorted(tids):
        k_t, b_t = [e for e in mine_km if e.tid == tid], [e for e in mine_bpf if e.tid == tid]
        assert [e.name for e in k_t] == [e.name for e in b_t], f"tid {tid}"
        pairs += zip(k_t, b_t)
    mismatches = []
    for k, b in pairs:
        if (k.type, k.tid, k.nparams) != (b.type, b.tid, b.nparams):
            mismatches.append(f"{k.name} tid={k.tid}: header {(k.type, k.tid, k.nparams)} != {(b.type, b.tid, b.nparams)}")
        elif k.record[26:] != b.record[26:]:
            diffs = {n: (k.params[n], b.params[n]) for n in k.params if not same(n, k.params[n], b.params[n])}
            if diffs:
                mismatches.append(f"{k.name} tid={k.tid}: {diffs}")
    assert not mismatches, "\n".join(mismatches[:30])
    print(f"parity: {len(mine_km)} events of {len(names)} kinds identical: {' '.join(names)}", file=sys.stderr)
