# SPDX-License-Identifier: Apache-2.0
"""Data buffers never wrap: the eBPF driver caps a buffer at PYFALCO_MAX_SNAPLEN before the mask the
verifier needs. The snaplen global is bounded only by user space (libpyfalco refuses more than
16384); a driver global written past that (by another loader of the object, or a bug) once made
the mask wrap a 32,770-byte write to 2 bytes. The test writes the driver's own .bss map (a real
BPF map of this process's capture, through the bpf() syscall) to a snaplen of 40,000 and checks
that a 32,770-byte write arrives with its first 16,384 bytes.

eBPF only: the kernel module has no such global (its snaplen ioctl refuses large values)."""

from __future__ import annotations

import ctypes
import os
import struct

import pytest

import pyfalco

#: the engine under test (tests/drivers/conftest.py reads the same variable)
ENGINE = os.environ.get("PYFALCO_TEST_ENGINE", "modern_ebpf")

MAX_SNAPLEN = 16384
MARK_SNAPLEN = 12345          # a value to find pf_snaplen by in the .bss
BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_OBJ_GET_INFO_BY_FD = 1, 2, 15
SYS_BPF = 321                 # x86_64

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def _bpf(cmd: int, attr: bytes) -> int:
    buf = ctypes.create_string_buffer(attr, 128)
    rc = libc.syscall(ctypes.c_long(SYS_BPF), ctypes.c_long(cmd), buf, ctypes.c_long(128))
    if rc < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return rc


def _map_info(fd: int) -> tuple[int, int, int, str]:
    """(type, value_size, max_entries, name) of a BPF map fd."""
    info = ctypes.create_string_buffer(96)
    _bpf(BPF_OBJ_GET_INFO_BY_FD, struct.pack("<IIQ", fd, 96, ctypes.addressof(info)))
    mtype, _id, _ks, vsize, maxe, _flags = struct.unpack_from("<6I", info.raw)
    name = info.raw[24:40].split(b"\0")[0].decode()
    return mtype, vsize, maxe, name


def _bss_maps() -> list[tuple[int, int]]:
    """(fd, value size) of this process's BPF array maps named *.bss."""
    out = []
    for fd in map(int, os.listdir("/proc/self/fd")):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:bpf-map":
                continue
            mtype, vsize, maxe, name = _map_info(fd)
        except OSError:
            continue
        if mtype == 2 and maxe == 1 and name.endswith(".bss"):
            out.append((fd, vsize))
    return out


def _lookup(fd: int, size: int) -> bytearray:
    key, val = ctypes.c_uint32(0), ctypes.create_string_buffer(size)
    _bpf(BPF_MAP_LOOKUP_ELEM, struct.pack("<IIQQQ", fd, 0, ctypes.addressof(key), ctypes.addressof(val), 0))
    return bytearray(val.raw)


def _update(fd: int, value: bytes) -> None:
    key, val = ctypes.c_uint32(0), ctypes.create_string_buffer(bytes(value), len(value))
    _bpf(BPF_MAP_UPDATE_ELEM, struct.pack("<IIQQQ", fd, 0, ctypes.addressof(key), ctypes.addressof(val), 0))


@pytest.mark.skipif(ENGINE != "modern_ebpf", reason="the kmod's snaplen has no driver global to overwrite")
def test_buffer_beyond_the_max_snaplen_is_capped_not_wrapped(tmp_path):
    before = {fd for fd, _ in _bss_maps()}
    with pyfalco.Capture(syscalls=["write"], snaplen=MARK_SNAPLEN, start=False) as cap:
        mine = [(fd, size) for fd, size in _bss_maps() if fd not in before]
        hits = []
        for fd, size in mine:
            bss = _lookup(fd, size)
            at = bss.find(struct.pack("<I", MARK_SNAPLEN))
            if at >= 0 and bss.find(struct.pack("<I", MARK_SNAPLEN), at + 1) < 0:
                hits.append((fd, bss, at))
        assert len(hits) == 1, f"the driver's pf_snaplen was not found in {len(mine)} .bss maps"
        fd, bss, at = hits[0]
        bss[at:at + 4] = struct.pack("<I", 40_000)       # past the driver's maximum
        _update(fd, bss)
        assert _lookup(fd, len(bss))[at:at + 4] == struct.pack("<I", 40_000)

        blob = bytes(range(256)) * 128 + b"xy"            # 32,770 bytes
        out = os.open(os.devnull, os.O_WRONLY)
        cap.start()
        try:
            assert os.write(out, blob) == len(blob)
        finally:
            os.close(out)
        got = None
        for _ in range(200):
            for evt in cap.next_batch(50):
                if evt.name == "write" and evt.type & 1 and evt.tid == os.getpid() and evt.params["size"] == len(blob):
                    got = evt
            if got is not None:
                break
        cap.stop()
    assert got is not None, "the write was not captured"
    assert got.params["res"] == len(blob)
    # capped at the driver's maximum; masking before the cap captured blob[:2] (32770 % 32768)
    assert got.params["data"] == blob[:MAX_SNAPLEN]
