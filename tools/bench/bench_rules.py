# SPDX-License-Identifier: Apache-2.0
"""Rule engine benchmark: load+compile time of the stable ruleset, and events/s through the
type-indexed ruleset (compiled functions vs the reference interpreter) on a realistic mix.

    python3 tools/bench/bench_rules.py [--rules ../shared/rules/falco_rules.yaml] [--events 200000]

The mix: events of the types the driver delivers when running the stable rules (their 19
syscalls plus Falco's state syscalls), with benign values, so most events match no rule; about
1 in 200 is crafted to trigger a rule. Fields are plain dict entries (DictProvider), so the
figures measure the engine, not field extraction.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from pathlib import Path

from benchutil import machine  # tools/bench is the script's directory

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pyfalco.rules import Ruleset, load_rules  # noqa: E402
from pyfalco.rules.parser import parse  # noqa: E402

STATE_TYPES = ["close", "clone", "clone3", "fork", "vfork", "dup", "fcntl", "pipe", "pipe2", "socket", "bind",
               "accept", "accept4", "chdir", "setuid", "setgid", "prctl", "procexit", "recvfrom", "recvmsg",
               "eventfd", "signalfd", "epoll_create", "mount", "umount2"]
PROCS = ["nginx", "python3", "java", "node", "postgres", "redis-server", "containerd", "kubelet", "dockerd", "sshd",
         "systemd", "cron", "bash", "sh", "cat", "ls", "grep"]
FILES = ["/var/lib/app/data.db", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/proc/self/stat", "/tmp/x.json",
         "/etc/ld.so.cache", "/etc/hosts", "/var/log/app.log", "/srv/www/index.html", "/dev/null"]



def benign_event(rng: random.Random) -> dict:
    roll = rng.random()
    proc = rng.choice(PROCS)
    evt = {"proc.name": proc, "proc.pname": rng.choice(PROCS), "proc.exepath": f"/usr/bin/{proc}",
           "proc.cmdline": f"{proc} --serve", "proc.args": "--serve", "proc.aname[2]": "systemd",
           "proc.aname[3]": "init", "proc.aname": (rng.choice(PROCS), "systemd"), "proc.tty": 0,
           "proc.exe": f"/usr/bin/{proc}", "proc.pexe": "/usr/bin/x", "proc.pcmdline": "x",
           "user.name": "app", "user.uid": 1000, "user.loginuid": -1,
           "container.id": rng.choice(["host", "3ad7c2f1b0e9"]), "container.image.repository": "docker.io/app/web",
           "evt.res": "SUCCESS", "evt.rawres": 3}
    if roll < 0.40:
        evt["evt.type"] = rng.choice(STATE_TYPES)
    elif roll < 0.75:
        name = rng.choice(FILES)
        evt.update({"evt.type": rng.choice(["open", "openat", "openat2"]), "fd.name": name, "fd.typechar": "f",
                    "fd.num": 5, "fd.directory": name.rsplit("/", 1)[0] or "/", "fd.filename": name.rsplit("/", 1)[1],
                    "evt.is_open_read": rng.random() < 0.8, "evt.is_open_write": rng.random() < 0.2,
                    "evt.arg.flags": "O_RDONLY", "proc.duration": 10**12})
    elif roll < 0.90:
        evt.update({"evt.type": rng.choice(["execve", "execveat"]), "proc.is_exe_upper_layer": False,
                    "proc.is_exe_from_memfd": False, "evt.arg.flags": "0"})
    else:
        evt.update({"evt.type": rng.choice(["connect", "sendto", "sendmsg"]), "fd.typechar": "4", "fd.type": "ipv4",
                    "fd.ip": "10.0.0.7", "fd.net": "10.0.0.7", "fd.snet": "10.0.0.7", "fd.sip": "10.0.0.7",
                    "fd.sip.name": "db.local", "fd.sport": 5432, "fd.l4proto": "tcp", "fd.connected": True,
                    "fd.name_changed": False, "fd.name": "10.0.0.9:40000->10.0.0.7:5432"})
    return evt


def malicious_event(rng: random.Random) -> dict:
    evt = benign_event(rng)
    evt.update({"evt.type": "openat", "evt.is_open_read": True, "fd.typechar": "f", "fd.num": 3,
                "fd.name": "/etc/shadow", "fd.directory": "/etc", "fd.filename": "shadow", "proc.name": "python3",
                "proc.pname": "bash"})
    return evt


def make_events(n: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    return [malicious_event(rng) if rng.random() < 0.005 else benign_event(rng) for _ in range(n)]


def time_load(path: str, runs: int) -> tuple[float, float]:
    """(first load in this process, best of ``runs`` warm loads with the parse cache cleared), seconds."""
    t0 = time.perf_counter()
    load_rules(path)
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(runs):
        parse.cache_clear()
        gc.collect()
        t0 = time.perf_counter()
        result = load_rules(path)
        best = min(best, time.perf_counter() - t0)
    assert result.ok, result.as_text()
    return first, best


def throughput(ruleset: Ruleset, events: list[dict], repeat: int) -> tuple[float, int]:
    match = ruleset.match
    best = float("inf")
    hits = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        hits = 0
        for evt in events:
            if match(evt):
                hits += 1
        best = min(best, time.perf_counter() - t0)
    return len(events) / best, hits


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", default=str(ROOT / ".." / "shared" / "rules" / "falco_rules.yaml"))
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--reference-events", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)

    print(f"machine: {machine()}")
    first, best = time_load(args.rules, args.runs)
    print(f"load+compile {Path(args.rules).name}: first {first * 1e3:.1f} ms, best of {args.runs} "
          f"(parse cache cleared) {best * 1e3:.1f} ms")

    result = load_rules(args.rules, rule_matching="first")
    ruleset = result.ruleset
    events = make_events(args.events)
    reference = Ruleset(ruleset.rules, ruleset.providers, reference=True)
    for repeat_events, label, rs, n in ((events, "compiled", ruleset, args.events),
                                        (events[:args.reference_events], "reference", reference,
                                         args.reference_events)):
        rate, hits = throughput(rs, repeat_events[:n], repeat=3)
        print(f"{label:>9}: {rate:>12,.0f} events/s  ({n} events, {hits} matched, rule_matching=first)")
    all_rules = load_rules(args.rules, rule_matching="all").ruleset
    rate, hits = throughput(all_rules, events, repeat=3)
    print(f"{'compiled':>9}: {rate:>12,.0f} events/s  ({len(events)} events, {hits} matched, rule_matching=all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
