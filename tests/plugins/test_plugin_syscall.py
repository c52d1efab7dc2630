# SPDX-License-Identifier: Apache-2.0
"""Extractor plugins of syscall events (``extract_event_sources: [syscall]``): their fields join
the syscall source's (after the inspector's), for Python plugins (the inspector's event) and C
plugins (the libscap event bytes, "syscall" as the source), on a real capture replayed by the agent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyfalco

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CURL_SCAP = REPO.parent / "shared" / "captures" / "libs_curl_google.scap"

RULES = """
- rule: Etc open
  desc: an open below /etc, with plugin fields of syscall events
  condition: evt.type = open and evt.arg.name startswith /etc and cds.type = 3 and cds.src = syscall
             and tag.proc = CURL
  output: "open %evt.arg.name len=%cds.len num=%evt.num tag=%tag.proc tagnum=%tag.num"
  priority: WARNING
"""


def test_syscall_extractors_in_replay(tmp_path, c_plugins):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    cfg = tmp_path / "pyfalco.yaml"
    cfg.write_text(json.dumps({
        "load_plugins": ["cds", "tag"], "rules_files": [str(rules)], "json_output": True,
        "plugins": [{"name": "cds", "library_path": c_plugins["cdsys"]},
                    {"name": "tag", "library_path": "pyplugins:ProcTag"}],
        "syslog_output": {"enabled": False}, "webserver": {"enabled": False}, "config_files": [],
        "append_output": []}))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE), env.get("PYTHONPATH", "")])
    r = subprocess.run([sys.executable, "-m", "pyfalco.cli.main", "-c", str(cfg), "-e", str(CURL_SCAP)],
                       capture_output=True, text=True, timeout=120, env=env, cwd=str(REPO))
    assert r.returncode == 0, r.stderr
    alerts = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(alerts) == 8      # the capture's 8 opens below /etc, all by curl
    # the C plugin read each event's own libscap header: its length is the event's
    lens = {}
    cap = pyfalco.Capture(engine="replay", capture_file=str(CURL_SCAP))
    while (batch := cap.next_batch(1000)):
        lens.update((e.num, e.len) for e in batch)
    cap.close()
    for a in alerts:
        f = a["output_fields"]
        assert f["cds.len"] == lens[f["evt.num"]] and f["tag.num"] == f["evt.num"] and f["tag.proc"] == "CURL"
    # -V sees the same fields
    r = subprocess.run([sys.executable, "-m", "pyfalco.cli.main", "-c", str(cfg), "-V", str(rules)],
                       capture_output=True, text=True, timeout=120, env=env, cwd=str(REPO))
    assert r.returncode == 0, r.stdout + r.stderr
