#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Per-syscall cost of the eBPF driver, and how fast events can be drained (not a test).

Side by side in one run, rounds interleaved, median of the rounds: a C loop (tools/bench/
syscall_loop.c) of getppid / close(-1) / openat+close / read(1 B) pinned to CPU 0, with
  * no capture,
  * the driver attached with the default selection (getppid, read are not selected: the cost
    of a syscall nobody asked for),
  * the driver attached with every decodable syscall selected,
  * the default selection with the kernel-side filter Falco's stable rules give (pyfalco/
    kfilter.py: the loop's openat of /dev/null and its close are dropped in the kernel),
  * bpftrace's simplest counter (``tracepoint:raw_syscalls:sys_enter { @c = count(); }``,
    Debian's bpftrace; tracefs is mounted at /sys/kernel/tracing first when it is not),
while a consumer on CPU 1 drains the rings. Then the drain rate of libpyfalco alone (batches,
no decoding) and of the Python iterator (events split and their type read).

usage: bench_driver.py [--rounds 5] [--n 1000000] [--markdown] [--no-bpftrace]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchutil import machine  # tools/bench is the script's directory

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pyfalco  # noqa: E402
from pyfalco import _schema  # noqa: E402
from pyfalco.capture import DEFAULT_SYSCALLS  # noqa: E402

ALL = sorted(_schema.SYSCALL_NAMES[n] for n in _schema.DRIVER_SYSCALLS)
STABLE_RULES = Path(__file__).resolve().parents[3] / "shared" / "rules" / "falco_rules.yaml"
BPFTRACE_COUNTER = "tracepoint:raw_syscalls:sys_enter { @c = count(); }"
LOOPS = ("getppid", "close", "openat", "read")


def build_loop() -> str:
    out = Path(tempfile.mkdtemp()) / "syscall_loop"
    subprocess.run(["cc", "-O2", "-o", str(out), str(Path(__file__).with_name("syscall_loop.c"))], check=True)
    return str(out)


def run_loop(binary: str, what: str, n: int) -> float:
    out = subprocess.run(["taskset", "-c", "0", binary, what, str(n)], check=True, capture_output=True,
                         text=True).stdout
    return float(out)


class Drain(threading.Thread):
    """Consumer on CPU 1: empties the rings while the loop runs."""

    def __init__(self, cap):
        super().__init__(daemon=True)
        self.cap = cap
        self.stop = False
        self.events = 0

    def run(self):
        os.sched_setaffinity(0, {1})
        while not self.stop:
            self.events += len(self.cap.next_batch(10))


def ensure_tracefs() -> None:
    """bpftrace needs tracefs at /sys/kernel/tracing (not mounted on every VM)."""
    if not os.path.exists("/sys/kernel/tracing/events"):
        subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"], check=True)


def stable_filter():
    from pyfalco import kfilter
    from pyfalco.rules import load_rules
    return kfilter.derive(load_rules(str(STABLE_RULES)).ruleset, syscalls=DEFAULT_SYSCALLS)


def measure(binary: str, mode: str, n: int, kf=None) -> dict[str, float]:
    if mode == "none":
        return {w: run_loop(binary, w, n) for w in LOOPS}
    if mode == "bpftrace":
        p = subprocess.Popen(["bpftrace", "-e", BPFTRACE_COUNTER], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
        try:
            seen = []
            while True:      # "Attaching 1 probe..." once it is attached (after a memlock warning here)
                line = p.stdout.readline()
                seen.append(line.strip())
                if "Attaching" in line:
                    break
                if not line:
                    raise SystemExit(f"bpftrace did not start: {' / '.join(seen)}")
            time.sleep(0.5)
            return {w: run_loop(binary, w, n) for w in LOOPS}
        finally:
            p.terminate()
            p.wait()
    syscalls = ALL if mode == "all" else DEFAULT_SYSCALLS
    with pyfalco.Capture(syscalls=syscalls) as cap:
        if mode == "filtered":
            cap.set_kernel_filter(kf)
        d = Drain(cap)
        d.start()
        try:
            res = {w: run_loop(binary, w, n) for w in LOOPS}
        finally:
            d.stop = True
            d.join()
        res["_drops"] = cap.stats()["n_drops_buffer"]
        if mode == "filtered":
            res["_kf"] = cap.kernel_filter_stats()["opens"]
    return res


def drain_rates(binary: str, n: int) -> dict[str, float]:
    """Events/s drained: libpyfalco batches only, then the Python iterator."""
    out = {}
    for label in ("libpyfalco batches", "Python iterator"):
        with pyfalco.Capture(syscalls=["close"], buffer_bytes=256 << 20) as cap:
            run_loop(binary, "close", n)  # fill the ring first: the drain alone is timed
            t0 = time.perf_counter()
            got = 0
            if label == "libpyfalco batches":
                import ctypes
                from pyfalco import _native
                lib, h = _native.lib, cap._h()
                used, cnt = ctypes.c_size_t(), ctypes.c_uint32()
                while lib.pyfalco_capture_next_batch(h, cap._buf, len(cap._buf), 1 << 20, 0, ctypes.byref(used),
                                                     ctypes.byref(cnt)) == 0:
                    got += cnt.value
            else:
                while True:
                    batch = cap.next_batch(0)
                    if not batch:
                        break
                    for e in batch:
                        if e.type == 5:
                            got += 1
            dt = time.perf_counter() - t0
            out[label] = got / dt
    return out



def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--no-bpftrace", action="store_true", help="leave out bpftrace's counter")
    ap.add_argument("--no-drain-rates", action="store_true")
    opts = ap.parse_args()
    binary = build_loop()
    modes = ["none", "default", "all", "filtered"]
    if not opts.no_bpftrace:
        ensure_tracefs()
        modes.append("bpftrace")
    kf = stable_filter()
    rounds: dict[str, list[dict]] = {m: [] for m in modes}
    for _ in range(opts.rounds):
        for m in modes:
            rounds[m].append(measure(binary, m, opts.n, kf))
    med = {m: {w: statistics.median(r[w] for r in rounds[m]) for w in LOOPS} for m in modes}
    drops = {m: sum(r.get("_drops", 0) for r in rounds[m]) for m in modes}
    rates = {} if opts.no_drain_rates else drain_rates(binary, min(opts.n, 2_000_000))
    cols = {"default": "default selection", "all": "all selected", "filtered": "default + kernel filter (stable rules)",
            "bpftrace": "bpftrace counter"}
    shown = [m for m in modes if m != "none"]
    lines = [f"Machine: {machine()}", f"Rounds: {opts.rounds} x {opts.n} iterations, median; loop on CPU 0, "
             "consumer on CPU 1", "",
             "| loop | no capture (ns) | " + " | ".join(f"{cols[m]} (+ns)" for m in shown) + " |",
             "|---|---|" + "---|" * len(shown)]
    for w in LOOPS:
        base = med["none"][w]
        lines.append(f"| {w} | {base:.0f} | " + " | ".join(f"{med[m][w] - base:+.0f}" for m in shown) + " |")
    lines.append("")
    lines.append("Ring-buffer drops during the loops: " + ", ".join(f"{m} {drops[m]}" for m in shown if m != "bpftrace"))
    lines.append(f"Opens dropped in the kernel by the filter: {sum(r.get('_kf', 0) for r in rounds['filtered']):,}")
    lines.append("")
    for k, v in rates.items():
        lines.append(f"Drain rate, {k}: {v / 1e6:.2f} M events/s")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
