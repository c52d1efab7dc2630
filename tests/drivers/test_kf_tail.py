# SPDX-License-Identifier: Apache-2.0
"""The kernel filter's held-open work for the tail-called fillers runs in one program,
pf_kf_send_tail (driver/filter.bpf.h, pf_kf_send_tailed), tail-called with the record in the
per-CPU scratch slot: checked here through fillers of each kind it serves (an fd used: fchmod,
fchown, dup, dup3, fcntl, pipe2 none; fds made: dup, dup3, fcntl(F_DUPFD), pipe2; a range closed:
close_range), each after an open the filter held. Every held open reaches user space just before
its fd's first use, and no record is lost to a failed tail call (n_drops_bug)."""

from __future__ import annotations

import ctypes
import fcntl
import os
import uuid
from pathlib import Path

import pytest

import pyfalco
from pyfalco import _schema, kfilter
from pyfalco.rules import load_rules

ENGINE = os.environ.get("PYFALCO_TEST_ENGINE", "modern_ebpf")
ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "rules" / "pyfalco_rules.yaml"
OPENAT_X = 307
NR_CLOSE_RANGE = 436


def _exit_code(name: str) -> int:
    return _schema.SYSCALL_EVENT[_schema.SYSCALL_NUMBERS[name]]


@pytest.mark.skipif(ENGINE != "modern_ebpf", reason="the kernel filter is the eBPF driver's")
def test_held_opens_reach_the_tail_called_fillers_uses():
    libc = ctypes.CDLL(None, use_errno=True)
    kf = kfilter.derive(load_rules(str(DEFAULT)).ruleset)
    top = Path("/tmp") / ("kft" + uuid.uuid4().hex[:8])
    top.mkdir()
    users = ["fchmod", "fchown", "dup", "dup3", "fcntl"]
    paths = {u: str(top / u) for u in users + ["ranged"]}
    for p in paths.values():
        Path(p).write_text("x")
    codes = {_exit_code(u): u for u in users}
    me = os.getpid()
    fds: dict = {}
    try:
        with pyfalco.Capture(ENGINE, syscalls=["openat", "close", "pipe2", "close_range"] + users) as cap:
            cap.set_kernel_filter(kf)
            before = cap.kernel_filter_stats()
            for u in users + ["ranged"]:
                fds[u] = os.open(paths[u], os.O_RDONLY)       # no rule sees these: held
            r, w = os.pipe2(0)                                # makes fds (mkfd), nothing held by them
            os.fchmod(fds["fchmod"], 0o640)
            os.fchown(fds["fchown"], 0, 0)
            made = [libc.dup(fds["dup"]), libc.dup3(fds["dup3"], 90, os.O_CLOEXEC),
                    fcntl.fcntl(fds["fcntl"], fcntl.F_DUPFD, 100)]
            assert min(made) >= 0, made
            rng = fds.pop("ranged")
            assert libc.syscall(NR_CLOSE_RANGE, rng, rng, 0) == 0   # forgets the held open
            for fd in made + [r, w]:
                os.close(fd)
            os.close(os.open(str(top), os.O_RDONLY))          # the sentinel: a directory, sent
            seen = []
            for _ in range(400):
                seen += [e for e in cap.next_batch(100) if e.tid == me]
                if any(e.type == OPENAT_X and e.params.get("name") == str(top) for e in seen):
                    break
            stats = cap.stats()
            after = cap.kernel_filter_stats()
        opened = {e.params.get("name"): i for i, e in enumerate(seen) if e.type == OPENAT_X}
        for code, u in codes.items():
            use = next((i for i, e in enumerate(seen) if e.type == code), None)
            assert use is not None, (u, [e.type for e in seen])
            assert paths[u] in opened and opened[paths[u]] < use, (u, [(e.type, e.params) for e in seen])
        assert paths["ranged"] not in opened                  # closed by close_range while held
        assert stats["n_drops_bug"] == 0, stats
        assert after["released"] - before["released"] >= len(users), (before, after)
    finally:
        for fd in fds.values():
            os.close(fd)
        for p in paths.values():
            os.unlink(p)
        top.rmdir()
