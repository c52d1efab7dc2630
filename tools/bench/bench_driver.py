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
while a consumer on CPU 1 drains the rings. With ``--before LIB`` the default selection (and the
filter column) also run with another libpyfalco build (its embedded driver) in the same rounds:
before/after in one run. Each capture runs in a child process (so two builds can alternate);
``--before-tree DIR`` runs the before build's children with DIR's Python tree and DIR's copy of
this script (a checkout of the older commit, e.g. a ``git worktree``: its kernel filter spec must
be the one its driver reads), without the editable install's import hook. ``--extra LABEL=LIB``
(repeatable) adds the same two columns for more builds, e.g. the diagnostic ones of
driver/CMakeLists.txt's PYFALCO_BPF_ABLATE (``empty``: the tracepoint alone; ``nohold``: the filter
drops without holding), which show what each part of the driver's cost is.
Every figure is the best of the rounds (load from other processes only adds time) and the
median is printed beside it; the load average before and after and any other program attached
to sys_exit (another capture adds its cost to every column, the "no capture" one included) are
printed with the table. ``--prog-time`` also reports the driver's own time per loop iteration
(``kernel.bpf_stats_enabled=1`` for the run: the sys_exit program's ``run_time_ns`` summed over its
tail calls, taken around each loop and divided by its iterations; steadier than the loop's wall
time, and free of the tracepoint's own cost: what a change inside the program moves). Then the drain rate of libpyfalco alone (batches, no decoding) and of
the Python iterator (events split and their type read).

usage: bench_driver.py [--rounds 5] [--n 1000000] [--before LIB [--before-tree DIR]] [--no-bpftrace]
                       [--no-filter] [--chunk N] [--extra LABEL=LIB ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sysconfig
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
PROG = "pf_sys_exit"  # the capture's sys_exit program (--prog-time)
PROG_TIME = False  # --prog-time: the children report the program's run time per iteration
CHUNK = 0  # --chunk: syscall_loop reports its fastest chunk of this many iterations (0: the whole run)


def build_loop() -> str:
    out = Path(tempfile.mkdtemp()) / "syscall_loop"
    subprocess.run(["cc", "-O2", "-o", str(out), str(Path(__file__).with_name("syscall_loop.c"))], check=True)
    return str(out)


def run_loop(binary: str, what: str, n: int) -> float:
    out = subprocess.run(["taskset", "-c", "0", binary, what, str(n), str(CHUNK)], check=True,
                         capture_output=True, text=True).stdout
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


def other_sys_exit_programs() -> list[str]:
    """Programs already attached to the syscall-exit tracepoint (other captures, other tools)."""
    out = subprocess.run(["bpftool", "-j", "link", "show"], capture_output=True, text=True).stdout
    try:
        links = json.loads(out or "[]")
    except ValueError:
        return []
    names = {}
    progs = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True).stdout
    try:
        names = {p["id"]: p.get("name", "?") for p in json.loads(progs or "[]")}
    except ValueError:
        pass
    out = [names.get(link.get("prog_id"), "?") for link in links
           if link.get("tp_name") in ("sys_exit", "sys_enter") or link.get("attach_btf_name") in ("sys_exit", "sys_enter")]
    # tracepoints attached through perf events (bpftrace's) are no BPF links
    perf = subprocess.run(["bpftool", "-j", "perf", "show"], capture_output=True, text=True).stdout
    try:
        out += [names.get(e.get("prog_id"), "?") for e in json.loads(perf or "[]")
                if e.get("tracepoint") in ("sys_exit", "sys_enter")]
    except ValueError:
        pass
    return out


def prog_run_time() -> int:
    """run_time_ns of this machine's programs named PROG (bpf_stats must be on)."""
    out = subprocess.run(["bpftool", "-j", "prog", "show", "name", PROG], capture_output=True, text=True).stdout
    try:
        progs = json.loads(out or "[]")
    except ValueError:
        return 0
    if isinstance(progs, dict):
        progs = [progs]
    return sum(p.get("run_time_ns", 0) for p in progs)


def bpf_stats(on: bool) -> bool:
    """Sets kernel.bpf_stats_enabled; returns its previous value."""
    path = Path("/proc/sys/kernel/bpf_stats_enabled")
    old = path.read_text().strip() == "1"
    path.write_text("1" if on else "0")
    return old


def measure_child(binary: str, mode: str, n: int, lib: str | None, tree: str | None = None) -> dict[str, float]:
    """One capture mode in a child process, with libpyfalco lib (None: this process's choice) and
    the Python tree of tree (None: this one)."""
    env = dict(os.environ)
    if lib:
        env["PYFALCO_LIBRARY"] = lib
    cmd = [sys.executable, __file__]
    if tree:
        # -S: no .pth files, so the editable install's hook does not map pyfalco to this
        # checkout; the dependencies come from site-packages on PYTHONPATH
        env["PYTHONPATH"] = os.pathsep.join([tree, sysconfig.get_paths()["purelib"]])
        cmd = [sys.executable, "-S", str(Path(tree) / "tools" / "bench" / "bench_driver.py")]
    out = subprocess.run(cmd + ["--child", mode, "--loop", binary, "--n", str(n),
                                "--chunk", str(CHUNK)] + (["--prog-time"] if PROG_TIME else []), env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(binary: str, mode: str, n: int, kf=None) -> dict[str, float]:
    if mode == "none":
        return {w: run_loop(binary, w, n) for w in LOOPS}
    if mode == "bpftrace":
        before = len(other_sys_exit_programs())
        log = tempfile.TemporaryFile()
        p = subprocess.Popen(["bpftrace", "-e", BPFTRACE_COUNTER], stdout=log, stderr=subprocess.STDOUT)
        try:
            # attached once its program is on sys_enter (its "Attaching 1 probe..." line may sit in
            # a pipe's buffer until it exits)
            deadline = time.monotonic() + 120
            while len(other_sys_exit_programs()) <= before:
                if p.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise SystemExit(f"bpftrace did not start: {log.read().decode(errors='replace')[-500:]}")
                time.sleep(0.2)
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
            res = {}
            for w in LOOPS:
                t0 = prog_run_time() if PROG_TIME else 0
                res[w] = run_loop(binary, w, n)
                if PROG_TIME:
                    res["_prog_" + w] = (prog_run_time() - t0) / n
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
    ap.add_argument("--before", metavar="LIB", help="another libpyfalco.so: its default selection and filter "
                    "columns run in the same rounds")
    ap.add_argument("--before-tree", metavar="DIR", help="the --before build's checkout: its Python tree "
                    "and bench script run the before children")
    ap.add_argument("--no-filter", action="store_true", help="leave out the kernel filter column")
    ap.add_argument("--chunk", type=int, default=0, help="time chunks of this many iterations and keep the "
                    "fastest (a shared machine: chunks the scheduler did not interrupt); 0: the whole loop")
    ap.add_argument("--extra", action="append", default=[], metavar="LABEL=LIB",
                    help="another build's default selection and filter columns, labelled LABEL (repeatable)")
    ap.add_argument("--prog-time", action="store_true", help="also the driver program's own ns per iteration "
                    "(bpf_stats on for the run)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--loop", help=argparse.SUPPRESS)
    opts = ap.parse_args()
    global CHUNK, PROG_TIME
    CHUNK = opts.chunk
    PROG_TIME = opts.prog_time
    binary = opts.loop or build_loop()
    if opts.child:
        res = measure(binary, opts.child, opts.n, stable_filter() if opts.child == "filtered" else None)
        print(json.dumps(res))
        return 0
    modes = ["none", "default", "all"] + ([] if opts.no_filter else ["filtered"])
    libs = {m: None for m in modes}
    if opts.before:
        for m in ["default"] + ([] if opts.no_filter else ["filtered"]):
            modes.append("before " + m)
            libs["before " + m] = os.path.abspath(opts.before)
    extra_cols = {}
    for spec in opts.extra:
        label, sep, lib = spec.partition("=")
        if not sep or not label or not lib:
            ap.error(f"--extra {spec!r}: expected LABEL=LIB")
        for m in ["default"] + ([] if opts.no_filter else ["filtered"]):
            key = f"{label}: {m}"
            modes.append(key)
            libs[key] = os.path.abspath(lib)
            extra_cols[key] = f"{m if m == 'default' else 'default + kernel filter'}, {label} build"
    if not opts.no_bpftrace:
        ensure_tracefs()
        modes.append("bpftrace")
    others = other_sys_exit_programs()
    stats_were = bpf_stats(True) if opts.prog_time else None
    load0 = os.getloadavg()
    rounds: dict[str, list[dict]] = {m: [] for m in modes}
    for _ in range(opts.rounds):
        for m in modes:
            if m in ("none", "bpftrace"):
                rounds[m].append(measure(binary, m, opts.n))
            else:
                rounds[m].append(measure_child(binary, m.replace("before ", "").rpartition(": ")[2], opts.n,
                                               libs[m], opts.before_tree if m.startswith("before ") else None))
    load1 = os.getloadavg()
    if opts.prog_time:
        bpf_stats(stats_were)
    best = {m: {w: min(r[w] for r in rounds[m]) for w in LOOPS} for m in modes}
    med = {m: {w: statistics.median(r[w] for r in rounds[m]) for w in LOOPS} for m in modes}
    drops = {m: sum(r.get("_drops", 0) for r in rounds[m]) for m in modes}
    rates = {} if opts.no_drain_rates else drain_rates(binary, min(opts.n, 2_000_000))
    cols = {"default": "default selection", "all": "all selected", "filtered": "default + kernel filter (stable rules)",
            "before default": "default selection, --before build",
            "before filtered": "default + kernel filter, --before build",
            "bpftrace": "bpftrace counter", **extra_cols}
    shown = [m for m in modes if m != "none"]
    lines = [f"Machine: {machine()}",
             f"Rounds: {opts.rounds} x {opts.n} iterations"
             + (f" (fastest chunk of {opts.chunk})" if opts.chunk else "") +
             ", interleaved; best of the rounds (median in parentheses); loop on CPU 0, consumer on CPU 1",
             f"Load average (1/5/15 min): {' '.join(f'{x:.2f}' for x in load0)} before, "
             f"{' '.join(f'{x:.2f}' for x in load1)} after",
             "Other programs on sys_enter/sys_exit during the run: " + (", ".join(others) or "none"), "",
             "| loop | no capture (ns) | " + " | ".join(f"{cols[m]} (+ns)" for m in shown) + " |",
             "|---|---|" + "---|" * len(shown)]
    for w in LOOPS:
        base, mbase = best["none"][w], med["none"][w]
        lines.append(f"| {w} | {base:.0f} ({mbase:.0f}) | " +
                     " | ".join(f"{best[m][w] - base:+.0f} ({med[m][w] - mbase:+.0f})" for m in shown) + " |")
    if "bpftrace" in modes:
        lines.append("")
        for w in LOOPS:
            ref = best["bpftrace"][w] - best["none"][w]
            lines.append(f"Added cost / bpftrace counter's, {w}: " + ", ".join(
                f"{cols[m]} {(best[m][w] - best['none'][w]) / ref:.2f}x" for m in shown if m != "bpftrace"))
    if opts.prog_time:
        lines += ["", f"The driver program's own time ({PROG}, bpf_stats run_time_ns) per loop iteration, ns: "
                  "best of the rounds (median)", "",
                  "| loop | " + " | ".join(cols[m] for m in shown if m != "bpftrace") + " |",
                  "|---|" + "---|" * len([m for m in shown if m != "bpftrace"])]
        for w in LOOPS:
            vals = {m: [r["_prog_" + w] for r in rounds[m]] for m in shown if m != "bpftrace"}
            lines.append(f"| {w} | " + " | ".join(f"{min(v):.1f} ({statistics.median(v):.1f})"
                                                   for v in vals.values()) + " |")
    lines.append("")
    lines.append("Ring-buffer drops during the loops: " + ", ".join(f"{m} {drops[m]}" for m in shown if m != "bpftrace"))
    for m in ("filtered", "before filtered", *(k for k in extra_cols if k.endswith("filtered"))):
        if m in modes:
            lines.append(f"Opens dropped in the kernel by the filter ({cols[m]}): "
                         f"{sum(r.get('_kf', 0) for r in rounds[m]):,}")
    lines.append("")
    for k, v in rates.items():
        lines.append(f"Drain rate, {k}: {v / 1e6:.2f} M events/s")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
