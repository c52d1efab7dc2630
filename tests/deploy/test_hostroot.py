# SPDX-License-Identifier: Apache-2.0
"""HOST_ROOT (Falco's convention for an agent in a container): the /proc scan, the host's users
and groups, and the container runtimes' files and sockets are read under it; unset, empty or "/"
changes nothing. Each case runs in a fresh interpreter (the paths are fixed at import)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from deploytools import REPO

PROBE = """
import json, os
import pyfalco.procscan as ps
from pyfalco.hostroot import host_path
from pyfalco.state.containers import ContainerManager
st = ps.scan(with_fds=False, with_env=False)
m = ContainerManager(live=False)
print(json.dumps({"proc": ps.PROC, "threads": len(st.threads), "self": os.getpid() in st.threads,
                  "users": {u.name: u.uid for u in st.users.values()},
                  "groups": {g.name: g.gid for g in st.groups.values()},
                  "podman": m.podman_storage, "tasks": m.containerd_tasks, "docker": list(m.docker_sockets),
                  "cri": list(m.cri_sockets), "etc": host_path("/etc/passwd")}))
"""


def probe(host_root: str | None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("HOST_ROOT", None)
    if host_root is not None:
        env["HOST_ROOT"] = host_root
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture
def fake_host(tmp_path):
    """A host root whose /proc is this machine's and whose /etc has users of its own."""
    root = tmp_path / "host"
    (root / "etc").mkdir(parents=True)
    (root / "proc").symlink_to("/proc")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nhostonly:x:4242:4243::/home/h:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\nhostonlygrp:x:4243:\n")
    return root


def test_unset_empty_and_slash_change_nothing():
    base = probe(None)
    assert base["proc"] == "/proc" and base["etc"] == "/etc/passwd" and base["self"]
    assert base["podman"] == "/var/lib/containers/storage/overlay-containers"
    assert base["docker"] == ["/var/run/docker.sock", "/run/podman/podman.sock"]
    assert base["users"]["root"] == 0
    for value in ("", "/"):
        got = probe(value)
        assert {k: got[k] for k in ("proc", "podman", "tasks", "docker", "cri", "users", "groups", "etc")} == \
            {k: base[k] for k in ("proc", "podman", "tasks", "docker", "cri", "users", "groups", "etc")}


def test_paths_and_users_come_from_under_host_root(fake_host):
    got = probe(str(fake_host) + "/")          # a trailing slash is the same root
    r = str(fake_host)
    assert got["proc"] == r + "/proc" and got["threads"] > 0 and got["self"]
    assert got["users"] == {"root": 0, "hostonly": 4242}
    assert got["groups"] == {"root": 0, "hostonlygrp": 4243}
    assert got["podman"] == r + "/var/lib/containers/storage/overlay-containers"
    assert got["tasks"] == r + "/run/containerd/io.containerd.runtime.v2.task"
    assert got["docker"] == [r + "/var/run/docker.sock", r + "/run/podman/podman.sock"]
    assert got["cri"] == [r + "/run/containerd/containerd.sock", r + "/var/run/crio/crio.sock",
                          r + "/run/crio/crio.sock"]
