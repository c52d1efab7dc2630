#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Replay throughput of a capture file: pyfalco's replay engine side by side with `sysdig -r`.

The largest shared capture (inspect_502Error.scap, 22381 records) reads in a few tens of
milliseconds, so the file is concatenated --repeat times (a concatenated capture is a valid
capture for both readers) and each measure takes the best of --runs runs.

Rates are given per file record (what both readers decode: sysdig shows enter and exit events
apart) and per event handed out (pyfalco's exit-only events; sysdig's printed lines).

    PYFALCO_LIBRARY=build-replay/libpyfalco/libpyfalco.so python3 tools/bench/bench_replay.py
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchutil import machine  # tools/bench is the script's directory

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
if "PYFALCO_LIBRARY" not in os.environ:
    cand = ROOT / "build-replay" / "libpyfalco" / "libpyfalco.so"
    if cand.is_file():
        os.environ["PYFALCO_LIBRARY"] = str(cand)

DEFAULT_CAPTURE = ROOT.parent / "shared" / "captures" / "inspect_502Error.scap"
STABLE_RULES = ROOT.parent / "shared" / "rules" / "falco_rules.yaml"
SYSDIG_FILTER = "evt.type=open and fd.name startswith /etc"


def best(fn, runs: int) -> tuple[float, int]:
    """(best wall time, the count fn returned)."""
    out, n = None, 0
    for _ in range(runs):
        t0 = time.perf_counter()
        n = fn()
        dt = time.perf_counter() - t0
        out = dt if out is None else min(out, dt)
    return out, n



def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capture", type=Path, default=DEFAULT_CAPTURE)
    ap.add_argument("--repeat", type=int, default=20, help="copies of the capture concatenated")
    ap.add_argument("--runs", type=int, default=3)
    opts = ap.parse_args()

    from pyfalco.scap._native_scap import Replay

    src = opts.capture.read_bytes()
    if src[:2] == b"\x1f\x8b":
        import gzip
        src = gzip.decompress(src)
    tmp = Path(tempfile.mkdtemp(prefix="bench_replay."))
    path = tmp / "bench.scap"
    path.write_bytes(src * opts.repeat)
    rows = []

    def c_engine() -> int:
        n = 0
        with Replay(str(path)) as rp:
            for _buf, _used, k in rp.batches(buflen=4 << 20, max_events=1 << 16):
                n += k
            c_engine.records = rp.stats()["n_evts"]
        return n

    t, n = best(c_engine, opts.runs)
    records = c_engine.records
    rows.append(("pyfalco: replay engine, batches, no decode (C + ctypes)", t, n))

    try:
        import pyfalco
        Capture = pyfalco.Capture
    except Exception as err:  # the event layer is optional for this benchmark
        print(f"pyfalco.Capture unavailable ({err}); skipping the Python event rows", file=sys.stderr)
        Capture = None
    if Capture is not None:
        def py_events() -> int:
            n = 0
            with Capture(engine="replay", capture_file=str(path)) as cap:
                for _e in cap:
                    n += 1
            return n

        def py_filter() -> int:
            n = 0
            with Capture(engine="replay", capture_file=str(path)) as cap:
                for e in cap:
                    if e.name == "open":
                        name = e.get("name")
                        if name and str(name).startswith("/etc"):
                            n += 1
            return n

        t, n = best(py_events, opts.runs)
        rows.append(("pyfalco: pyfalco.Capture -> Event objects, no rules", t, n))
        t, n2 = best(py_filter, opts.runs)
        rows.append(("pyfalco: same + Python filter `open` under /etc", t, n2))

    sysdig = shutil.which("sysdig")
    if sysdig:
        def run_sysdig(*filt) -> int:
            r = subprocess.run([sysdig, "-r", str(path), *filt], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            if r.returncode:
                raise SystemExit(f"sysdig failed with status {r.returncode}")
            return r.stdout.count(b"\n")

        t, n = best(run_sysdig, opts.runs)
        rows.append(("sysdig 0.29 -r FILE (default output to a pipe)", t, n))
        t, n = best(lambda: run_sysdig(SYSDIG_FILTER), opts.runs)
        rows.append((f"sysdig 0.29 -r FILE '{SYSDIG_FILTER}'", t, n))

    print(f"capture: {opts.capture.name} x {opts.repeat} = {records} records, {len(src) * opts.repeat / 1e6:.1f} MB")
    print(f"machine: {machine()}")
    print()
    print("| reader | time (s) | records/s | events out | events out/s |")
    print("|---|---:|---:|---:|---:|")
    for name, t, n in rows:
        print(f"| {name} | {t:.3f} | {records / t:,.0f} | {n:,} | {n / t:,.0f} |")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
