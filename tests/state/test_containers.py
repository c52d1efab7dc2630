# SPDX-License-Identifier: Apache-2.0
"""Real containers: podman (runc, cgroupfs, --network none, a busybox-static image built here) seen
through live eBPF events; metadata from podman's storage and from its Docker-compatible API."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

import pytest

pytestmark = pytest.mark.root

IMAGE = "localhost/pyfalco-busybox:test"
PODMAN = ["podman", "--cgroup-manager", "cgroupfs", "--runtime", "runc"]
RUN_OPTS = ["--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def _podman(*args, check=True, timeout=120):
    return subprocess.run(PODMAN + list(args), capture_output=True, text=True, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def image():
    if shutil.which("podman") is None or not os.path.exists("/bin/busybox"):
        pytest.fail("podman and busybox-static are needed (tools/setup installs them)")
    if True:  # always rebuilt (a second or so): the tests rely on its /etc/passwd and /etc/group
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(f"{d}/bin")
            os.makedirs(f"{d}/etc")
            shutil.copy("/bin/busybox", f"{d}/bin/busybox")
            for a in ("sh", "cat", "sleep", "ls", "true", "id"):
                os.symlink("busybox", f"{d}/bin/{a}")
            with open(f"{d}/etc/passwd", "w") as f:
                f.write("root:x:0:0:root:/root:/bin/sh\nbob:x:1234:1234:Bob:/home/bob:/bin/sh\n")
            with open(f"{d}/etc/group", "w") as f:
                f.write("root:x:0:\nbobs:x:1234:\n")
            tar = f"{d}.tar"
            subprocess.run(["tar", "-C", d, "-cf", tar, "."], check=True)
            try:
                _podman("import", "--change", 'CMD ["/bin/sh"]', tar, IMAGE)
            finally:
                os.unlink(tar)
    return IMAGE


@pytest.fixture
def container(image):
    made = []

    def start(name, *extra):
        _podman("rm", "-f", name, check=False)
        cid = _podman("run", "-d", "--name", name, *RUN_OPTS, *extra, image, "sleep", "600").stdout.strip()
        made.append(name)
        return cid
    yield start
    for name in made:
        _podman("rm", "-f", "-t", "0", name, check=False)


def _exec_events(live, name, *cmd, user=None):
    args = ["exec"] + (["--user", user] if user else []) + [name] + list(cmd)
    _, events = live.run(lambda: _podman(*args), settle=0.5)
    return events


def test_podman_container_fields(live, container):
    cid = container("pyfalco-c1", "--label", "app=pyfalco-test")
    events = _exec_events(live, "pyfalco-c1", "cat", "/etc/passwd")
    # this container's (other containers may run on this machine meanwhile)
    opens = [e for e in events if e.name in ("open", "openat") and e.get("fd.name") == "/etc/passwd"
             and e.get("container.id") == cid[:12]]
    assert opens, "no open of /etc/passwd inside the container"
    ie = opens[0]
    assert ie.get("container.id") == cid[:12] and ie.get("container.full_id") == cid
    assert ie.get("proc.name") == "cat" and ie.get("proc.vpid") != ie.get("proc.pid")
    assert ie.get("user.name") == "root"
    info = live.insp.containers.wait(cid, timeout=10)
    assert info is not None and info.complete
    assert info.name == "pyfalco-c1" and info.image == IMAGE
    assert info.image_repository == "localhost/pyfalco-busybox" and info.image_tag == "test"
    assert info.privileged is False and info.type == "podman"
    # later events of the container see the metadata
    events = _exec_events(live, "pyfalco-c1", "cat", "/etc/group")
    ie = [e for e in events if e.name in ("open", "openat") and e.get("fd.name") == "/etc/group"
          and e.get("container.id") == cid[:12]][0]
    assert ie.get("container.name") == "pyfalco-c1" and ie.get("container.image") == IMAGE
    assert ie.get("container.image.repository") == "localhost/pyfalco-busybox"
    assert ie.get("container.image.tag") == "test" and ie.get("container.privileged") is False
    assert ie.get("container.type") == "podman"


def test_podman_privileged_and_user_in_container_root(live, container):
    cid = container("pyfalco-c2", "--privileged")
    events = _exec_events(live, "pyfalco-c2", "cat", "/etc/hostname", user="1234")
    live.insp.containers.wait(cid, timeout=10)
    events = _exec_events(live, "pyfalco-c2", "cat", "/etc/hostname", user="1234")
    ie = [e for e in events if e.name in ("open", "openat") and e.get("fd.name") == "/etc/hostname"
          and e.get("container.id") == cid[:12]][0]
    assert ie.get("container.privileged") is True
    assert ie.get("user.uid") == 1234 and ie.get("user.name") == "bob"       # the container's /etc/passwd
    assert ie.get("group.gid") == 1234 and ie.get("group.name") == "bobs"
    assert ie.get("user.homedir") == "/home/bob"


def test_podman_docker_compatible_api(image, container, tmp_path):
    """Metadata through the Docker-compatible API of `podman system service` (labels come from there)."""
    from pyfalco.state.containers import ContainerInfo, ContainerManager
    sock = str(tmp_path / "podman.sock")
    svc = subprocess.Popen(PODMAN + ["system", "service", "--time=0", f"unix://{sock}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        cid = container("pyfalco-c3", "--label", "app=pyfalco-api")
        mgr = ContainerManager(live=False, podman_storage="/nonexistent", containerd_tasks="/nonexistent",
                               docker_sockets=[sock], cri_sockets=[])
        info = ContainerInfo(cid, "podman")
        assert mgr.lookup(info)
        assert info.source.startswith("docker-api")
        assert info.name == "pyfalco-c3" and info.labels.get("app") == "pyfalco-api"
        assert info.image == IMAGE and info.privileged is False and info.start_ts
    finally:
        svc.terminate()
        svc.wait(timeout=10)
