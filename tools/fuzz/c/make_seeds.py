#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpora of the C fuzz targets from the real captures in ../shared/captures.

    tools/fuzz/c/make_seeds.py [captures dir]

tools/fuzz/corpus/scap_reader/: each capture cut down to a few KB at block boundaries (the
section header, machine info, interface and user lists, a process list cut to its first
entries where entries carry their length (PL V9) or kept whole when small, a few fd lists, the
first event blocks), plain and gzip.
tools/fuzz/corpus/scap_convert/: the event records of each capture in the target's input
format (an options byte, then u16 size | bit 15 = v1 header, record), and one constructed
input for the paths they miss (a 2022 dup pair, enter events pending on many threads).
tools/fuzz/corpus/scap_writer/: operations on the writer (its input format): the small metadata
blocks of each capture, some of its v2 event records one by one, then a batch of them.
Deterministic: running it again gives the same files.
"""

from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
EVENT_TYPES = {0x204: 1, 0x8010ABCD: 1, 0x208: 1, 0x216: 0, 0x221: 0, 0x217: 0, 0x222: 0}  # -> v1
EVF = {0x208, 0x217, 0x222}
PL_V9, SHB = 0x215, 0x0A0D0D0A


def plain(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def blocks(data: bytes):
    off = 0
    while off + 12 <= len(data):
        btype, total = struct.unpack_from("<II", data, off)
        if total < 12 or off + total > len(data):
            return
        yield btype, data[off:off + total]
        off += total


def block(btype: int, body: bytes) -> bytes:
    total = (8 + len(body) + 4 + 3) & ~3
    return struct.pack("<II", btype, total) + body + bytes(total - 12 - len(body)) + struct.pack("<I", total)


def cut_pl_v9(raw: bytes, limit: int) -> bytes:
    body = raw[8:-4]
    out, off = b"", 0
    while off + 4 <= len(body):
        n = struct.unpack_from("<I", body, off)[0]
        if n < 4 or len(out) + n > limit:
            break
        out += body[off:off + n]
        off += n
    return block(PL_V9, out)


def cut(data: bytes, max_events: int = 40, max_fdl: int = 4, max_meta: int = 8192) -> bytes:
    out, nfdl, nev = [], 0, 0
    for btype, raw in blocks(data):
        if btype in EVENT_TYPES:
            if nev < max_events:
                out.append(raw)
            nev += 1
        elif btype == PL_V9 and len(raw) > max_meta:
            out.append(cut_pl_v9(raw, max_meta))
        elif btype in (0x203, 0x8001ABCD, 0x218):
            if nfdl < max_fdl and len(raw) <= max_meta:
                out.append(raw)
            nfdl += 1
        elif btype == SHB or len(raw) <= max_meta:
            out.append(raw)
    return b"".join(out)


def variants(data: bytes) -> bytes:
    """The v2 event blocks of a cut capture re-wrapped: every 3rd as EVF_V2 with the state-only
    dump flag, every 5th as EV_V2_LARGE (the block types the real captures lack)."""
    out, n = [], 0
    for btype, raw in blocks(data):
        if btype == 0x216:
            n += 1
            body = raw[8:-4]
            if n % 3 == 0:
                out.append(block(0x217, body[:2] + struct.pack("<I", 1) + body[2:]))
                continue
            if n % 5 == 0:
                out.append(block(0x221, body))
                continue
        out.append(raw)
    return b"".join(out)


def records(data: bytes, max_events: int = 120) -> bytes:
    out = []
    for btype, raw in blocks(data):
        if btype not in EVENT_TYPES:
            continue
        pre = 6 if btype in EVF else 2
        rec = raw[8 + pre:]
        rec = rec[:struct.unpack_from("<I", rec, 16)[0]] if len(rec) >= 20 else rec
        if len(rec) > 0x7FFF:
            continue
        out.append(struct.pack("<H", len(rec) | (0x8000 if EVENT_TYPES[btype] else 0)) + rec)
        if len(out) >= max_events:
            break
    return b"".join(out)


def writer_ops(data: bytes, opts: int) -> bytes:
    ops = [bytes([opts])]
    recs = []
    for btype, raw in blocks(data):
        if btype in EVENT_TYPES:
            if EVENT_TYPES[btype]:
                continue  # v1 records are not the writer's input
            pre = 6 if btype in EVF else 2
            rec = raw[8 + pre:]
            if len(rec) >= 26:
                rec = rec[:struct.unpack_from("<I", rec, 16)[0]]
                if len(rec) <= 2048:
                    recs.append(rec)
        elif btype != SHB and len(raw) <= 2048 and not recs:
            body = raw[8:-4]
            ops.append(b"\0" + struct.pack("<IH", btype, len(body)) + body)
        if len(recs) >= 14:
            break
    for rec in recs[:8]:
        ops.append(b"\1" + struct.pack("<H", len(rec)) + rec)
    batch = b""
    for rec in recs[8:]:
        entry = struct.pack("<HHI", 0, 0, len(rec)) + rec
        batch += entry + bytes(-len(entry) % 8)
    n = len(recs[8:])
    if n:
        ops.append(b"\2" + struct.pack("<BH", n, len(batch)) + batch + bytes([n]) + bytes(i % 3 for i in range(n)))
    return b"".join(ops)


def rec(ts: int, tid: int, code: int, params: list[bytes]) -> bytes:
    """A v2 record with u16 parameter lengths."""
    body = struct.pack(f"<{len(params)}H", *map(len, params)) + b"".join(params)
    return struct.pack("<QQIHI", ts, tid, 26 + len(body), code, len(params)) + body


def chunk(r: bytes) -> bytes:
    return struct.pack("<H", len(r)) + r


def constructed_convert() -> bytes:
    """Paths the real captures miss: a 2022 dup pair (DUP_E + DUP_X -> DUP_1_X, oldfd from the
    enter event), and enter events pending on 140 threads at once (the pending table grows)."""
    q = lambda v: struct.pack("<q", v)  # noqa: E731
    out = [bytes([0]), chunk(rec(1, 1, 124, [q(3)])), chunk(rec(2, 1, 125, [q(4)]))]
    out += [chunk(rec(10 + t, 1000 + t, 306, [])) for t in range(140)]
    out += [chunk(rec(200 + t, 1000 + t, 307, [q(5)])) for t in range(0, 140, 20)]
    return b"".join(out)


def main() -> int:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "captures"
    reader = ROOT / "tools" / "fuzz" / "corpus" / "scap_reader"
    conv = ROOT / "tools" / "fuzz" / "corpus" / "scap_convert"
    writer = ROOT / "tools" / "fuzz" / "corpus" / "scap_writer"
    for d in (reader, conv, writer):
        d.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(sorted(src.glob("*.scap"))):
        data = plain(path)
        small = cut(data)
        (reader / f"{path.stem}.scap").write_bytes(small)
        (reader / f"{path.stem}.scap.gz").write_bytes(gzip.compress(small, 6, mtime=0))
        recs = records(data)
        if recs:
            (conv / f"{path.stem}.bin").write_bytes(bytes([i % 4]) + recs)
        ops = writer_ops(data, i % 4)
        if len(ops) > 1:
            (writer / f"{path.stem}.bin").write_bytes(ops)
        print(f"{path.name}: reader seed {len(small)} bytes, convert seed {len(recs) + 1} bytes")
        if path.name == "libs_sample.scap":
            (reader / "variants_libs_sample.scap").write_bytes(variants(cut(data, max_events=30, max_fdl=1)))
    (conv / "constructed_dup_and_threads.bin").write_bytes(constructed_convert())
    # a concatenated file: a second section (SHB in the event stream) after the first one's events
    caps = {p.name: plain(p) for p in src.glob("*.scap")}
    if {"libs_test_ipv6_client.scap", "libs_sample.scap"} <= set(caps):
        both = cut(caps["libs_test_ipv6_client.scap"], max_events=10, max_fdl=1) + \
            cut(caps["libs_sample.scap"], max_events=10, max_fdl=1)
        (reader / "concatenated.scap").write_bytes(both)
    return 0


if __name__ == "__main__":
    sys.exit(main())
