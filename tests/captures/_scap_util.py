# SPDX-License-Identifier: Apache-2.0
"""Helpers shared by the capture-file tests: replay through libpyfalco, decode raw records, sysdig."""

from __future__ import annotations

import ctypes
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "captures"
if not CAPTURES.is_dir():
    CAPTURES = Path(__file__).resolve().parents[2].parent / "shared" / "captures"
ALL_CAPTURES = sorted(CAPTURES.glob("*.scap"))
SYSDIG = shutil.which("sysdig")

LARGE_PAYLOAD = {322, 324, 402}


@dataclass(frozen=True)
class Evt:
    ts: int
    tid: int
    type: int
    params: tuple[bytes, ...]
    cpu: int = 0
    flags: int = 0

    @property
    def name(self) -> str:
        from pyfalco._schema import EVENTS
        return EVENTS[self.type].name

    def param(self, name: str) -> bytes | None:
        from pyfalco._schema import EVENTS
        for p, v in zip(EVENTS[self.type].params, self.params):
            if p.name == name:
                return v
        return None


def decode(raw: bytes, cpu: int = 0, flags: int = 0) -> Evt:
    ts, tid, ln, typ, n = struct.unpack_from("<QQIHI", raw)
    assert ln == len(raw), (ln, len(raw))
    w = 4 if typ in LARGE_PAYLOAD else 2
    lens = struct.unpack_from(f"<{n}{'I' if w == 4 else 'H'}", raw, 26)
    off = 26 + w * n
    ps = []
    for l in lens:
        ps.append(raw[off:off + l])
        off += l
    assert off == ln
    return Evt(ts, tid, typ, tuple(ps), cpu, flags)


def encode(e: Evt) -> bytes:
    w = 4 if e.type in LARGE_PAYLOAD else 2
    n = len(e.params)
    lens = struct.pack(f"<{n}{'I' if w == 4 else 'H'}", *(len(p) for p in e.params))
    body = lens + b"".join(e.params)
    return struct.pack("<QQIHI", e.ts, e.tid, 26 + len(body), e.type, n) + body


def replay(path, *, with_stats: bool = False):
    """All events of a capture through the replay engine (pyfalco_capture_next)."""
    from pyfalco.scap import _native_scap as ns
    with ns.Replay(str(path)) as rp:
        out = [decode(raw, cpu, flags) for raw, cpu, flags in rp]
        if with_stats:
            return out, rp.stats()
    return out


def sysdig(path, fmt: str, filt: str | None = None) -> list[str]:
    cmd = [SYSDIG, "-r", str(path), "-p", fmt]
    if filt:
        cmd.append(filt)
    r = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()
