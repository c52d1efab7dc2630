# SPDX-License-Identifier: Apache-2.0
"""Container runtimes at work raise nothing with the default ruleset (live eBPF, real podman and
containerd): importing an image (podman's chrooted ``exe`` helper writes the layer's /etc/passwd,
/bin/busybox, /root/...), building one (RUN steps in buildah's cgroup, COPY by the helper),
starting and stopping containers (CNI network set-up), removing images, ``ctr image import``
into a containerd, and a package install by apt. Each workload is checked to have done its job,
so a quiet result is not a failed command.

The runtimes are recognised by their executables (proc.exepath); the last test checks that a
program that only takes a runtime's *name* is still reported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from pyfalco.generator.context import PODMAN
from pyfalco.generator.image import _rootfs_tar, busybox_path, ensure_image

pytestmark = [pytest.mark.root, pytest.mark.slow]

STATE_TESTS = Path(__file__).resolve().parents[1] / "state"
TAG = f"localhost/pyfalco-benign-{uuid.uuid4().hex[:10]}"
#: rlimits runc may set on this machine (the generator's containers use the same)
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def _run(argv, timeout=300, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def _quiet(w):
    w.close()
    w.assert_no_alerts()


@pytest.fixture(scope="module")
def workdir():
    if shutil.which("podman") is None:
        pytest.fail("podman is needed (tools/setup installs it)")
    d = tempfile.mkdtemp(prefix="pyfalco-benign-rt-")
    yield Path(d)
    _run(PODMAN + ["rmi", "-f", TAG, TAG + "-built"])
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def imported(default_session, workdir):
    """A fresh image imported under a watch (what the generator does on a machine without its image)."""
    tar = workdir / "rootfs.tar"
    tar.write_bytes(_rootfs_tar(busybox_path()))
    with default_session.watch() as w:
        cp = _run(PODMAN + ["import", "--change", "CMD=/bin/sh", "--change", "ENV=PATH=/usr/bin:/bin",
                            str(tar), TAG])
    assert cp.returncode == 0, cp.stderr
    return w


def test_podman_import_of_a_fresh_image(imported):
    assert _run(["podman", "image", "exists", TAG]).returncode == 0
    _quiet(imported)


def test_generator_image_build(default_session):
    """ensure_image() under another name: the same import the generator does the first time."""
    name = f"localhost/pyfalco-eventgen-check-{uuid.uuid4().hex[:8]}"
    try:
        with default_session.watch() as w:
            assert ensure_image(name) == name
        assert _run(["podman", "image", "exists", name]).returncode == 0
        _quiet(w)
    finally:
        _run(["podman", "rmi", "-f", name])


def test_podman_build(default_session, imported, workdir):
    ctx = workdir / "build"
    ctx.mkdir()
    (ctx / "payload.txt").write_text("hello\n")
    (ctx / "Containerfile").write_text(
        f"FROM {TAG}\n"
        "RUN echo built > /etc/motd && mkdir -p /usr/local/bin/tools && echo x > /root/.profile\n"
        "COPY payload.txt /etc/payload.txt\n"
        "COPY payload.txt /usr/bin/payload\n"
        "RUN chmod 4755 /usr/bin/payload && chmod 600 /etc/shadow && ln -s /etc/shadow /tmp/s\n")
    with default_session.watch() as w:
        cp = _run(PODMAN + ["build", "--pull=never", *ULIMITS, "-t", TAG + "-built", str(ctx)])
    assert cp.returncode == 0, cp.stdout[-2000:] + cp.stderr[-2000:]
    out = _run(PODMAN + ["run", "--rm", *ULIMITS, "--network", "none", TAG + "-built", "/bin/cat", "/etc/motd"])
    assert out.stdout == "built\n", out.stderr
    _quiet(w)


def test_container_start_and_stop(default_session, imported):
    name = f"pyfalco-benign-{uuid.uuid4().hex[:8]}"
    with default_session.watch() as w:
        cp = _run(PODMAN + ["run", "--rm", *ULIMITS, TAG, "/bin/true"])
        assert cp.returncode == 0, cp.stderr
        cp = _run(PODMAN + ["run", "-d", *ULIMITS, "--name", name, TAG, "/bin/sleep", "60"])
        assert cp.returncode == 0, cp.stderr
        cid = cp.stdout.strip()
        w.add_container(cid)
        assert _run(PODMAN + ["exec", name, "/bin/cat", "/etc/hostname"]).returncode == 0
        assert _run(PODMAN + ["stop", "-t", "1", name]).returncode == 0
        assert _run(PODMAN + ["rm", "-f", name]).returncode == 0
    _quiet(w)


def test_podman_rmi(default_session, imported, workdir):
    tag = TAG + "-rmi"
    assert _run(PODMAN + ["tag", TAG, tag]).returncode == 0
    built = f"{TAG}-layer"
    ctx = workdir / "rmi"
    ctx.mkdir()
    (ctx / "Containerfile").write_text(f"FROM {TAG}\nRUN rm -f /root/.ash_history && echo a > /root/.ash_history\n")
    assert _run(PODMAN + ["build", "--pull=never", *ULIMITS, "-t", built, str(ctx)]).returncode == 0
    with default_session.watch() as w:
        cp = _run(PODMAN + ["rmi", tag, built])
    assert cp.returncode == 0, cp.stderr
    _quiet(w)


def test_ctr_image_import(default_session):
    sys.path.insert(0, str(STATE_TESTS))
    try:
        from test_containerd import Containerd, build_image_archive
    finally:
        sys.path.remove(str(STATE_TESTS))
    for tool in ("containerd", "ctr"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed (tools/setup installs containerd)")
    base = tempfile.mkdtemp(prefix="pyfalco-containerd-")
    ctd = Containerd(base)
    try:
        ctd.start()
        archive = f"{base}/image.tar"
        build_image_archive(archive)
        with default_session.watch() as w:
            cp = ctd.ctr("images", "import", archive, check=False)
            assert cp.returncode == 0, cp.stderr
            listed = ctd.ctr("images", "ls", "-q", check=False).stdout
            rm = ctd.ctr("images", "rm", "localhost/pyfalco-busybox:cri", check=False)
        assert "pyfalco-busybox" in listed and rm.returncode == 0, rm.stderr
        _quiet(w)
    finally:
        ctd.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_apt_reinstall_of_an_installed_package(default_session):
    """A real package install through apt and dpkg (busybox-static is installed by tools/setup)."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    with default_session.watch() as w:
        cp = _run(["apt-get", "install", "-y", "--reinstall", "--no-install-recommends",
                   "-o", "DPkg::Lock::Timeout=300", "busybox-static"], env=env, timeout=600)
    assert cp.returncode == 0, cp.stdout[-2000:] + cp.stderr[-2000:]
    assert os.path.exists(busybox_path())
    _quiet(w)


def test_a_runtime_name_is_not_a_pass(default_session, tmp_path):
    """A program copied under a runtime's name (comm "podman", "exe", "runc") writing below /etc
    is reported: the exemption follows the executable's path, which the kernel reports."""
    target = Path("/etc") / f"pyfalco-benign-{uuid.uuid4().hex[:8]}"
    fired = {}
    try:
        for name in ("podman", "exe", "runc"):
            fake = tmp_path / name
            shutil.copy(os.path.realpath(shutil.which("dash") or "/bin/sh"), fake)
            with default_session.watch() as w:
                cp = _run([str(fake), "-c", f"echo x > {target}"])
            assert cp.returncode == 0, cp.stderr
            fired[name] = [a.fields.get("proc.exepath") for a in w.matching("Write below etc")]
    finally:
        target.unlink(missing_ok=True)
    assert all(fired[n] for n in fired), fired
