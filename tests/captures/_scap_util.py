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

CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "captures"  # ../shared from the checkout
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


def _pt_width(ptype: int) -> int:
    from pyfalco._schema import PT_SIZE
    return PT_SIZE.get(ptype, 0)


STR_TYPES = {9, 17, 43}  # CHARBUF, FSPATH, FSRELPATH: NUL counted in the length


def make_event(code_or_enum, ts: int, tid: int, /, **values) -> bytes:
    """A record in pyfalco's model; parameters by name (int, str, bytes), the rest empty."""
    from pyfalco._schema import EVENTS
    if isinstance(code_or_enum, str):
        code = next(e.code for e in EVENTS if e.enum == code_or_enum)
    else:
        code = code_or_enum
    info = EVENTS[code]
    ps = []
    for p in info.params:
        v = values.pop(p.name, None)
        if v is None:
            ps.append(b"")
        elif isinstance(v, int):
            w = _pt_width(p.type)
            ps.append((v & ((1 << (8 * w)) - 1)).to_bytes(w, "little"))
        elif isinstance(v, str):
            ps.append(v.encode() + (b"\0" if p.type in STR_TYPES else b""))
        else:
            ps.append(bytes(v))
    assert not values, f"{info.enum}: unknown parameters {sorted(values)}"
    return encode(Evt(ts, tid, code, tuple(ps)))


def sockaddr_in(ip: str, port: int) -> bytes:
    return bytes([2]) + bytes(int(x) for x in ip.split(".")) + port.to_bytes(2, "little")


def socktuple_in(sip: str, sport: int, dip: str, dport: int) -> bytes:
    return (bytes([2]) + bytes(int(x) for x in sip.split(".")) + sport.to_bytes(2, "little")
            + bytes(int(x) for x in dip.split(".")) + dport.to_bytes(2, "little"))


_N2022: dict[int, int] = {}


def nparams_2022(code: int) -> int:
    """The declared parameter count of the 2022 table (SECCOMP_E declares 1 of its 2 params)."""
    if not _N2022:
        import json
        spec = CAPTURES.parent / "spec" / "event_table_libs_2022.json"
        _N2022.update((int(k), v["nparams"]) for k, v in json.loads(spec.read_text()).items())
    return _N2022[code]


def lost_in_2022_layout(code: int) -> set[str]:
    """Parameters of a current event that the 2022 layout cannot carry: past the 2022 count,
    and (for exit events) not in the enter event either. They come back empty."""
    from pyfalco._schema import EVENTS
    e = EVENTS[code]
    if code >= 336 or e.params_2022 is None:
        return set()
    extra = {p.name for p in e.params[nparams_2022(code):]}
    if code % 2 and EVENTS[code - 1].name == e.name and "UNUSED" not in EVENTS[code - 1].flags:
        extra -= {p.name for p in EVENTS[code - 1].params[:nparams_2022(code - 1)]}
    return extra


def blank_lost(e: Evt) -> Evt:
    """The event as a 2022-layout round trip gives it back."""
    from pyfalco._schema import EVENTS
    lost = lost_in_2022_layout(e.type)
    if not lost:
        return e
    names = [p.name for p in EVENTS[e.type].params]
    return Evt(e.ts, e.tid, e.type, tuple(b"" if i < len(names) and names[i] in lost else v
                                          for i, v in enumerate(e.params)), e.cpu, e.flags)


def plain_bytes(path) -> bytes:
    """The uncompressed bytes of a capture."""
    import gzip
    data = Path(path).read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def blocks(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, type, total length) of each block of an uncompressed capture."""
    out, off = [], 0
    while off + 8 <= len(data):
        btype, total = struct.unpack_from("<II", data, off)
        out.append((off, btype, total))
        if total < 12:
            break
        off += total
    return out


def replay_all(path):
    """(events, stats, initial state) of a capture; raises CaptureFileError when unreadable."""
    from pyfalco.scap._native_scap import Replay
    from pyfalco.scap.metadata import initial_state_from_blocks
    with Replay(str(path)) as rp:
        evts = [raw for raw, _, _ in rp]
        st = initial_state_from_blocks(rp.metadata())
        return evts, rp.stats(), st
