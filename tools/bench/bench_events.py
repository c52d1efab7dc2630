#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Python cost per event, by event type: Inspector.process_raw (state) + the rules' matchers.

The events of a capture file are read into memory first (libpyfalco's batches, as the agent gets
them), then fed to a fresh Inspector with the default rules' matchers, as Engine's batch path does
(alerts are counted, not formatted). Two figures:

* ``batch``: the whole capture through process_raw in its batches, ns per event; twice: the
  plain batches (``next_raw_batch``), and the batches as a live agent reads them
  (``Inspector.batch_skip`` live: nothing skipped, but close exits no rule wants come as close
  trailers of the entry before them, where the tree has them);
* per type, two ways:

  - ``call``: every event on its own (a one-entry process_raw call, timed), minus the cost of an
    empty call timed right after it: the ns one event of that type adds, state and rules
    included. A one-entry call also pays the per-call setup that the batch path amortises
    (locals, range(), try/finally), only partly cancelled by the empty call's;
  - ``marginal`` (``--marginal``: openat and close by default; the rarer types' differences
    drown in the run-to-run spread): the whole capture's batches
    through process_raw, against the same batches with that type's entries taken out (buffers
    rewritten, counts and event numbers adjusted), the difference over the number taken out;
    the median of the paired differences over ``--reps`` alternations per run (each on a fresh
    inspector) and all runs. The state differs slightly
    without them (a close not applied leaves its fd in the table), so it is the marginal cost
    in the batch path, not an exact one. For close the whole side is read as the agent reads
    it (close trailers), so its figure is what a close costs the agent; the ``call`` figure of
    close is that of a close as an entry of its own (the path a wanted-type-less close takes
    without trailers: PyPy, another capture).

Times are the measuring thread's CPU time (``time.thread_time_ns``): on a shared machine wall
time also counts the other tenants' time slices (other load still slows the caches down).

``--record FILE`` first records an open-heavy live capture (openat/close of files, connect to a
local port, fork+exec of /bin/true) with the modern eBPF driver. ``--compare DIR`` runs the same
measure on another checkout (e.g. a ``git worktree`` of an older commit) in the same run, runs
interleaved, and prints both columns (with that checkout's own libpyfalco when it has one built
in DIR/build/libpyfalco, e.g. ``cmake -S DIR -B DIR/build -DPYFALCO_BUILD_BPF=OFF && cmake
--build DIR/build``; otherwise this tree's).

    nice -n 19 python3 tools/bench/bench_events.py --record /tmp/open_heavy.scap
    nice -n 19 python3 tools/bench/bench_events.py --capture /tmp/open_heavy.scap --compare /tmp/old
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_CAPTURES = [ROOT.parent / "shared" / "captures" / "inspect_502Error.scap"]
DEFAULT_RULES = ROOT / "rules" / "pyfalco_rules.yaml"
#: the types issue 15 names first; the table shows every type with enough events
HOT = ("openat", "open", "close", "connect", "execve", "clone")

WORKLOAD = r"""
import os, socket, sys, time
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(512)
port = srv.getsockname()[1]
end = time.monotonic() + float(sys.argv[1])
i = 0
while time.monotonic() < end:
    for p in ("/etc/hostname", "/etc/passwd", "/etc/hosts", "/dev/null"):
        fd = os.open(p, os.O_RDONLY); os.close(fd)
    if i % 4 == 0:
        c = socket.socket(); c.connect(("127.0.0.1", port)); a, _ = srv.accept(); a.close(); c.close()
    if i % 50 == 0:
        pid = os.fork()
        if pid == 0:
            os.execv("/bin/true", ["true"])
        os.waitpid(pid, 0)
    i += 1
"""


def record(path: str, seconds: float) -> int:
    """An open-heavy live capture in ``path`` (needs root and the modern eBPF driver)."""
    import pyfalco
    from pyfalco.capture import state_syscalls
    from pyfalco.procscan import scan
    from pyfalco.scap.writer import CaptureWriter
    sel = state_syscalls() | {"openat", "close", "connect", "execve", "clone", "read", "accept4"}
    n = 0

    def mark() -> bytes:
        """A failed open of a unique path: once its event is read, every event the workload made
        before it exited has been read too (the reader may lag seconds behind the workload on a
        busy machine; stopping when the workload exits lost the ring's tail: its connects,
        execs and clones)."""
        p = f"/proc/self/pyfalco-record-end-{uuid.uuid4().hex}"
        try:
            os.close(os.open(p, os.O_RDONLY))
        except OSError:
            pass
        return p.encode()

    with pyfalco.Capture("modern_ebpf", syscalls=sorted(sel)) as cap, CaptureWriter(path) as w:
        w.write_initial_state(scan())
        load = subprocess.Popen([sys.executable, "-c", WORKLOAD, str(seconds)])
        markers: list[bytes] = []
        guard = None
        while True:
            if not markers and load.poll() is not None:
                markers.append(mark())
                guard = time.monotonic() + 120.0
            raw = cap.next_raw_batch(100)
            if raw is None:
                if markers:
                    markers.append(mark())      # ran dry without it: the driver dropped it
                    if time.monotonic() > guard:
                        raise RuntimeError(f"record: end marker never read; driver counters {cap.stats()}")
                continue
            buf, k, _first = raw
            n += w.write_batch(buf, len(buf), k)
            if markers and any(m in buf for m in markers):
                break
    return n


def _entries(buf: bytes, count: int) -> list[tuple[int, bytes]]:
    """(event code, one-entry buffer) of each entry of a batch."""
    from pyfalco.events import ENTRY_HDR, ENTRY_SIZE
    out = []
    off = 0
    for _ in range(count):
        rlen = ENTRY_HDR.unpack_from(buf, off)[2]
        etype = ENTRY_HDR.unpack_from(buf, off)[6]
        stride = (ENTRY_SIZE + rlen + 7) & ~7
        # padded as if another entry followed (what the event has inside a batch)
        out.append((etype, buf[off:off + stride] + bytes(64)))
        off += stride
    return out


def _without(batches: list, etype: int) -> tuple[list, int]:
    """The batches with the entries of type ``etype`` taken out (event numbers renumbered), and
    how many were taken out."""
    from pyfalco.events import ENTRY_HDR, ENTRY_SIZE
    out = []
    removed = 0
    num = batches[0][2] if batches else 0
    for buf, k, _first in batches:
        parts = []
        off = 0
        kept = 0
        for _ in range(k):
            hdr = ENTRY_HDR.unpack_from(buf, off)
            stride = (ENTRY_SIZE + hdr[2] + 7) & ~7
            if hdr[6] == etype:
                removed += 1
            else:
                parts.append(buf[off:off + stride])
                kept += 1
            off += stride
        if kept:
            out.append((b"".join(parts) + bytes(64), kept, num))
            num += kept
    return out, removed


def _batches(cap) -> list:
    out = []
    while True:
        raw = cap.next_raw_batch(0)
        if raw is None:
            return out
        out.append(raw)


def _fresh(capture: str):
    """A fresh inspector over the capture's initial state, and the capture's batches."""
    import pyfalco
    cap = pyfalco.Capture("replay", capture_file=capture)
    insp = pyfalco.Inspector(cap)
    batches = _batches(cap)
    cap.close()
    return insp, batches


def _agent_batches(capture: str, wanted: bytes) -> tuple[list, bool]:
    """The capture's batches as a live agent reads them (Inspector.batch_skip on a live inspector:
    nothing skipped; close exits no rule wants as close trailers where this tree has them), and
    whether closes trailed."""
    import pyfalco
    from pyfalco.state.parser import E_CLOSE
    cap = pyfalco.Capture("replay", capture_file=capture)
    try:
        if not hasattr(cap, "close_trailer_code") or wanted[E_CLOSE]:
            return _batches(cap), False
        cap.close_trailer_code = E_CLOSE
        out = []
        while (raw := cap.next_raw_skip_batch(0, b"")) is not None:
            out.append(raw[:3])
        return out, True
    finally:
        cap.close()


def marginal(capture: str, wanted: bytes, on_event, types: list[str], reps: int) -> dict:
    """ns per event of each type in the batch path: the capture's batches against the same
    without that type's entries, best of ``reps`` alternations (fresh inspectors). For close,
    the full side is read as the agent reads it (_agent_batches: with close trailers where this
    tree has them); the other types' full side is the plain batches."""
    import pyfalco
    names = pyfalco.Inspector.event_code_names
    _insp, batches = _fresh(capture)
    _insp.close()
    agent, _trailed = _agent_batches(capture, wanted)
    variants = {}
    for name in types:
        codes = [c for c, n in enumerate(names) if n == name and c & 1]   # the exits
        best = None
        for code in codes:
            less, removed = _without(batches, code)
            if removed and (best is None or removed > best[1]):
                best = (less, removed)
        if best is not None:
            variants[name] = (agent if name == "close" else batches, best[0], best[1])
    clock = time.thread_time_ns

    def run(bs: list) -> int:
        insp, _ = _fresh_state(capture)
        gc.collect()
        gc.disable()
        try:
            t0 = clock()
            for buf, k, first in bs:
                insp.process_raw(buf, k, first, wanted, on_event)
            return clock() - t0
        finally:
            gc.enable()
            insp.close()
    if variants:
        run(batches)        # a first pass, not timed (the first run after the compile pass is colder)
    full: dict[str, list[int]] = {name: [] for name in variants}
    less_t: dict[str, list[int]] = {name: [] for name in variants}
    for i in range(reps):
        for name, (whole, less, _removed) in (variants.items() if i % 2 == 0 else list(variants.items())[::-1]):
            full[name].append(run(whole))
            less_t[name].append(run(less))
    # the median of the paired differences (each alternation's whole run minus the run without
    # the type right after it): the difference of the two bests is no estimator when the spread of
    # a whole run (tens of ms at load) is as large as what the type adds
    return {name: {"ns": sorted((f - l) / removed for f, l in zip(full[name], less_t[name]))[reps // 2],
                   "removed": removed,
                   "spread": [(f - l) / removed for f, l in zip(full[name], less_t[name])]}
            for name, (_whole, _less, removed) in variants.items()}


def _fresh_state(capture: str):
    """A fresh inspector over the capture's initial state (no batches read)."""
    import pyfalco
    cap = pyfalco.Capture("replay", capture_file=capture)
    insp = pyfalco.Inspector(cap)
    cap.close()
    return insp, None


def measure(capture: str, rules: str, marginal_types: list[str] | None = None, reps: int = 5) -> dict:
    """One run: batch ns/event, per-type added ns/event, counts, alerts. The rules' matchers are
    compiled by a first pass over the capture (a bucket compiles at its type's first event: tens
    of ms, a one-off that is not per-event cost), then each figure takes a fresh inspector."""
    import pyfalco
    engine = pyfalco.Engine(Path(rules), capture=pyfalco.Capture("replay", capture_file=capture))
    insp = engine.inspector
    matchers, wanted = engine.ruleset.code_matchers(insp.event_code_names, "syscall")
    hits = [0]

    def on_event(ie) -> None:
        if matchers[ie.evt.type](ie):
            hits[0] += 1
    for buf, k, first in _batches(engine.capture):
        insp.process_raw(buf, k, first, wanted, on_event)
    engine.close()
    hits[0] = 0
    insp, batches = _fresh(capture)
    n = sum(b[1] for b in batches)
    gc.collect()
    gc.disable()
    try:
        t0 = time.thread_time_ns()
        for buf, k, first in batches:
            insp.process_raw(buf, k, first, wanted, on_event)
        batch_ns = (time.thread_time_ns() - t0) / max(n, 1)
    finally:
        gc.enable()
    alerts = hits[0]
    insp.close()
    # the same, the batches read as a live agent reads them (close trailers where this tree has them)
    agent, trailed = _agent_batches(capture, wanted)
    agent_ns = []
    for _ in range(3):
        insp, _ = _fresh_state(capture)
        gc.collect()
        gc.disable()
        try:
            t0 = time.thread_time_ns()
            for buf, k, first in agent:
                insp.process_raw(buf, k, first, wanted, on_event)
            agent_ns.append((time.thread_time_ns() - t0) / max(n, 1))
        finally:
            gc.enable()
            insp.close()
    # per type: a fresh state, every event on its own call
    insp, batches = _fresh(capture)
    entries = [(e, first + i) for buf, k, first in batches for i, e in enumerate(_entries(buf, k))]
    proc = insp.process_raw
    clock = time.thread_time_ns
    empty = []
    for _ in range(2000):
        t0 = clock()
        proc(b"", 0, 0, wanted, on_event)
        empty.append(clock() - t0)
    empty.sort()
    base = empty[len(empty) // 2]
    # each event's call is followed by an empty call, timed too: a type's figure is the mean of
    # its calls minus the mean of the empty calls right after them (the same moment's load and
    # clock cost), not minus one calibration taken before (whose median moves by hundreds of
    # ns at load: more than a close costs)
    per: dict[str, list[int]] = {}
    paired: dict[str, list[int]] = {}
    names = insp.event_code_names
    gc.collect()
    gc.disable()
    try:
        for (etype, one), num in entries:
            t0 = clock()
            proc(one, 1, num, wanted, on_event)
            t1 = clock()
            proc(b"", 0, 0, wanted, on_event)
            t2 = clock()
            name = names[etype] or str(etype)
            per.setdefault(name, []).append(t1 - t0)
            paired.setdefault(name, []).append(t2 - t1)
    finally:
        gc.enable()
    insp.close()
    types = {name: (sum(v) - sum(paired[name])) / len(v) for name, v in per.items()}
    counts = {name: len(v) for name, v in per.items()}
    hits[0] = 0
    marg = marginal(capture, wanted, on_event, [t for t in (marginal_types or []) if t in counts], reps)
    import pyfalco._native as nat
    return {"batch_ns": batch_ns, "types": types, "counts": counts, "events": n, "alerts": alerts,
            "call_ns": base, "empty_ns": {name: sum(v) / len(v) for name, v in paired.items()},
            "marginal": marg, "lib": nat.lib.path, "agent_batch_ns": min(agent_ns), "trailed": trailed}


def _child(root: str, capture: str, rules: str, marginal_types: list[str], reps: int) -> dict:
    env = dict(os.environ)
    own = Path(root) / "build" / "libpyfalco" / "libpyfalco.so"
    if Path(root).resolve() != ROOT and own.is_file():
        env["PYFALCO_LIBRARY"] = str(own)      # the other checkout's own build
    elif "PYFALCO_LIBRARY" not in env:
        import pyfalco._native as nat
        env["PYFALCO_LIBRARY"] = nat.lib._name
    out = subprocess.run([sys.executable, __file__, "--_child", root, "--capture", capture, "--rules", rules,
                          "--marginal", ",".join(marginal_types), "--reps", str(reps)],
                         env=env, check=True, stdout=subprocess.PIPE).stdout
    return json.loads(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capture", action="append", type=str, help="capture file (repeatable)")
    ap.add_argument("--rules", default=str(DEFAULT_RULES))
    ap.add_argument("--runs", type=int, default=3, help="runs per checkout (the best is shown)")
    ap.add_argument("--compare", metavar="DIR", help="another checkout measured in the same run")
    ap.add_argument("--record", metavar="FILE", help="record an open-heavy live capture first")
    ap.add_argument("--seconds", type=float, default=1.0, help="length of the recorded workload")
    ap.add_argument("--min-count", type=int, default=40, help="types with fewer events are not shown")
    ap.add_argument("--marginal", default="openat,close",
                    help="types whose batch-marginal cost is measured (comma-separated; '' for none)")
    ap.add_argument("--reps", type=int, default=15, help="alternations of the batch-marginal measure")
    ap.add_argument("--_child", help=argparse.SUPPRESS)
    opts = ap.parse_args()
    if opts._child:
        sys.path.insert(0, opts._child)
        # an editable install's finder would import this checkout's pyfalco whatever sys.path says
        sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("_editable")]
        import pyfalco
        assert Path(pyfalco.__file__).resolve().parent == Path(opts._child).resolve() / "pyfalco", pyfalco.__file__
        print(json.dumps(measure(opts.capture[0], opts.rules, [t for t in opts.marginal.split(",") if t],
                                 opts.reps)))
        return 0
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE))
    from benchutil import machine
    if opts.record:
        print(f"recorded {record(opts.record, opts.seconds)} events in {opts.record}", file=sys.stderr)
    captures = opts.capture or ([opts.record] if opts.record else [str(p) for p in DEFAULT_CAPTURES])
    roots = [("this tree", str(ROOT))] + ([("compare", str(Path(opts.compare).resolve()))] if opts.compare else [])
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f}")
    for capture in captures:
        runs: dict[str, list[dict]] = {label: [] for label, _ in roots}
        for i in range(opts.runs):   # interleaved, order alternating, so a change of load hits both alike
            for label, root in (roots if i % 2 == 0 else roots[::-1]):
                runs[label].append(_child(root, capture, opts.rules, [t for t in opts.marginal.split(",") if t],
                                          opts.reps))
        first = runs["this tree"][0]
        print(f"\ncapture: {Path(capture).name}: {first['events']} events, {first['alerts']} rule hits"
              + ("" if not opts.compare else
                 f" (compare: {runs['compare'][0]['alerts']})"))
        cols = [label for label, _ in roots][::-1]
        print("| event type | events | " + " | ".join(f"{c} ns/event" for c in cols)
              + (" | ratio |" if opts.compare else " |"))
        print("|---|---:|" + "---:|" * len(cols) + ("---:|" if opts.compare else ""))
        shown = [t for t, c in sorted(first["counts"].items(), key=lambda kv: -kv[1]) if c >= opts.min_count]
        shown = [t for t in HOT if t in shown] + [t for t in shown if t not in HOT]
        # the best run of each: other load on the machine only ever adds time
        rows = [(t, first["counts"][t], {c: min(r["types"].get(t, 0.0) for r in runs[c]) for c in cols})
                for t in shown]
        rows.append(("all (batches)", first["events"], {c: min(r["batch_ns"] for r in runs[c]) for c in cols}))
        rows.append(("all (batches as the live agent reads them)", first["events"],
                     {c: min(r["agent_batch_ns"] for r in runs[c]) for c in cols}))
        for t, count, vals in rows:
            line = f"| {t} | {count} | " + " | ".join(f"{vals[c]:,.0f}" for c in cols)
            if opts.compare:
                line += f" | {vals['compare'] / max(vals['this tree'], 1):.2f}x"
            print(line + " |")
        marg = [t for t in shown if t in first.get("marginal", {})]
        if marg:
            print(f"\nbatch-marginal (the batches with / without that type's entries: median of the paired "
                  f"differences over all {opts.reps} x {opts.runs} alternations; 25th..75th percentile):")
            print("| event type | removed | " + " | ".join(f"{c} ns/event (p25..p75)" for c in cols)
                  + (" | ratio |" if opts.compare else " |"))
            print("|---|---:|" + "---:|" * len(cols) + ("---:|" if opts.compare else ""))
            for t in marg:
                spread = {c: sorted(x for r in runs[c] for x in r["marginal"][t]["spread"]) for c in cols}
                vals = {c: spread[c][len(spread[c]) // 2] for c in cols}
                line = f"| {t} | {first['marginal'][t]['removed']} | " + " | ".join(
                    f"{vals[c]:,.0f} ({spread[c][len(spread[c]) // 4]:,.0f}..{spread[c][3 * len(spread[c]) // 4]:,.0f})"
                    for c in cols)
                if opts.compare:
                    line += f" | {vals['compare'] / max(vals['this tree'], 1):.2f}x"
                print(line + " |")
        for c in cols:
            print(f"{c}: libpyfalco {runs[c][0].get('lib', '?')}; close trailers: "
                  f"{'yes' if runs[c][0].get('trailed') else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
