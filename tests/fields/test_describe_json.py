# SPDX-License-Identifier: Apache-2.0
"""`pyfalco -L -o json_output=true`: Falco's full shape (required_plugin_versions, lists, macros,
rules with their compiled details), through the real CLI on a rules file of our own."""

from __future__ import annotations

import json
import subprocess
import sys

RULES = """
- required_engine_version: 0.26.0
- list: shells
  items: [bash, sh]
- list: more_shells
  items: [shells, zsh]
- list: shells
  items: [dash]
  append: true
- list: unused_list
  items: [x]
- macro: spawned
  condition: evt.type = execve and evt.dir = <
- macro: shell_proc
  condition: proc.name in (more_shells)
- macro: unused_macro
  condition: fd.num > 3
- rule: Shell spawned
  desc: a shell started
  condition: spawned and shell_proc and not proc.pname startswith sshd
  output: shell %proc.name parent=%proc.pname
  priority: WARNING
  tags: [shell]
  exceptions:
    - name: known_parent
      fields: [proc.pname]
      comps: [=]
      values: [[cron]]
"""


def test_minus_L_json_shape(tmp_path):
    rules = tmp_path / "r.yaml"
    rules.write_text(RULES)
    r = subprocess.run([sys.executable, "-m", "pyfalco.cli.main", "-L", "-o", "json_output=true", "-r", str(rules)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc) >= {"required_engine_version", "required_plugin_versions", "lists", "macros", "rules"}
    lists = {x["info"]["name"]: x for x in doc["lists"]}
    assert lists["shells"]["info"]["items"] == ["bash", "sh", "dash"]          # append kept
    assert lists["more_shells"]["details"]["items_compiled"] == ["bash", "sh", "dash", "zsh"]
    assert lists["more_shells"]["details"]["used"] and not lists["unused_list"]["details"]["used"]
    macros = {x["info"]["name"]: x for x in doc["macros"]}
    assert macros["spawned"]["details"]["condition_fields"] == ["evt.dir", "evt.type"]
    assert macros["shell_proc"]["details"]["lists"] == ["more_shells"]
    assert macros["spawned"]["details"]["used"] and not macros["unused_macro"]["details"]["used"]
    (rule,) = doc["rules"]
    info, d = rule["info"], rule["details"]
    assert info["name"] == "Shell spawned" and info["priority"] == "Warning" and info["tags"] == ["shell"]
    assert info["exceptions"] == ["known_parent"]
    assert d["macros"] == ["shell_proc", "spawned"] and d["lists"] == ["more_shells"]
    assert d["events"] == ["execve"]
    assert {"proc.name", "proc.pname", "evt.type"} <= set(d["condition_fields"])
    assert {"=", "in", "startswith"} <= set(d["condition_operators"])
    assert "proc.name in (bash, sh, dash, zsh)" in d["condition_compiled"]      # macros and lists expanded
    assert "spawned" not in d["condition_compiled"]
    assert d["output_fields"] and d["exception_names"] == ["known_parent"]
    assert d["exception_fields"] == ["proc.pname"] and d["exception_operators"] == ["="]
