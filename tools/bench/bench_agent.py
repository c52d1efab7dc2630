#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End-to-end throughput of the agent path (capture -> Inspector -> rules -> alert formatting).

Two parts, CPython and PyPy side by side (each measure runs in a child process of the
interpreter being measured):

* ``replay``: a capture file through ``pyfalco.agent.Agent`` (replay engine, state engine,
  compiled rules, alerts formatted into the stdout output, written to a counting sink) with the
  default rules (rules/pyfalco_rules.yaml) and Falco's stable rules (../shared/rules/
  falco_rules.yaml), next to ``sysdig -r FILE`` (default output to a pipe) and ``sysdig -r FILE
  FILTER`` where FILTER is the stable rules' conditions (macros and lists expanded, exceptions
  appended) or-ed into one sysdig filter, with the few fields sysdig 0.29 lacks replaced by
  fields of the same cost (fd.nameraw -> fd.name, ...): the same rules, evaluated by sysdig's C++
  filter engine. Each row is the best of --runs (PyPy: the best after its warm-up runs; the first
  run is shown too). Times are the child's CPU time (user+sys, the machine is shared: wall time
  also counts other tenants' load).
* ``live``: the agent on the eBPF engine (default rules, default configuration) pinned to CPU 1,
  a rate-limited C load (tools/bench/loadgen.c: openat+close of /dev/null, or a mix with UDP
  connects, file opens and fork+exec) pinned to CPU 0, at each --rates target; reports the
  captured rate (n_evts + n_drops_buffer over the load's duration), ring-buffer drops and the
  agent's peak RSS; with the kernel-side filter off and on (``--kernel-filter``), and what the
  filter dropped in the kernel. A probe process opens /etc/shadow every 10 ms during each point
  (an alert with both rule sets): p50/p99 of its alerts' latency, from the syscall's timestamp
  to the alert line reaching the stdout output's stream (the output queue included).

usage: bench_agent.py replay|live|all [--runs 3] [--rates 100000,250000,500000,700000] ...
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchutil import machine  # tools/bench is the script's directory

ROOT = Path(__file__).resolve().parents[2]
# the pyfalco package measured: this checkout, or --baseline's tree in its children
sys.path.insert(0, os.environ.get("PYFALCO_BENCH_TREE") or str(ROOT))
# measure the checkout this script is in, not the one an editable install points at
for _finder in list(sys.meta_path):
    if type(_finder).__module__.startswith("_editable"):
        sys.meta_path.remove(_finder)

DEFAULT_RULES = ROOT / "rules" / "pyfalco_rules.yaml"
STABLE_RULES = ROOT.parent / "shared" / "rules" / "falco_rules.yaml"
DEFAULT_CAPTURE = ROOT.parent / "shared" / "captures" / "inspect_502Error.scap"
CONFIG = ROOT / "deploy" / "pyfalco.yaml"
CPYTHON = ROOT / ".venv" / "bin" / "python"
PYPY = ROOT / ".venv-pypy" / "bin" / "python"
QUIET = ["webserver.enabled=false", "syslog_output.enabled=false", "log_syslog=false", "watch_config_files=false",
         "log_level=error", "stdout_output.enabled=true", "config_files=[]"]


# ---- helpers shared by parent and children ---------------------------------------------------

class CountingSink:
    """The stdout output's stream: counts alert lines, keeps nothing. With ``latencies`` (a list)
    it also records, per alert line, now minus the alert's event time (the ISO 8601 prefix the
    agent writes with time_format_iso_8601): syscall-to-alert latency, the output queue included."""

    def __init__(self, latencies: list | None = None):
        self.lines = 0
        self.bytes = 0
        self.latencies = latencies

    def write(self, data) -> int:
        self.lines += data.count(b"\n")
        self.bytes += len(data)
        if self.latencies is not None:
            now = time.time_ns()
            for line in bytes(data).splitlines():
                ts = _iso_ns(line[:35])
                if ts:
                    self.latencies.append(now - ts)
        return len(data)

    def flush(self) -> None:
        pass


def _iso_ns(prefix: bytes) -> int:
    """``YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+hhmm`` -> ns since the epoch (0 when it is not one)."""
    import datetime as _dt
    try:
        text = prefix.decode()
        base = _dt.datetime.strptime(text[:19] + text[29:34], "%Y-%m-%dT%H:%M:%S%z")
        return int(base.timestamp()) * 1_000_000_000 + int(text[20:29])
    except (ValueError, UnicodeDecodeError):
        return 0


# a process that opens a sensitive file every 10 ms: an alert with the default and the stable rules
PROBE = "import os, time\nwhile True:\n    os.close(os.open('/etc/shadow', os.O_RDONLY)); time.sleep(0.01)\n"


def _pct(values: list, q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] / 1e6


def rss_kb() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in KiB."""
    rss = hwm = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def cpu_time() -> float:
    # the process's CPU time in ns steps (os.times counts 10 ms ticks)
    return time.process_time()



def make_agent(rules: str, overrides: list[str], sink: CountingSink):
    import logging
    logging.basicConfig(level=logging.ERROR)
    from pyfalco.agent.config import load_config
    from pyfalco.agent.core import Agent
    cfg = load_config(str(CONFIG), QUIET + overrides)
    return Agent(cfg, rules_files=[rules], stdout_stream=sink)


# ---- children --------------------------------------------------------------------------------

def child_replay(rules: str, capture: str, runs: int, skip: bool = True) -> dict:
    out = []
    if not skip:        # the batch path without the capture-side skip (Inspector.batch_skip)
        from pyfalco.inspector import Inspector
        Inspector.skip_in_capture = False
    for _ in range(runs):
        sink = CountingSink()
        agent = make_agent(rules, ["engine.kind=replay", f"engine.replay.capture_file={capture}"], sink)
        agent.setup()
        c0, w0 = cpu_time(), time.perf_counter()
        agent._loop()
        cpu, wall = cpu_time() - c0, time.perf_counter() - w0
        n = agent.metrics.n_evts
        agent.close()
        out.append({"events": n, "cpu": cpu, "wall": wall, "alerts": sink.lines})
    import pyfalco
    return {"runs": out, "rss_kb": rss_kb(), "tree": str(Path(pyfalco.__file__).resolve().parents[1])}


def child_live(rules: str, rates: list[int], seconds: float, mix: str, loadgen: str, warmup: float,
               kernel_filter: str = "true") -> dict:
    """The agent on CPU 1 with the load on CPU 0, one load after the other at each rate."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})        # the parent runs us under taskset -c 1 as well (PyPy 3.9)
    lat: list = []
    sink = CountingSink(lat)
    agent = make_agent(rules, ["engine.kind=modern_ebpf", f"engine.modern_ebpf.kernel_filter={kernel_filter}",
                               "time_format_iso_8601=true"], sink)
    agent.setup()
    results = []
    state = {"i": 0, "done": False}

    def driver():
        time.sleep(warmup)
        def kstats():
            try:
                return agent.capture.kernel_filter_stats()
            except Exception:   # noqa: BLE001 - a library without the filter
                return {}
        for rate in rates:
            s0 = agent.capture.stats()
            k0 = kstats()
            c0, w0, a0 = cpu_time(), time.perf_counter(), sink.lines
            probe = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", PROBE])
            time.sleep(0.2)
            del lat[:]
            p = subprocess.run(["taskset", "-c", "0", loadgen, mix, str(rate), str(seconds)], capture_output=True,
                               text=True, check=True)
            probe.terminate()
            probe.wait()
            time.sleep(0.5)          # let the agent drain what is left
            lats = list(lat)
            s1 = agent.capture.stats()
            k1 = kstats()
            wall = time.perf_counter() - w0
            gen = dict(kv.split("=") for kv in p.stdout.split())
            d = {k: s1.get(k, 0) - s0.get(k, 0) for k in ("n_evts", "n_drops_buffer", "n_evts_delivered")}
            captured = d["n_evts"] + d["n_drops_buffer"]
            results.append({"target": rate, "loadgen_rate": float(gen["rate"]), "seconds": float(gen["seconds"]),
                            "captured": captured, "captured_rate": captured / float(gen["seconds"]),
                            "drops": d["n_drops_buffer"], "delivered": d["n_evts_delivered"],
                            "kernel_filtered": sum(k1.get(k, 0) - k0.get(k, 0) for k in ("opens", "closes")),
                            "agent_cpu": cpu_time() - c0, "wall": wall, "alerts": sink.lines - a0,
                            "lat_n": len(lats), "lat_p50": _pct(lats, 0.50), "lat_p99": _pct(lats, 0.99),
                            "rss_kb": rss_kb()})
            time.sleep(0.5)
        state["done"] = True
        agent.request_stop()

    th = threading.Thread(target=driver, daemon=True)
    th.start()
    agent._loop()
    th.join()
    agent.close()
    return {"points": results, "rss_kb": rss_kb()}


# ---- parent ----------------------------------------------------------------------------------

def interpreters(names: str) -> list[tuple[str, list[str], dict]]:
    """(label, command, environment) per interpreter; ``pypy`` runs with the GC settings the
    ``pyfalco`` command applies (pyfalco/pypygc.py), ``pypy-gc-default`` with PyPy's own ones."""
    out = []
    for name in names.split(","):
        if name == "cpython" and CPYTHON.exists():
            out.append(("CPython " + _version(CPYTHON), [str(CPYTHON)], {}))
        elif name in ("pypy", "pypy-gc-default") and PYPY.exists():
            import pyfalco._native as nat
            from pyfalco.pypygc import missing_settings
            env = {"PYTHONPATH": str(ROOT), "PYFALCO_LIBRARY": str(nat.lib.path)}
            label = "PyPy " + _version(PYPY)
            if name == "pypy":
                env.update(missing_settings())
                label += "".join(f" {k}={v}" for k, v in missing_settings().items())
            else:
                label += " (PyPy's GC defaults)"
            out.append((label, [str(PYPY)], env))
    return out


def _version(py: Path) -> str:
    return subprocess.run([str(py), "-c", "import platform,sys; print(platform.python_version() + "
                           "(' (PyPy %d.%d.%d)' % sys.pypy_version_info[:3] if hasattr(sys, 'pypy_version_info') else ''))"],
                          capture_output=True, text=True).stdout.strip()


def run_child(interp: list[str], env: dict, args: list[str], prefix: list[str] = ()) -> dict:
    # bytecode caches as an installed package has them (PYTHONDONTWRITEBYTECODE would recompile
    # every module at each start: slower and ~15 MB more RSS on CPython)
    cenv = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    r = subprocess.run(list(prefix) + interp + [__file__, "_child"] + args, capture_output=True, text=True,
                       env={**cenv, **env})
    if r.returncode:
        raise SystemExit(f"child {' '.join(args[:2])} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def sysdig_filter(rules: Path) -> str:
    """The stable rules as one sysdig 0.29 filter (see the module docstring)."""
    from pyfalco.agent import rulesload
    from pyfalco.agent.config import load_config
    from pyfalco.inspector import Inspector
    from pyfalco.rules.compiler import fold_constants
    from pyfalco.rules.nodes import to_text
    cfg = load_config(str(CONFIG), QUIET).data
    insp = Inspector(None)
    _, bundle = rulesload.load(cfg, insp.provider, [str(rules)])
    parts = ["(" + to_text(fold_constants(r.tree, insp.provider)) + ")" for r in bundle.ruleset.enabled_rules()]
    text = " or ".join(parts)
    for old, new in (("fd.nameraw", "fd.name"), ("proc.is_exe_from_memfd", "proc.is_exe_writable"),
                     ("proc.is_exe_upper_layer", "proc.is_exe_writable"), ("thread.cap_effective", "proc.pname")):
        text = text.replace(old, new)
    text = re.sub(r"\bproc\.pexe\b", "proc.pname", text)
    # sysdig 0.29's parser takes no escapes, parentheses or quotes inside quoted values
    text = re.sub(r'"((?:[^"\\]|\\.)*)"', lambda m: '"' + re.sub(r"[\\()'\"]", "", m.group(1)) + '"', text)
    return text


def timed_cmd(cmd: list[str], runs: int, check: bool = True) -> tuple[float, float, int] | None:
    """(best CPU time of the child, its wall time, output lines); None if it failed (check=False)."""
    best = None
    for _ in range(runs):
        w0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        lines = 0
        for chunk in iter(lambda: p.stdout.read(1 << 20), b""):
            lines += chunk.count(b"\n")
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = status
        wall = time.perf_counter() - w0
        if status:
            if not check:
                return None
            raise SystemExit(f"{cmd[0]} failed with status {status}")
        cpu = ru.ru_utime + ru.ru_stime
        if best is None or cpu < best[0]:
            best = (cpu, wall, lines)
    return best


def bench_replay(opts) -> list[str]:
    src = opts.capture.read_bytes()
    if src[:2] == b"\x1f\x8b":
        import gzip
        src = gzip.decompress(src)
    tmp = Path(tempfile.mkdtemp(prefix="bench_agent."))
    path = tmp / "bench.scap"
    path.write_bytes(src * opts.repeat)
    jobs = []       # (label, measure): every measure runs once per round, rounds alternate the order

    def agent_job(label: str, interp: list, env: dict, args: list, runs: int, tree: Path = ROOT):
        def measure():
            res = run_child(interp, env, args[:3] + [str(runs)] + args[3:])
            if Path(res["tree"]) != tree.resolve():
                raise SystemExit(f"{label}: measured the pyfalco of {res['tree']}, not of {tree}")
            first = res["runs"][0]
            best = min(res["runs"], key=lambda r: r["cpu"])
            return (label, best["cpu"], best["wall"], best["events"], best["alerts"], first["events"] / first["cpu"],
                    res["rss_kb"][1])
        jobs.append((label, measure))

    for label, interp, env in interpreters(opts.interpreters):
        runs = opts.runs if label.startswith("CPython") else opts.pypy_runs
        for rname, rules in (("default rules", DEFAULT_RULES), ("stable rules", STABLE_RULES)):
            agent_job(f"pyfalco agent, {label}, {rname}", interp, env, ["replay", str(rules), str(path)], runs)
        if opts.baseline and label.startswith("CPython"):
            # another checkout's pyfalco (e.g. `git archive COMMIT`), same library: -S keeps the
            # editable install's finder from picking this checkout
            import pyfalco._native as nat
            import sysconfig
            benv = {"PYTHONPATH": f"{opts.baseline}:{sysconfig.get_paths()['purelib']}",
                    "PYFALCO_LIBRARY": str(nat.lib.path), "PYFALCO_BENCH_TREE": str(Path(opts.baseline).resolve())}
            agent_job(f"pyfalco agent, {label}, stable rules, tree {opts.baseline}", interp + ["-S"], benv,
                      ["replay", str(STABLE_RULES), str(path)], runs, Path(opts.baseline))
        if opts.skip_off:
            agent_job(f"pyfalco agent, {label}, stable rules, no skip in libpyfalco", interp, env,
                      ["replay", str(STABLE_RULES), str(path), "noskip"], runs)
    sysdig = shutil.which("sysdig")
    if sysdig and not timed_cmd([sysdig, "-r", str(path)], 1, check=False):
        print("sysdig cannot read this capture (it crashes): sysdig rows skipped", file=sys.stderr)
        sysdig = None
    if sysdig:
        filt = sysdig_filter(STABLE_RULES)
        (tmp / "filter.txt").write_text(filt)
        for label, args in (("`sysdig -r FILE` (to a pipe)", []),
                            ("`sysdig -r FILE <stable rules as one filter>`", [filt]),
                            ("`sysdig -r FILE 'evt.type=open and fd.name startswith /etc'`",
                             ["evt.type=open and fd.name startswith /etc"])):
            def measure(label=label, args=args):
                cpu, wall, n = timed_cmd([sysdig, "-r", str(path), *args], opts.runs)
                return (label, cpu, wall, None, n, None, None)
            jobs.append((label, measure))
    best: dict = {}
    for rnd in range(opts.rounds):
        for label, measure in (jobs if rnd % 2 == 0 else jobs[::-1]):
            row = measure()
            print(f"  round {rnd}: {row}", file=sys.stderr)
            if label not in best or row[1] < best[label][1]:
                best[label] = row
    rows = [best[label] for label, _ in jobs]
    # the records in the file, for the rates (sysdig counts enter and exit events apart)
    from pyfalco.scap._native_scap import Replay
    with Replay(str(path)) as rp:
        nev = 0
        for _b, _u, k in rp.batches(buflen=4 << 20, max_events=1 << 16):
            nev += k
        records = rp.stats()["n_evts"]
    out = [f"capture: {opts.capture.name} x {opts.repeat}: {records:,} records, {nev:,} (exit) events, "
           f"{len(src) * opts.repeat / 1e6:.1f} MB", f"machine: {machine()}",
           f"load average before: {os.getloadavg()[0]:.2f}", "",
           "| reader | CPU time (s) | wall (s) | events/s (CPU) | records/s (CPU) | alerts / lines out | "
           "first run (ev/s) | peak RSS (MB) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, cpu, wall, n, alerts, first, hwm in rows:
        ev = f"{nev / cpu:,.0f}"
        out.append(f"| {name} | {cpu:.3f} | {wall:.3f} | {ev} | {records / cpu:,.0f} | {alerts:,} | "
                   f"{'' if first is None else f'{first:,.0f}'} | {'' if hwm is None else f'{hwm / 1024:.0f}'} |")
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def build_loadgen() -> str:
    out = Path(tempfile.mkdtemp(prefix="loadgen.")) / "loadgen"
    subprocess.run(["cc", "-O2", "-o", str(out), str(Path(__file__).with_name("loadgen.c"))], check=True)
    return str(out)


def bench_live(opts) -> list[str]:
    if os.geteuid() != 0:
        raise SystemExit("live: needs root (eBPF)")
    loadgen = build_loadgen()
    rates = [int(r) for r in opts.rates.split(",")]
    out = [f"machine: {machine()}, load average before: {os.getloadavg()[0]:.2f}; {opts.seconds:g} s per point, "
           f"mix `{opts.mix}`, rules {opts.rules.name}", "",
           "| interpreter | kernel filter | target (ev/s) | loadgen (ev/s) | captured (ev/s) | dropped in kernel by "
           "the filter (ev/s) | ring drops | drop % | agent CPU % | alerts | alert latency p50 / p99 (ms) | "
           "peak RSS (MB) |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, interp, env in interpreters(opts.interpreters):
        for kf in opts.kernel_filter.split(","):
            res = run_child(interp, env, ["live", str(opts.rules), opts.rates, str(opts.seconds), opts.mix, loadgen,
                                          str(opts.warmup), "true" if kf == "on" else "false"],
                            prefix=["taskset", "-c", "1"])
            for p in res["points"]:
                # drop % of what the load produced (the filter's events never reach a ring)
                made = p["captured"] + p.get("kernel_filtered", 0)
                pct = 100.0 * p["drops"] / made if made else 0.0
                out.append(f"| {label} | {kf} | {p['target']:,} | {p['loadgen_rate']:,.0f} | "
                           f"{p['captured_rate']:,.0f} | {p.get('kernel_filtered', 0) / p['seconds']:,.0f} | "
                           f"{p['drops']:,} | {pct:.2f} | {100 * p['agent_cpu'] / p['wall']:.0f} | {p['alerts']:,} | "
                           f"{p.get('lat_p50', float('nan')):.1f} / {p.get('lat_p99', float('nan')):.1f} | "
                           f"{p['rss_kb'][1] / 1024:.0f} |")
                print(f"  {out[-1]}", file=sys.stderr)
    del rates
    return out


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        kind, args = sys.argv[2], sys.argv[3:]
        if kind == "replay":
            res = child_replay(args[0], args[1], int(args[2]), len(args) < 4 or args[3] != "noskip")
        else:
            res = child_live(args[0], [int(r) for r in args[1].split(",")], float(args[2]), args[3], args[4],
                             float(args[5]), args[6] if len(args) > 6 else "true")
        print(json.dumps(res))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("replay", "live", "all"))
    ap.add_argument("--capture", type=Path, default=DEFAULT_CAPTURE)
    ap.add_argument("--repeat", type=int, default=10, help="copies of the capture concatenated")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pypy-runs", type=int, default=6, help="PyPy runs in one process (warm-up included)")
    ap.add_argument("--interpreters", default="cpython,pypy", help="cpython, pypy (with the GC settings of the "
                    "pyfalco command), pypy-gc-default (PyPy's own GC settings)")
    ap.add_argument("--baseline", help="replay: also the stable rules with the pyfalco package of this directory "
                    "(a `git archive` of an older commit: before/after in one run)")
    ap.add_argument("--skip-off", action="store_true", help="replay: also the stable rules with the capture-side "
                    "skip off (Inspector.skip_in_capture), for a before/after in one run")
    ap.add_argument("--rounds", type=int, default=1, help="replay: measure every row this many times, the "
                    "rows' order alternating from round to round (a shared machine), best of all")
    ap.add_argument("--rules", type=Path, default=DEFAULT_RULES, help="live: rules file")
    ap.add_argument("--rates", default="100000,250000,500000,700000")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=3.0, help="live: seconds before the first load")
    ap.add_argument("--mix", default="open", choices=("open", "mix"))
    ap.add_argument("--kernel-filter", default="off,on", help="live: engine.modern_ebpf.kernel_filter settings "
                    "to run, in order (off,on | on | off)")
    opts = ap.parse_args()
    lines = []
    if opts.what in ("replay", "all"):
        lines += ["### Replay", ""] + bench_replay(opts) + [""]
    if opts.what in ("live", "all"):
        lines += ["### Live", ""] + bench_live(opts) + [""]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
