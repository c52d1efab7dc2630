# SPDX-License-Identifier: Apache-2.0
"""`pyfalco -e FILE` on damaged and unusual capture files: one clear error line (file, offset,
what was wrong) and exit 1, never a traceback; the events before the damage are processed and
their alerts reported (as sysdig does); unknown metadata entries are skipped with a warning;
events of any size the format allows are read."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys

import pytest

from _scap_util import ALL_CAPTURES, blocks, make_event, plain_bytes

RULES = """
- rule: trigger marker
  desc: an open of a marker file
  condition: evt.type = openat and fd.name startswith /tmp/trigger-
  output: "TRIGGER %fd.name"
  priority: WARNING
"""


def _open(ts: int, name: str, fd: int = 5) -> bytes:
    return make_event("PPME_SYSCALL_OPENAT_2_X", ts, 100, fd=fd, dirfd=-100, name=name, flags=1)


def _run(tmp_path, capture) -> subprocess.CompletedProcess:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    cmd = [sys.executable, "-m", "pyfalco.cli.main", "-r", str(rules), "-e", str(capture),
           "-o", "webserver.enabled=false", "-o", "syslog_output.enabled=false", "-o", "stdout_output.enabled=true"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=dict(os.environ))


def _errors(stderr: str, capture) -> list[str]:
    """The lines about the capture file (its path is in every message about it)."""
    assert "Traceback" not in stderr, stderr[-3000:]
    return [line for line in stderr.splitlines() if str(capture) in line]


def _write(path, records) -> None:
    from pyfalco.scap import CaptureWriter
    with CaptureWriter(path) as w:
        for r in records:
            w.write(r)


def test_truncated_mid_stream_alerts_before_the_damage_then_one_error_line(tmp_path):
    good = tmp_path / "good.scap"
    _write(good, [_open(1_000_000_000, "/tmp/trigger-before"), _open(1_000_000_001, "/tmp/other", 6)])
    data = good.read_bytes()
    bad = tmp_path / "truncated.scap"
    # then an event block whose header says 120 bytes, with only 40 of them in the file
    bad.write_bytes(data + struct.pack("<II", 0x216, 120) + bytes(32))
    r = _run(tmp_path, bad)
    assert r.returncode == 1, r.stderr[-3000:]
    assert "TRIGGER /tmp/trigger-before" in r.stdout
    errs = _errors(r.stderr, bad)
    assert len(errs) == 1, errs
    assert re.search(rf"reading capture file {re.escape(str(bad))}: truncated block at offset {len(data)} "
                     r"\(block type 0x216\): length 120, only 40 bytes in the file \(2 events processed before it\)",
                     errs[0]), errs[0]


def test_damaged_metadata_is_one_line_and_exit_1(tmp_path):
    data = plain_bytes(next(p for p in ALL_CAPTURES if p.name == "libs_sample.scap"))
    bad = tmp_path / "cut.scap"
    bad.write_bytes(data[:70000])   # inside the process list block
    r = _run(tmp_path, bad)
    assert r.returncode == 1
    errs = _errors(r.stderr, bad)
    assert len(errs) == 1, errs
    assert f"reading capture file {bad}: truncated block at offset 3296 (block type 0x215)" in errs[0]


@pytest.mark.parametrize("content", [None, b"", b"not a capture file at all\n" * 4])
def test_open_errors_are_printed_once(tmp_path, content):
    path = tmp_path / "x.scap"
    if content is not None:
        path.write_bytes(content)
    r = _run(tmp_path, path)
    assert r.returncode == 1
    errs = _errors(r.stderr, path)
    assert len(errs) == 1, errs
    want = {None: "No such file or directory", b"": "the file is empty"}.get(content, "not a capture file")
    assert want in errs[0]


def test_event_of_2_mb_is_read_and_the_events_around_it_alert(tmp_path):
    """An event larger than the 1 MiB batch buffer: the buffer grows for it."""
    cap = tmp_path / "big.scap"
    _write(cap, [_open(1_000_000_000, "/tmp/trigger-before"),
                 make_event("PPME_CONTAINER_JSON_2_E", 1_000_000_001, 100, json="x" * 2_000_000),
                 _open(1_000_000_002, "/tmp/trigger-after", 6)])
    r = _run(tmp_path, cap)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert "TRIGGER /tmp/trigger-before" in r.stdout and "TRIGGER /tmp/trigger-after" in r.stdout
    assert "end of capture file: 3 events processed" in r.stderr


def test_capture_api_reads_an_event_larger_than_its_batch_buffer(tmp_path):
    import pyfalco
    cap = tmp_path / "big.scap"
    big = make_event("PPME_CONTAINER_JSON_2_E", 2, 100, json="y" * 3_000_000)
    _write(cap, [_open(1, "/tmp/a"), big, _open(3, "/tmp/b", 6)])
    with pyfalco.Capture("replay", capture_file=str(cap), batch_bytes=64 * 1024) as c:
        evts = list(c)
    assert [e.name for e in evts] == ["openat", "container", "openat"]
    assert len(evts[1].params["json"]) == 3_000_000


def _with_unknown_fd_type(name: str, out) -> int:
    """A real capture with its first fd entry's type set to 99; returns the event count of the
    original."""
    from pyfalco.scap._native_scap import Replay
    src = next(p for p in ALL_CAPTURES if p.name == name)
    d = bytearray(plain_bytes(src))
    for off, btype, total in blocks(bytes(d)):
        if btype in (0x218, 0x203) and total > 40:
            d[off + 8 + 8 + (4 if btype == 0x218 else 0) + 16] = 99
            break
    else:
        raise AssertionError("no fd list")
    out.write_bytes(bytes(d))
    with Replay(str(src)) as rp:
        return sum(1 for _ in rp)


@pytest.mark.parametrize("name,warning", [
    ("libs_sample.scap", r"thread \d+: 1 fd\(s\) of unknown type \(99\) read as unsupported fds"),
    ("libs_curl_google.scap", r"thread \d+: fd \d+ has unknown fd type 99 at byte 8; a v1 fd list has no entry "
                              r"lengths, so its \d+ remaining bytes are skipped"),
])
def test_unknown_fd_type_is_skipped_with_a_warning(tmp_path, name, warning):
    cap = tmp_path / "fdtype.scap"
    n = _with_unknown_fd_type(name, cap)
    r = _run(tmp_path, cap)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert re.search(r"metadata block #\d+ \(type 0x2\d+\): " + warning, r.stderr), r.stderr[-3000:]
    assert f"end of capture file: {n} events processed" in r.stderr
