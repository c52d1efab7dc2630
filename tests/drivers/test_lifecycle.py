# SPDX-License-Identifier: Apache-2.0
"""Capture lifecycle on the live driver: errors, closing, selection at runtime, drops, leaks."""

from __future__ import annotations

import errno
import os
import time

import pytest

import pyfalco
from pyfalco import _native


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_close_twice_is_harmless_and_use_after_close_raises():
    cap = pyfalco.Capture(syscalls=["openat"])
    cap.close()
    cap.close()
    assert cap.closed
    with pytest.raises(pyfalco.CaptureClosedError):
        cap.next_batch(0)
    with pytest.raises(pyfalco.CaptureClosedError):
        cap.stats()
    with pytest.raises(pyfalco.CaptureClosedError):
        with cap:
            pass


def test_failed_opens_say_why(tmp_path):
    with pytest.raises(pyfalco.NativeError) as err:
        pyfalco.Capture(engine="ebpf")
    assert err.value.errno == errno.EINVAL
    assert "unknown engine 'ebpf'" in str(err.value)
    with pytest.raises(pyfalco.NativeError) as err:
        pyfalco.Capture(buffer_bytes=12345)
    assert "buffer_bytes" in str(err.value) and "power of two" in str(err.value)
    with pytest.raises(ValueError) as verr:
        pyfalco.Capture(syscalls=["openat", "no_such_syscall"])
    assert "no_such_syscall" in str(verr.value)
    with pytest.raises(pyfalco.DriverUnavailableError) as err:
        pyfalco.Capture(engine="kmod")
    assert "kernel module" in str(err.value)


def test_nodriver_engine_only_times_out():
    with pyfalco.Capture(engine="nodriver") as cap:
        t0 = time.monotonic()
        assert cap.next_batch(50) == []
        assert time.monotonic() - t0 >= 0.04


def test_open_close_loops_leak_no_fds_or_memory():
    def cycle():
        with pyfalco.Capture(syscalls=["openat", "close"], buffer_bytes=1 << 16) as cap:
            os.close(os.open("/dev/null", os.O_RDONLY))
            cap.next_batch(10)
            cap.stats()

    # In the kmod guest (tools/kmod/guest_session.sh) every eBPF load is verified under TCG
    # emulation, ~22 s a cycle: fewer cycles there (a leaked cycle still shows: 5 x >= 1 MB)
    warm, cycles = (3, 5) if os.environ.get("PYFALCO_IN_GUEST") else (5, 20)
    for _ in range(warm):  # warm up: libbpf/libelf pages, malloc's arenas and mmap threshold settle
        cycle()
    fds0, rss0 = fd_count(), rss_kb()
    for _ in range(cycles):
        cycle()
    assert fd_count() == fds0
    # each load of the driver maps and unmaps ~10 MB of ring buffer and scratch: RSS must not
    # keep any of it (a leak of one cycle's maps would show as >= 1 MB)
    assert rss_kb() - rss0 < 1024


def test_selection_changes_take_effect_while_capturing(tmp_path):
    path = str(tmp_path / "sel")
    me = os.getpid()
    with pyfalco.Capture(syscalls=["close"]) as cap:
        def opens_seen() -> int:
            os.close(os.open(path, os.O_RDONLY | os.O_CREAT))
            marker = -31337
            try:
                os.close(marker)
            except OSError:
                pass
            n = 0
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                for e in cap.next_batch(50):
                    if e.tid != me:
                        continue
                    if e.name == "close" and e.param(1) == marker:
                        return n
                    if e.name == "openat" and e.params["name"] == path:
                        n += 1
            raise AssertionError("marker not seen")

        assert opens_seen() == 0
        cap.select(["close", "openat"])
        assert opens_seen() == 1
        cap.select(["close"])
        assert opens_seen() == 0


def test_a_full_ring_counts_drops_and_never_blocks_the_traced_program():
    with pyfalco.Capture(syscalls=["close"], buffer_bytes=16384) as cap:
        # a producer that blocked on the full ring would hang this loop (not merely slow it)
        for _ in range(20000):
            try:
                os.close(-1)
            except OSError:
                pass
        stats = cap.stats()
        assert stats["n_drops_buffer"] > 0
        assert stats["n_evts"] + stats["n_drops_buffer"] >= 20000
        # what was kept is readable, in order (other processes' closes go on meanwhile: the
        # events read are bounded by the counter taken after the read)
        events = cap.next_batch(0)
        after = cap.stats()
        assert 0 < len(events) <= after["n_evts"]
        assert all(a.ts <= b.ts for a, b in zip(events, events[1:]))


def test_stats_names_match_the_abi_counters():
    assert _native.STAT_NAMES[:5] == ("n_evts", "n_drops_buffer", "n_drops_max_event_size", "n_drops_page_faults",
                                      "n_drops_bug")


def test_initial_state_and_flag_names(tmp_path):
    path = tmp_path / "f"
    with pyfalco.Capture(syscalls=["openat", "close"]) as cap:
        state = cap.initial_state()
        me = state.threads[os.getpid()]
        assert me.pid == os.getpid() and me.comm == open("/proc/self/comm").read().strip()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        # other processes' events come first on a busy machine: read until this open shows
        found = []
        for _ in range(200):
            found += [e for e in cap.next_batch(100) if e.name == "openat" and e.get("name") == str(path)]
            if found:
                break
        evt = found[0]
    assert sorted(evt.flag_names("flags")) == ["O_CLOEXEC", "O_CREAT", "O_F_CREATED", "O_WRONLY"]
    assert evt.flag_names("fd") is None  # not a flags parameter


def test_initial_state_of_a_capture_file():
    from pathlib import Path
    cap_file = Path(__file__).resolve().parents[3] / "shared" / "captures" / "libs_sample.scap"
    with pyfalco.Capture(engine="replay", capture_file=str(cap_file)) as cap:
        state = cap.initial_state()
    assert len(state.threads) > 10 and state.machine.hostname
