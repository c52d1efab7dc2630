# SPDX-License-Identifier: Apache-2.0
"""docs/k8s-audit.md as written: its configuration block runs (dry run, plugins loaded, both rules
files), its apiserver files are what they claim, its fields table is the plugins' field list."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import yaml

from k8sauditkit import REPO
from pyfalco.plugins.json_plugin import JsonPlugin
from pyfalco.plugins.k8saudit import KA_FIELDS

DOC = (REPO / "docs" / "k8s-audit.md").read_text()
BLOCKS = re.findall(r"```yaml\n(.*?)```", DOC, re.S)


def test_configuration_block_runs(tmp_path):
    cfg = yaml.safe_load(BLOCKS[0])
    assert cfg["load_plugins"] == ["k8saudit", "json"] and cfg["plugins"][0]["library_path"] == "libk8saudit.so"
    (tmp_path / "pyfalco.yaml").write_text(BLOCKS[0])
    for name in ("pyfalco_rules.yaml", "pyfalco_k8s_audit_rules.yaml"):
        (tmp_path / name).symlink_to(REPO / "rules" / name)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cp = subprocess.run([sys.executable, "-m", "pyfalco.cli.main", "-c", str(tmp_path / "pyfalco.yaml"), "--dry-run",
                         "-o", "log_syslog=false"], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert cp.returncode == 0, cp.stderr
    assert "from 2 file(s) loaded" in cp.stderr


def test_apiserver_files():
    policy, kubeconfig = (yaml.safe_load(b) for b in BLOCKS[1:3])
    assert policy["apiVersion"] == "audit.k8s.io/v1" and policy["kind"] == "Policy"
    levels = {r["level"] for r in policy["rules"]}
    assert levels <= {"None", "Metadata", "Request", "RequestResponse"}
    rr = [res for r in policy["rules"] if r["level"] == "RequestResponse" for res in r["resources"]]
    assert {"pods"} <= {x for res in rr for x in res["resources"]}
    assert {"clusterrolebindings"} <= {x for res in rr for x in res["resources"]}
    assert kubeconfig["kind"] == "Config" and kubeconfig["clusters"][0]["cluster"]["server"].endswith(":9765/k8s-audit")
    assert kubeconfig["current-context"] == kubeconfig["contexts"][0]["name"]


def test_fields_table_lists_every_field():
    rows = re.findall(r"^\| `([a-z][\w.]+)` \| (string(?: list)?) \|", DOC, re.M)
    want = [(f.name, "string list" if f.is_list else "string") for f in KA_FIELDS.values()]
    want += [(s.name, "string") for s in JsonPlugin().fields()]
    assert rows == want
