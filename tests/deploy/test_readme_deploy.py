# SPDX-License-Identifier: Apache-2.0
"""The README's "Install" blocks for the container image and Kubernetes, as a user copies them."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import threading
import time

import pytest
import yaml
from deploytools import REPO, readme_block


@pytest.mark.slow
@pytest.mark.root
def test_container_image_block_runs_and_alerts(pyfalco_image, marker, tmp_path):
    """The block as written (the image is up to date from the fixture, so tools/build-image in it
    only checks); the agent's minute is used to read /etc/shadow on the host until it reports it."""
    block = readme_block("### Container image")
    assert "tools/build-image" in block and "localhost/pyfalco:latest" in block
    # this sandbox's hard RLIMIT_NOFILE is below podman's default for containers: an environment
    # setting of the machine, not a change to the block
    conf = tmp_path / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n')
    proc = subprocess.Popen(["bash", "-euo", "pipefail", "-c", block], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ, CONTAINERS_CONF=str(conf)))
    lines: list[str] = []
    t = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    t.start()
    want = re.compile(rf"file=/etc/shadow .*command=cat /etc/shadow /nonexistent/{marker}")
    end = time.monotonic() + 240
    while time.monotonic() < end and proc.poll() is None and not any(want.search(x) for x in list(lines)):
        subprocess.run(["cat", "/etc/shadow", f"/nonexistent/{marker}"], capture_output=True, check=False)
        time.sleep(2)
    assert any(want.search(x) for x in list(lines)), "no alert from the README's container:\n" + "".join(lines[-40:])
    assert proc.wait(timeout=180) == 0, "".join(lines[-40:])   # -M 60: it stops by itself
    t.join(timeout=10)


def test_kubernetes_block_names_the_shipped_objects():
    """No cluster can run here (the DaemonSet's pod runs for real in test_kubernetes.py with podman
    kube play): every command of the block is kubectl and names files and objects that exist."""
    block = readme_block("### Kubernetes")
    docs = []
    for f in sorted((REPO / "deploy/kubernetes").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(f.read_text()) if d]
    objects = {(d.get("metadata", {}).get("namespace"), d["kind"].lower(), d["metadata"]["name"]) for d in docs}
    cmds = [shlex.split(line) for line in block.splitlines() if line.strip()]
    assert [c[:2] for c in cmds] == [["kubectl", "apply"], ["kubectl", "-n"], ["kubectl", "-n"]]
    path = REPO / cmds[0][cmds[0].index("-f") + 1]
    assert path.is_dir() and sorted(path.glob("*.yaml"))
    for c in cmds[1:]:
        ns, (kind, name) = c[2], c[-1].split("/")
        assert (ns, kind, name) in objects, c
