#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Events/s of a plugin source through pyfalco.Engine: a Falco C plugin (ctypes) and a Python plugin.

Both are the test plugins of tests/plugins (the C one built here with cc): a source of N events
and one rule that reads two plugin fields per event (the rule fires once), evaluated to the end
of the source. The C figure includes the ABI work per event (the event encoded for
extract_fields, one extract_fields call per field, results copied out); the Python one a JSON
document parsed once per event.

usage: nice -n 19 tools/bench/bench_plugins.py [--events 200000]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "plugins"))   # pyplugins: the Python test plugins

import pyfalco  # noqa: E402
from pyfalco.plugins.registry import load_configured  # noqa: E402

C_RULE = """
- rule: gamma
  desc: d
  condition: cd.word[2] = gamma and cd.n = 3
  output: "n=%cd.n"
  priority: WARNING
  source: cdummy
"""
PY_RULE = """
- rule: u3
  desc: d
  condition: pc.user = u3 and pc.i = 3
  output: "i=%pc.i"
  priority: WARNING
  source: pycounter
"""


def run(entry: dict, rules: str) -> tuple[int, int, float]:
    ps = load_configured({"load_plugins": [entry["name"]], "plugins": [entry]})
    try:
        engine = pyfalco.Engine(sources=ps.event_sources())
        engine.load_rules(rules, plugins=ps.versions())
        start = time.perf_counter()
        alerts = sum(1 for _ in engine.alerts())
        elapsed = time.perf_counter() - start
        n = engine.n_events
        engine.close()
    finally:
        ps.destroy()
    return n, alerts, elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    args = ap.parse_args()
    cc = shutil.which("cc")
    if cc is None:
        print("cc not found (build-essential)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        so = Path(tmp) / "libcdummy.so"
        subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(so), str(REPO / "tests/plugins/c/cdummy.c")],
                       check=True)
        for label, entry, rules in (
                ("C plugin (ctypes)", {"name": "cd", "library_path": str(so), "open_params": str(args.events)},
                 C_RULE),
                ("Python plugin", {"name": "pc", "library_path": "pyplugins:PyCounter",
                                   "open_params": str(args.events)}, PY_RULE)):
            n, alerts, elapsed = run(entry, rules)
            print(f"{label:20} {n} events, {alerts} alert(s), {elapsed:.2f} s: {n / elapsed:,.0f} events/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
