# SPDX-License-Identifier: Apache-2.0
"""proc.is_exe_upper_layer / proc.is_exe_lower_layer of processes that were running before the
capture started: the drivers compute them at execve, so for these the /proc scan does
(pyfalco.procscan.exe_layer: the overlay holding the executable in the process's mountinfo, the
file's inode in that overlay's upperdir). Real podman containers (overlay storage, the busybox
image of test_containers.py) started before a live DetectionSession: a shell copied into the
container and run from there is seen as the upper layer, the image's own shell as the lower one.
"""

from __future__ import annotations

import os
import time

import pytest

from pyfalco import procscan
from test_containers import _podman, image  # noqa: F401  (the module's image fixture)

pytestmark = pytest.mark.root

RUN_OPTS = ["--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
# the shell itself opens /etc/hostname once a second (a builtin's redirection)
LOOP = "while :; do read x < /etc/hostname; sleep 1; done"
UPPER, LOWER = "Upper layer shell reads hostname (test)", "Lower layer shell reads hostname (test)"
RULES = f"""
- rule: {UPPER}
  desc: a shell written into a container after it started reads a file
  condition: evt.type in (open, openat, openat2) and evt.dir = < and fd.name = /etc/hostname and container.id != host
    and proc.is_exe_upper_layer = true
  output: upper exe=%proc.exepath lower=%proc.is_exe_lower_layer
  priority: NOTICE
- rule: {LOWER}
  desc: the image's own shell reads a file
  condition: evt.type in (open, openat, openat2) and evt.dir = < and fd.name = /etc/hostname and container.id != host
    and proc.is_exe_lower_layer = true
  output: lower exe=%proc.exepath upper=%proc.is_exe_upper_layer
  priority: NOTICE
"""


@pytest.fixture
def running(image):  # noqa: F811
    """Two containers whose shells run before any capture: one copied into the container (upper),
    one of the image (lower). Yields {name: (container id, pid)}."""
    made = {}
    scripts = {"pyfalco-layer-up": f"mkdir /drop; cp /bin/busybox /drop/sh; exec /drop/sh -c '{LOOP}'",
               "pyfalco-layer-low": f"exec /bin/sh -c '{LOOP}'"}
    try:
        for name, script in scripts.items():
            _podman("rm", "-f", name, check=False)
            cid = _podman("run", "-d", "--name", name, *RUN_OPTS, image, "sh", "-c", script).stdout.strip()
            made[name] = cid
        out = {}
        for name, cid in made.items():
            pid = int(_podman("inspect", "-f", "{{.State.Pid}}", name).stdout.strip())
            assert pid > 0, _podman("logs", name, check=False).stderr
            out[name] = (cid, pid)
        yield out
    finally:
        for name in made:
            _podman("rm", "-f", "-t", "0", name, check=False)


def _wait_exe(pid: int, path: str) -> None:
    # the upper container's shell execs itself from /drop/sh right after copying it
    for _ in range(100):
        if procscan.scan_thread(pid, with_fds=False).exepath == path:
            return
        time.sleep(0.1)
    raise AssertionError(f"pid {pid} never ran {path}")


def test_scan_tells_the_layers_apart(running):
    up_pid, low_pid = running["pyfalco-layer-up"][1], running["pyfalco-layer-low"][1]
    _wait_exe(up_pid, "/drop/sh")
    up = procscan.scan_thread(up_pid, with_fds=False)
    low = procscan.scan_thread(low_pid, with_fds=False)
    assert (up.exepath, up.exe_upper_layer, up.exe_lower_layer) == ("/drop/sh", True, False)
    assert (low.exepath, low.exe_upper_layer, low.exe_lower_layer) == ("/bin/busybox", False, True)
    me = procscan.scan_thread(os.getpid(), with_fds=False)      # the host's root is not an overlay here
    assert (me.exe_upper_layer, me.exe_lower_layer) == (False, False)


def test_processes_started_before_the_agent_keep_their_layer(running, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("live eBPF detection tests need root")
    from pyfalco.testing import DetectionSession
    _wait_exe(running["pyfalco-layer-up"][1], "/drop/sh")
    rules = tmp_path / "layers.yaml"
    rules.write_text(RULES)
    session = DetectionSession([str(rules)]).start()
    try:
        with session.watch(containers=[cid for cid, _ in running.values()]) as w:
            for _ in range(60):        # each shell opens /etc/hostname once a second
                if w.matching(UPPER) and w.matching(LOWER):
                    break
                time.sleep(0.5)
        up, low = w.matching(UPPER), w.matching(LOWER)
    finally:
        session.stop()
    assert up and low, w._summary()
    up_cid, low_cid = running["pyfalco-layer-up"][0], running["pyfalco-layer-low"][0]
    assert {a.container_id for a in up} == {up_cid[:12]} and {a.fields["proc.exepath"] for a in up} == {"/drop/sh"}
    assert {a.container_id for a in low} == {low_cid[:12]}
    assert all(a.fields["proc.is_exe_lower_layer"] is False for a in up)
    assert all(a.fields["proc.is_exe_upper_layer"] is False for a in low)
