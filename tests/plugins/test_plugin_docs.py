# SPDX-License-Identifier: Apache-2.0
"""docs/plugins.md's example plugin, rules and configuration, run as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "plugins.md"


def test_the_documented_plugin_runs(tmp_path):
    section = DOC.read_text().split("## Writing a Python plugin", 1)[1].split("## Loading a Falco C plugin", 1)[0]
    py = re.findall(r"```python\n(.*?)```", section, re.S)
    yamls = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert len(py) == 1 and len(yamls) == 2
    code = py[0]
    assert len(code.strip().splitlines()) <= 45   # "a plugin in ~30 lines" (plus blank lines)
    (tmp_path / "loginwatch.py").write_text(code)
    (tmp_path / "logins_rules.yaml").write_text(yamls[0])
    log = tmp_path / "logins.jsonl"
    log.write_text("\n".join(json.dumps(d) for d in [
        {"user": "alice", "ip": "198.51.100.7", "ok": False},
        {"user": "root", "ip": "203.0.113.9", "ok": False},
        {"user": "root", "ip": "203.0.113.10", "ok": True},
        {"user": "root", "ok": False}]) + "\n")
    cfg = yamls[1].replace("/var/log/logins.jsonl", str(log))
    # the test's environment: no syslog, no webserver
    cfg += "syslog_output: {enabled: false}\nwebserver: {enabled: false}\nconfig_files: []\n"
    (tmp_path / "pyfalco.yaml").write_text(cfg)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([".", str(REPO), env.get("PYTHONPATH", "")])
    r = subprocess.run([sys.executable, "-m", "pyfalco.cli.main", "-c", "pyfalco.yaml", "--disable-source", "syscall"],
                       capture_output=True, text=True, timeout=60, env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    alerts = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert [(a["rule"], a["source"], a["priority"]) for a in alerts] == [("Failed root login", "logins", "Warning")] * 2
    assert alerts[0]["output"].endswith("Warning failed root login from 203.0.113.9 (user=root)")
    assert alerts[1]["output"].endswith("Warning failed root login from <NA> (user=root)")
    assert str(alerts[0]["output_fields"]["login.ip"]) == "203.0.113.9"
    # the "From Python" block, run as written in the same directory
    api = DOC.read_text().split("## From Python", 1)[1].split("## Capture files", 1)[0]
    (snippet,) = re.findall(r"```python\n(.*?)```", api, re.S)
    (tmp_path / "logins.jsonl").write_text(log.read_text())
    r = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60, env=env,
                       cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["logins Failed root login 203.0.113.9", "logins Failed root login None"]
