#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Kubernetes audit events through the k8saudit webhook with Falco's k8s audit rules (CPython).

The server side is what the agent runs for a k8saudit source: the built-in k8saudit + json plugins,
the webhook on 127.0.0.1 (bounded web server, HTTP/1.0), ``PluginSource`` -> ``pyfalco.Engine``
with ../shared/rules/k8s_audit_rules.yaml (48 rules; rule_matching first), each alert built with
its output fields. The client is another process posting ``EventList`` bodies as a kube-apiserver's
webhook backend does (``--batch`` events per POST, ``--clients`` connections at a time); 90% of
the events are everyday traffic (list/get/update by system users), 10% fire a rule (privileged pod,
hostPath mount, exec, cluster-admin binding, pod in kube-system).

Three measures:

* ``file``: the same source and rules over an audit log file of 50,000 events (no HTTP): what the
  engine itself costs per event;
* ``max``: clients post as fast as the webhook accepts for ``--seconds``; the rate is the events
  the engine evaluated per second (503 answers, when the queue stays full, are counted);
* ``rate``: clients post at ``--rate`` events/s; reports whether the engine kept up and the
  event-to-alert latency (p50/p99/max): from the event's stageTimestamp, set just before its POST,
  to the alert callback.

usage: nice -n 19 bench_k8saudit.py [file|max|rate|all] [--seconds 10] [--rate 5000] [--batch 100] ...
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import platform
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

RULES = REPO.parent / "shared" / "rules" / "k8s_audit_rules.yaml"
_STAMP = "2000-01-01T00:00:00.000000Z"      # same length as every stamp the client writes


def _bodies(batch: int) -> list[bytes]:
    """A few EventList templates of ``batch`` events, 10% of them alerting (stamps to fill)."""
    from pyfalco.generator import k8saudit as gen
    alerting = [e for a in gen.K8S_ACTIONS.values() for e in a.build()]
    out = []
    for k in range(4):
        evs = []
        for i in range(batch):
            pool = alerting if i % 10 == 9 else gen.benign_events()
            e = dict(pool[(i + k) % len(pool)])
            e["stageTimestamp"] = _STAMP
            e["auditID"] = f"{k:02d}-{i:06d}-bench"
            evs.append(e)
        out.append(json.dumps(gen.event_list(evs)).encode())
    return out


def _stamp() -> bytes:
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac // 1000:06d}Z").encode()


def _client(port: int, seconds: float, rate: float, batch: int, conns: int, out: mp.Queue) -> None:
    bodies = _bodies(batch)
    counts = {"posted": 0, "ok": 0, "busy": 0, "errors": 0}
    lock = threading.Lock()
    end = time.monotonic() + seconds
    per_conn = rate / conns if rate else 0.0

    def loop(idx: int) -> None:
        n = 0
        t0 = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= end:
                return
            if per_conn:
                due = t0 + n * batch / per_conn
                if due > now:
                    time.sleep(min(due - now, end - now))
                    continue
            body = bodies[n % len(bodies)].replace(_STAMP.encode(), _stamp())
            n += 1
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request("POST", "/k8s-audit", body=body, headers={"Content-Type": "application/json"})
                status = conn.getresponse().status
            except OSError:
                status = 0
            finally:
                conn.close()
            with lock:
                counts["posted"] += batch
                if status == 200:
                    counts["ok"] += batch
                elif status == 503:
                    counts["busy"] += batch
                else:
                    counts["errors"] += batch

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(counts)


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def measure(seconds: float, rate: float, batch: int, conns: int) -> dict:
    import pyfalco
    from pyfalco.plugins.registry import PluginSet, load_plugin
    from pyfalco.plugins.source import PluginSource

    k8s = load_plugin({"name": "k8saudit", "library_path": "libk8saudit.so", "init_config": "",
                       "open_params": "http://127.0.0.1:0/k8s-audit"})
    plugins = PluginSet([k8s, load_plugin({"name": "json", "library_path": "libjson.so", "init_config": ""})])
    src = PluginSource(k8s, plugins)
    engine = pyfalco.Engine(sources=[src])
    engine.load_rules(str(RULES), plugins=plugins.versions())
    latencies: list[float] = []

    def on_alert(alert) -> None:
        latencies.append((time.time_ns() - alert.time_ns) / 1e6)

    runner = threading.Thread(target=engine.run, args=(on_alert,), kwargs={"duration": seconds + 30}, daemon=True)
    runner.start()
    while src._instance is None:
        time.sleep(0.01)
    port = src._instance.port
    cpu0 = time.process_time()
    q: mp.Queue = mp.get_context("fork").Queue()
    client = mp.get_context("fork").Process(target=_client, args=(port, seconds, rate, batch, conns, q))
    t0 = time.monotonic()
    client.start()
    counts = q.get()
    client.join()
    # let the engine finish what was accepted (bounded)
    accepted = counts["ok"]
    end = time.monotonic() + 30
    while engine.n_events < accepted and time.monotonic() < end:
        time.sleep(0.02)
    elapsed = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    stats = src._instance.stats()
    engine.stop()
    runner.join(10)
    engine.close()
    return {"seconds": round(elapsed, 2), "target_rate": rate, "batch": batch, "clients": conns,
            "posted": counts["posted"], "accepted": accepted, "busy_503": counts["busy"], "errors": counts["errors"],
            "evaluated": engine.n_events, "events_per_s": round(engine.n_events / elapsed),
            "alerts": len(latencies), "server_cpu_s": round(cpu, 2),
            # what one core would do with no other tenant: events per CPU-second of the server
            "events_per_cpu_s": round(engine.n_events / cpu) if cpu > 0 else None,
            "latency_ms": {"p50": round(_pct(latencies, 50), 2), "p99": round(_pct(latencies, 99), 2),
                           "max": round(max(latencies), 2) if latencies else None},
            "webhook": stats}


def measure_file(n_events: int, batch: int) -> dict:
    """The same source and rules over an audit log file (no HTTP): the engine's own cost."""
    import tempfile
    import pyfalco
    from pyfalco.plugins.registry import PluginSet, load_plugin
    from pyfalco.plugins.source import PluginSource

    bodies = [b.replace(_STAMP.encode(), _stamp()) for b in _bodies(batch)]
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as f:
        for i in range(max(1, n_events // batch)):
            f.write(bodies[i % len(bodies)] + b"\n")      # one EventList per line
        path = f.name
    try:
        k8s = load_plugin({"name": "k8saudit", "library_path": "libk8saudit.so", "init_config": "",
                           "open_params": path})
        plugins = PluginSet([k8s, load_plugin({"name": "json", "library_path": "libjson.so", "init_config": ""})])
        engine = pyfalco.Engine(sources=[PluginSource(k8s, plugins)])
        engine.load_rules(str(RULES), plugins=plugins.versions())
        alerts = [0]
        t0, c0 = time.monotonic(), time.process_time()
        engine.run(lambda a: alerts.__setitem__(0, alerts[0] + 1))
        wall, cpu = time.monotonic() - t0, time.process_time() - c0
        engine.close()
    finally:
        os.unlink(path)
    return {"evaluated": engine.n_events, "alerts": alerts[0], "seconds": round(wall, 2), "cpu_s": round(cpu, 2),
            "events_per_s": round(engine.n_events / wall), "events_per_cpu_s": round(engine.n_events / cpu)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", nargs="?", default="all", choices=("file", "max", "rate", "all"))
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", default="5000", help="events/s for the 'rate' measure (a comma list: one run each)")
    ap.add_argument("--batch", type=int, default=100, help="events per POST (kube-apiserver default max: 400)")
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not RULES.exists():
        print(f"bench_k8saudit: {RULES} not found", file=sys.stderr)
        return 1
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "implementation": platform.python_implementation(), "kernel": platform.release(),
                           "cpu": _cpu_model(), "load_average_before": os.getloadavg()[0]}}
    if args.what in ("file", "all"):
        results["file"] = measure_file(50000, args.batch)
    if args.what in ("max", "all"):
        results["max"] = measure(args.seconds, 0.0, args.batch, args.clients)
    if args.what in ("rate", "all"):
        for r in args.rate.split(","):
            results[f"rate {float(r):.0f}"] = measure(args.seconds, float(r), args.batch, args.clients)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    m = results["machine"]
    print(f"machine: {m['cpus']} CPUs ({m['cpu']}), {m['implementation']} {m['python']}, kernel {m['kernel']}, "
          f"load average {m['load_average_before']:.1f} before the run (a shared machine)")
    for k, r in results.items():
        if k == "machine":
            continue
        if k == "file":
            print(f"file (no HTTP): {r['events_per_s']} ev/s ({r['evaluated']} events in {r['seconds']}s, "
                  f"{r['events_per_cpu_s']} per CPU-second, {r['alerts']} alerts)")
            continue
        what = "as fast as accepted" if k == "max" else f"target {r['target_rate']:.0f} ev/s"
        print(f"{what}: {r['events_per_s']} ev/s evaluated ({r['evaluated']} in {r['seconds']}s, "
              f"{r['events_per_cpu_s']} per server CPU-second, "
              f"batch {r['batch']}, {r['clients']} clients), 503s {r['busy_503']}, errors {r['errors']}, "
              f"alerts {r['alerts']}, latency p50 {r['latency_ms']['p50']} ms p99 {r['latency_ms']['p99']} ms "
              f"max {r['latency_ms']['max']} ms, server CPU {r['server_cpu_s']}s")
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


if __name__ == "__main__":
    sys.exit(main())
