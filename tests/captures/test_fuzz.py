# SPDX-License-Identifier: Apache-2.0
"""Fuzzing the reader with hypothesis: mutated real captures (byte flips, overwritten length
fields, truncations, spliced blocks, gzip). Reading must end in events or a CaptureFileError,
never a crash, a hang or another exception. Derandomized and bounded, so it is not flaky."""

from __future__ import annotations

import gzip
import struct

import pytest

import hypothesis  # noqa: E402  (a test dependency: pip install ".[test]")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from _scap_util import ALL_CAPTURES, blocks, plain_bytes, replay_all  # noqa: E402

SEEDS = ["libs_test_ipv6_client.scap", "libs_single_ipv6_conn.scap", "libs_sample.scap", "falco_old_empty.scap"]
_DATA = {n: plain_bytes(next(p for p in ALL_CAPTURES if p.name == n)) for n in SEEDS}
_BLOCKS = {n: blocks(d) for n, d in _DATA.items()}

INTERESTING_U32 = [0, 1, 4, 11, 12, 13, 26, 0xFFFF, 0x10000, 0x10008, 0x7FFFFFFF, 0xFFFFFFFF, 0xFFFFFFF0]


@st.composite
def mutated(draw):
    name = draw(st.sampled_from(SEEDS))
    data = bytearray(_DATA[name])
    blks = _BLOCKS[name]
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "u32", "len", "evlen", "cut", "dup"]))
        if len(data) < 64:
            break
        if kind == "flip":
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= draw(st.integers(1, 255))
        elif kind == "u32":
            i = draw(st.integers(0, len(data) - 4))
            data[i:i + 4] = struct.pack("<I", draw(st.sampled_from(INTERESTING_U32)))
        elif kind in ("len", "evlen"):
            off, btype, total = draw(st.sampled_from(blks))
            if off + 40 > len(data):
                continue
            # a block length, or inside an event: its len / nparams / first param length / type
            field = off + 4 if kind == "len" else off + 10 + draw(st.sampled_from([16, 20, 22, 26]))
            width = 2 if field == off + 30 or field == off + 36 else 4
            v = draw(st.sampled_from(INTERESTING_U32)) & ((1 << (8 * width)) - 1)
            data[field:field + width] = v.to_bytes(width, "little")
        elif kind == "cut":
            data = data[:draw(st.integers(0, len(data)))]
        elif kind == "dup":
            off, _, total = draw(st.sampled_from(blks))
            at = draw(st.sampled_from(blks))[0]
            data[at:at] = data[off:off + total]
    return bytes(data), draw(st.booleans())


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_reader_survives_mutations(tmp_path_factory, case):
    from pyfalco.errors import CaptureFileError
    data, compress = case
    p = tmp_path_factory.mktemp("fuzz") / "m.scap"
    p.write_bytes(gzip.compress(data, 1) if compress else data)
    try:
        evts, stats, _ = replay_all(p)
    except CaptureFileError as err:
        assert "offset" in str(err) or "metadata block #" in str(err) or "empty" in str(err), str(err)
        return
    for raw in evts:  # every event handed out is well formed
        ln, typ, n = struct.unpack_from("<IHI", raw, 16)
        assert ln == len(raw) >= 26
