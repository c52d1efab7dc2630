# SPDX-License-Identifier: Apache-2.0
"""Corrupt input: a clear error naming the offset, or the event skipped and counted. Never a
crash, a hang or unbounded memory."""

from __future__ import annotations

import gzip
import struct

import pytest

from _scap_util import ALL_CAPTURES, blocks, plain_bytes, replay_all

EVENT_TYPES = {0x204, 0x8010ABCD, 0x216, 0x221, 0x208, 0x217, 0x222}


def _cap(name):
    return next(p for p in ALL_CAPTURES if p.name == name)


@pytest.fixture(scope="module")
def sample():
    """libs_sample.scap: plain, v2 events (EV_V2), PL_V9, FDL_V2."""
    return plain_bytes(_cap("libs_sample.scap"))


def _first_event(data):
    return next((off, t, n) for off, t, n in blocks(data) if t in EVENT_TYPES)


def _err(tmp_path, data, match):
    from pyfalco.errors import CaptureFileError
    p = tmp_path / "bad.scap"
    p.write_bytes(data)
    with pytest.raises(CaptureFileError, match=match):
        replay_all(p)


def test_empty_file(tmp_path):
    _err(tmp_path, b"", "the file is empty")


def test_not_a_capture(tmp_path):
    _err(tmp_path, b"hello world, this is not a capture file\n" * 3,
         r"not a capture file: block type 0x6c6c6568 at offset 0, a section header block")


def test_bad_magic(tmp_path, sample):
    data = bytearray(sample)
    data[8:12] = b"\x01\x02\x03\x04"
    _err(tmp_path, bytes(data), r"bad magic number 0x04030201 at offset 8 \(expected 0x1a2b3c4d\)")


def test_big_endian_magic(tmp_path, sample):
    data = bytearray(sample)
    data[8:12] = struct.pack(">I", 0x1A2B3C4D)
    _err(tmp_path, bytes(data), "bad magic number at offset 8: a big-endian capture file")


def test_newer_major_version(tmp_path, sample):
    data = bytearray(sample)
    data[12:14] = struct.pack("<H", 2)
    _err(tmp_path, bytes(data), "format version 2.2 is newer than 1.x")


@pytest.mark.parametrize("cut", [3, 27, 100, 5000])
def test_truncated_in_metadata(tmp_path, sample, cut):
    _err(tmp_path, sample[:cut], r"truncated block (header )?at offset \d+")


def test_truncated_in_events(tmp_path, sample):
    from pyfalco.scap._native_scap import Replay
    from pyfalco.errors import CaptureFileError
    off, _, total = blocks(sample)[-5]
    p = tmp_path / "t.scap"
    p.write_bytes(sample[:off + total // 2])
    n = 0
    with Replay(str(p)) as rp:
        with pytest.raises(CaptureFileError, match=rf"truncated block at offset {off} \(block type 0x216\): "
                                                   rf"length {total}, only {total // 2} bytes in the file"):
            for _ in rp:
                n += 1
        # the error is sticky
        with pytest.raises(CaptureFileError, match=f"truncated block at offset {off}"):
            next(iter(rp))
    assert n > 300


def test_bad_block_length(tmp_path, sample):
    off, _, _ = _first_event(sample)
    data = bytearray(sample)
    data[off + 4:off + 8] = struct.pack("<I", 5)
    _err(tmp_path, bytes(data), rf"bad block length 5 at offset {off} \(block type 0x216\): less than 12 bytes")


@pytest.mark.parametrize("length", [0x10000000 + 16, 0xFFFFFFF0])
def test_huge_event_block_length(tmp_path, sample, length):
    off, _, _ = _first_event(sample)
    data = bytearray(sample)
    data[off + 4:off + 8] = struct.pack("<I", length)
    _err(tmp_path, bytes(data), rf"bad block length {length} at offset {off} \(block type 0x216\): more than the "
                                r"65544 bytes allowed")


def test_huge_metadata_length_in_small_file(tmp_path, sample):
    """A 200 MB length in a 140 KB file: fails at the end of the data, having read only that."""
    import resource
    off, btype, _ = blocks(sample)[1]
    data = bytearray(sample)
    data[off + 4:off + 8] = struct.pack("<I", 200 << 20)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _err(tmp_path, bytes(data), rf"truncated block at offset {off} \(block type 0x{btype:x}\): length {200 << 20}")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB


def test_metadata_trailer_mismatch(tmp_path, sample):
    off, btype, total = blocks(sample)[1]
    data = bytearray(sample)
    data[off + total - 4:off + total] = struct.pack("<I", total + 4)
    _err(tmp_path, bytes(data), rf"bad block at offset {off} \(block type 0x{btype:x}\): trailer length {total + 4} "
                                rf"differs from header length {total}")


def _patch_event(sample, fn):
    """Applies fn(bytearray, event offset) to the first non-procinfo EV_V2 event."""
    data = bytearray(sample)
    for off, t, _ in blocks(sample):
        if t == 0x216 and struct.unpack_from("<H", data, off + 10 + 20)[0] != 234:
            fn(data, off + 10)
            return bytes(data)
    raise AssertionError("no event")


def _skipped(tmp_path, data):
    p = tmp_path / "s.scap"
    p.write_bytes(data)
    evts, stats, _ = replay_all(p)
    return len(evts), stats["n_skipped_malformed"], stats["n_skipped_unknown"]


def test_param_length_past_event(tmp_path, sample):
    base, _, _ = _skipped(tmp_path, sample)
    data = _patch_event(sample, lambda d, e: d.__setitem__(slice(e + 26, e + 28), b"\xff\xff"))
    n, malformed, unknown = _skipped(tmp_path, data)
    assert (malformed, unknown) == (1, 0)
    assert n == base - 1


def test_huge_nparams(tmp_path, sample):
    data = _patch_event(sample, lambda d, e: d.__setitem__(slice(e + 22, e + 26), b"\xff\xff\xff\xff"))
    assert _skipped(tmp_path, data)[1:] == (1, 0)


def test_event_length_past_block(tmp_path, sample):
    data = _patch_event(sample, lambda d, e: d.__setitem__(slice(e + 16, e + 20), struct.pack("<I", 60000)))
    assert _skipped(tmp_path, data)[1:] == (1, 0)


@pytest.mark.parametrize("code", [454, 9999, 0xFFFF, 17])  # past the table, and an unused slot
def test_unknown_event_code(tmp_path, sample, code):
    base, _, _ = _skipped(tmp_path, sample)
    data = _patch_event(sample, lambda d, e: d.__setitem__(slice(e + 20, e + 22), struct.pack("<H", code)))
    n, malformed, unknown = _skipped(tmp_path, data)
    assert (malformed, unknown, n) == (0, 1, base - 1)


def test_unknown_block_type_skipped(tmp_path, sample):
    base, _, _ = _skipped(tmp_path, sample)
    off, _, _ = _first_event(sample)
    extra = struct.pack("<II", 0x9999, 16) + b"abcd" + struct.pack("<I", 16)
    assert _skipped(tmp_path, sample[:off] + extra + sample[off:]) == (base, 0, 0)


def test_bad_gzip(tmp_path):
    raw = _cap("libs_test_ipv6_client.scap").read_bytes()
    data = bytearray(raw)
    for i in range(2000, 2200):
        data[i] ^= 0x5A
    _err(tmp_path, bytes(data), r"at offset \d+.*(invalid|incorrect|data error|unexpected end)")


def test_truncated_gzip(tmp_path):
    raw = _cap("libs_test_ipv6_client.scap").read_bytes()
    _err(tmp_path, raw[:len(raw) // 2], r"truncated block( header)? at offset \d+.*unexpected end of file")


def test_metadata_body_errors_name_the_block(caplog):
    from pyfalco.errors import CaptureFileError
    from pyfalco.scap.metadata import initial_state_from_blocks
    with pytest.raises(CaptureFileError, match=r"metadata block #1 \(type 0x215, 10 bytes\): thread entry at byte 0: "
                                               r"length 4000 outside the block"):
        initial_state_from_blocks([(0x201, bytes(180)), (0x215, struct.pack("<I", 4000) + bytes(6))])
    # an unknown fd type in a v1 fd list: the list cannot go on past it, the rest is skipped with
    # a warning (the fds before it are kept)
    file_fd = struct.pack("<QQB", 2, 0, 1) + struct.pack("<H", 2) + b"/a"
    st = initial_state_from_blocks([(0x203, struct.pack("<Q", 1) + file_fd + struct.pack("<QQB", 3, 0, 99) + bytes(8))],
                                   source="x.scap")
    assert list(st.threads[1].fds) == [2]
    assert "capture file x.scap: metadata block #0 (type 0x203): thread 1: fd 3 has unknown fd type 99 at byte 29" \
        in caplog.text


def test_concatenated_files(tmp_path):
    one = plain_bytes(_cap("libs_test_ipv6_client.scap"))
    p = tmp_path / "cat.scap"
    p.write_bytes(one + one)
    evts1, _, _ = replay_all(_cap("libs_test_ipv6_client.scap"))
    evts2, stats, st = replay_all(p)
    assert evts2 == evts1 + evts1
    from pyfalco.scap._native_scap import Replay
    with Replay(str(p)) as rp:
        list(rp)
        assert sum(1 for t, _ in rp.metadata() if t == 0x0A0D0D0A) == 2
    # gzip members back to back too
    g = tmp_path / "cat.scap.gz"
    g.write_bytes(gzip.compress(one) + gzip.compress(one))
    assert replay_all(g)[0] == evts1 + evts1


def test_shb_with_options_is_read():
    a, _, _ = replay_all(_cap("libs_curl_google.scap"))
    b, _, _ = replay_all(_cap("libs_curl_google_comments.scap"))
    assert a == b and len(a) > 900


def test_metadata_only_file_has_no_events(tmp_path, sample):
    off, _, _ = _first_event(sample)
    p = tmp_path / "m.scap"
    p.write_bytes(sample[:off])
    evts, stats, st = replay_all(p)
    assert evts == [] and len(st.threads) > 50
