# SPDX-License-Identifier: Apache-2.0
"""Close trailers (issue 15 item 3): close exits no rule wants come from libpyfalco appended to
the entry before them, (ts, tid, res, fd) each (capture.c's PF_MASK_CLOSE / PF_EF_CLOSES), and
Inspector.process_raw applies them right after that entry. Unrolled, the trailers and entries are
the file's events in order, cut anywhere by small buffers and event limits; the state, counters and
event numbers after process_raw are the same as with every close as an entry of its own, replay
and live-like (nothing else skipped) alike."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

import pyfalco
from pyfalco.events import ENTRY_HDR, ENTRY_SIZE
from pyfalco.inspector import Inspector
from pyfalco.record import HDR_SIZE
from pyfalco.state.parser import E_CLOSE, StateParser

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = sorted((ROOT.parent / "shared" / "captures").glob("*.scap"))
BIG = max(CAPTURES, key=lambda p: p.stat().st_size)
NO_CLOSE = bytes(65536)            # a wanted table that wants nothing: every close may trail
ITEM = struct.Struct("<QQqq")


def _read(capture: Path, skip: bytes | None, trail: bool, **kw) -> list:
    """The capture's batches (buffer, entries, first number, events) through next_raw_skip_batch."""
    out = []
    with pyfalco.Capture("replay", capture_file=str(capture), **{k: v for k, v in kw.items() if k == "batch_bytes"}) as cap:
        cap.close_trailer_code = E_CLOSE if trail else None
        while (b := cap.next_raw_skip_batch(0, skip or b"", max_events=kw.get("max_events", 1 << 20))) is not None:
            out.append(b)
    return out


def _walk(batches: list) -> tuple[list, int]:
    """(ts, tid, type, res/fd or None) of every event, trailers and runs unrolled; number of trailed closes."""
    out = []
    trailed = 0
    for buf, n, _first, _nev in batches:
        off = 0
        for _ in range(n):
            _cpu, flags, rlen, ts, tid, length, etype, nparams = ENTRY_HDR.unpack_from(buf, off)
            if flags & 2:
                vals = struct.unpack_from(f"<{2 * nparams}Q", buf, off + ENTRY_SIZE + HDR_SIZE)
                out += [(vals[i], vals[i + 1], "skip", None) for i in range(0, len(vals), 2)]
            elif etype == E_CLOSE and nparams == 2:
                res, fd = struct.unpack_from("<qq", buf, off + ENTRY_SIZE + HDR_SIZE + 4)
                out.append((ts, tid, etype, (res, fd)))
            else:
                out.append((ts, tid, etype, None))
            if flags & 4:
                pad = (length + 7) & ~7
                assert (rlen - pad) % 32 == 0 and rlen > pad
                assert buf[off + ENTRY_SIZE + length:off + ENTRY_SIZE + pad] == bytes(pad - length)
                for rts, rtid, res, fd in ITEM.iter_unpack(buf[off + ENTRY_SIZE + pad:off + ENTRY_SIZE + rlen]):
                    out.append((rts, rtid, E_CLOSE, (res, fd)))
                    trailed += 1
            off += (ENTRY_SIZE + rlen + 7) & ~7
    return out, trailed


@pytest.mark.parametrize("batch_bytes,max_events", [(256, 1 << 20), (4096, 7), (1 << 20, 3), (1 << 20, 1 << 20)])
def test_trailers_hold_the_closes_in_order(batch_bytes, max_events):
    """Every close of the file, in its place, with its ts, tid, res and fd; event counts per batch
    count the trailed closes; no entry of its own is left for a close that could trail."""
    plain, _ = _walk(_read(BIG, None, False))
    for skip in (None, Inspector(pyfalco.Capture("replay", capture_file=str(BIG))).batch_skip(NO_CLOSE)):
        got = _read(BIG, skip, True, batch_bytes=batch_bytes, max_events=max_events)
        for _buf, n, _first, nev in got:
            assert n <= nev <= max_events
        events, trailed = _walk(got)
        if skip is not None:
            events = [e if e[2] == E_CLOSE else (e[0], e[1], "skip", None) if e[2] == "skip" else e for e in events]
            mask = skip
            plain_m = [(e[0], e[1], "skip", None) if isinstance(e[2], int) and e[2] < len(mask) and mask[e[2]] else e
                       for e in plain]
            assert events == plain_m
        else:
            assert events == plain
        closes = sum(1 for e in plain if e[2] == E_CLOSE)
        assert trailed > closes // 2       # not vacuous: most closes trailed
        nums = [nev for _b, _n, _f, nev in got]
        assert sum(nums) == len(plain)
        assert [f for _b, _n, f, _nev in got] == [sum(nums[:i]) for i in range(len(nums))]


def _snapshot(insp: Inspector) -> tuple:
    threads = {tid: (t.pid, t.last_ts, sorted(t.proc.fds), t.comm) for tid, t in insp.threads.threads.items()}
    return threads, insp.stats(), insp.first_ts, insp.last_ts, insp._next_purge


def _events_seen(capture: Path, batches: list, wanted: bytes, live: bool) -> tuple:
    cap = pyfalco.Capture("replay", capture_file=str(capture))
    insp = Inspector(cap, live=False)
    cap.close()
    if live:
        # a live inspector without its /proc loaders: nothing skipped, closes trailed
        insp.live = True
        insp.purge_interval_ns = 2_000_000     # purges within the captures' seconds
    seen = []

    def handler(ie):
        seen.append((ie.evt.num, ie.evt.ts, ie.evt.type, ie.thread.tid if ie.thread else None,
                     None if ie.fd is None else ie.fd.name, ie.prev_ts))
    after = []
    try:
        for b in batches:
            insp.process_raw(b[0], b[1], b[2], wanted, handler)
            # the state at every batch's end (batches of a few events: a close's effects show
            # where it is its thread's last event of the batch)
            after.append(hash(tuple((tid, t.last_ts, len(t.proc.fds)) for tid, t in insp.threads.threads.items())))
        return seen, _snapshot(insp), after
    finally:
        insp.close()


@pytest.mark.parametrize("live", [False, True], ids=["replay", "live-like"])
@pytest.mark.parametrize("capture", CAPTURES, ids=[c.name for c in CAPTURES])
def test_trailers_change_nothing(capture, live, monkeypatch):
    """process_raw over trailer batches leaves the state, counters, times and event numbers of the
    wanted events as with every close an entry (wanted: every type but close). Live-like, the
    purge runs (every 2 ms of capture time here) and asks /proc: made deterministic here."""
    import pyfalco.inspector as mod
    monkeypatch.setattr(mod.os.path, "exists", lambda p: hash(p) % 3 == 0)
    wanted = bytes(0 if c == E_CLOSE else 1 for c in range(65536))
    insp = Inspector(pyfalco.Capture("replay", capture_file=str(capture)), live=False)
    insp.capture.close_trailer_code = None
    if live:
        insp.live = True
        insp._kinds_cache.clear()
    skip = insp.batch_skip(wanted)
    trail = insp.capture.close_trailer_code
    insp.capture.close()
    insp.close()
    assert trail == E_CLOSE
    if live:
        assert skip == b""
    plain = _read(capture, None, False, max_events=37)
    trailed = _read(capture, skip, True, max_events=37)
    assert [b[3] for b in plain] == [b[3] for b in trailed]
    closes = sum(1 for e in _walk(plain)[0] if e[2] == E_CLOSE)
    assert _walk(trailed)[1] >= closes // 2   # not vacuous where the capture has closes
    expect = _events_seen(capture, plain, wanted, live)
    got = _events_seen(capture, trailed, wanted, live)
    assert got[1] == expect[1]
    assert got[0] == expect[0]
    assert got[2] == expect[2]


def test_batch_skip_sets_the_trailers_by_wanted():
    """Closes trail only when the wanted table leaves them out; read with another capture, the mask
    makes no trailer (it never marks closes itself)."""
    cap = pyfalco.Capture("replay", capture_file=str(BIG))
    insp = Inspector(cap)
    try:
        mask = insp.batch_skip(NO_CLOSE)
        assert cap.close_trailer_code == E_CLOSE
        assert mask is None or len(mask) <= E_CLOSE or mask[E_CLOSE] == 0
        insp.batch_skip(None)
        assert cap.close_trailer_code is None
        insp.batch_skip(NO_CLOSE)
        assert cap.close_trailer_code == E_CLOSE
        _events, trailed = _walk(_read(BIG, mask, False))
        assert trailed == 0
    finally:
        cap.close()
        insp.close()
