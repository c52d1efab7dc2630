#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Per-syscall overhead in the guest kernel: no capture, the pyfalco module, the pyfalco eBPF
driver, and Falco's 2022 module (scap.ko, built by Debian's falcosecurity-scap-dkms), side by
side in one boot (not a test; numbers go to docs/performance.md).

Runs inside the guest (tools/kmod/guest.py), as root, with the module built:
    tools/kmod/guest.py --timeout 1500 -- python3 tools/kmod/bench_kmod.py --ko build/kmod-guest/ko/<api version>/<kver>/pyfalco.ko

The loops are tools/bench/syscall_loop.c pinned to CPU 0; each driver's consumer drains on
CPU 1 (pyfalco: the Python consumer of bench_driver.py, every decodable syscall selected;
scap.ko: tools/kmod/scap_drain.c, which moves the tail without reading, every event enabled by
default). Rounds interleave the modes; the median is reported. Under TCG emulation absolute
times mean little: compare the rows of one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools" / "bench"))

import pyfalco  # noqa: E402
from bench_driver import ALL, LOOPS, Drain, build_loop, run_loop  # noqa: E402


def scap_ko() -> Path:
    found = sorted(Path("/lib/modules", os.uname().release).glob("updates/dkms/scap.ko*"))
    if not found:
        raise SystemExit("no scap.ko: apt-get install falcosecurity-scap-dkms (tools/setup does)")
    return found[0]


def measure(binary: str, mode: str, n: int, drainer: str) -> dict:
    if mode == "none":
        return {w: run_loop(binary, w, n) for w in LOOPS}
    if mode == "scap":
        proc = subprocess.Popen(["taskset", "-c", "1", drainer], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        try:
            res = {w: run_loop(binary, w, n) for w in LOOPS}
        finally:
            proc.terminate()
            out = proc.communicate(timeout=30)[0].split()
        res["_evts"], res["_drops"] = int(out[0]), int(out[1])
        return res
    with pyfalco.Capture(engine=mode, syscalls=ALL) as cap:
        d = Drain(cap)
        d.start()
        try:
            res = {w: run_loop(binary, w, n) for w in LOOPS}
        finally:
            d.stop = True
            d.join()
        st = cap.stats()
        res["_evts"], res["_drops"] = st["n_evts"], st["n_drops_buffer"]
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ko", required=True, help="the built pyfalco.ko")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=100_000)
    opts = ap.parse_args()
    binary = build_loop()
    drainer = str(Path(tempfile.mkdtemp()) / "scap_drain")
    subprocess.run(["cc", "-O2", "-o", drainer, str(Path(__file__).with_name("scap_drain.c"))], check=True)
    subprocess.run(["insmod", opts.ko], check=True)
    subprocess.run(["insmod", str(scap_ko())], check=True)
    modes = ("none", "kmod", "modern_ebpf", "scap")
    rounds: dict[str, list[dict]] = {m: [] for m in modes}
    t0 = time.monotonic()
    for _ in range(opts.rounds):
        for m in modes:
            rounds[m].append(measure(binary, m, opts.n, drainer))
    med = {m: {w: statistics.median(r[w] for r in rounds[m]) for w in LOOPS} for m in modes}
    names = {"kmod": "pyfalco kmod", "modern_ebpf": "pyfalco eBPF", "scap": "Falco 2022 scap.ko"}
    lines = [f"Guest: kernel {os.uname().release}, {os.cpu_count()} vCPUs (qemu TCG); {opts.rounds} rounds x "
             f"{opts.n} iterations, median; loop on CPU 0, consumer on CPU 1; {time.monotonic() - t0:.0f} s", "",
             "| loop | no capture (ns) | " + " | ".join(f"{names[m]} (+ns)" for m in modes[1:]) + " |",
             "|---|---|" + "---|" * (len(modes) - 1)]
    for w in LOOPS:
        base = med["none"][w]
        lines.append(f"| {w} | {base:.0f} | " + " | ".join(f"{med[m][w] - base:+.0f}" for m in modes[1:]) + " |")
    lines.append("")
    for m in modes[1:]:
        ev = sum(r["_evts"] for r in rounds[m])
        dr = sum(r["_drops"] for r in rounds[m])
        lines.append(f"{names[m]}: {ev} events written, {dr} dropped (ring full) over all rounds")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
