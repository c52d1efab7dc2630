# SPDX-License-Identifier: Apache-2.0
"""Benign workloads produce no alert from the default ruleset (live eBPF): installing a package
with pip and with apt into temporary targets, building the project, and running part of the
project's own unit tests. A false positive is fixed in the rules, never by disabling one."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, **kw)


def _assert_quiet(w):
    w.close()
    w.assert_no_alerts()


def test_pip_install_into_temp_target(default_session, tmp_path):
    with default_session.watch() as w:
        cp = _run([sys.executable, "-m", "pip", "install", "--no-cache-dir", "--no-deps", "--disable-pip-version-check",
                   "--target", str(tmp_path / "site"), "six"])
    assert cp.returncode == 0, cp.stderr
    assert list((tmp_path / "site").glob("six*"))
    _assert_quiet(w)


def test_apt_package_into_temp_target(default_session, tmp_path):
    with default_session.watch() as w:
        cp = _run(["apt-get", "download", "hello"], cwd=tmp_path)
        debs = sorted(glob.glob(str(tmp_path / "*.deb")))
        if cp.returncode != 0 or not debs:      # offline: a package apt already has in its cache
            debs = sorted(glob.glob("/var/cache/apt/archives/*.deb"))[:1]
        assert debs, f"apt-get download failed and apt has no cached package: {cp.stderr}"
        _run(["apt-cache", "policy", "hello"])
        cp = _run(["dpkg-deb", "-x", debs[0], str(tmp_path / "root")])
    assert cp.returncode == 0, cp.stderr
    assert any((tmp_path / "root").rglob("*"))
    _assert_quiet(w)


def test_build_the_project(default_session, tmp_path):
    if shutil.which("cmake") is None:
        pytest.fail("cmake is needed (tools/setup installs it)")
    with default_session.watch() as w:
        cp = _run(["cmake", "-S", str(REPO), "-B", str(tmp_path / "build"), "-DPYFALCO_BUILD_BPF=OFF"])
        assert cp.returncode == 0, cp.stdout + cp.stderr
        cp = _run(["cmake", "--build", str(tmp_path / "build"), "-j2"])
    assert cp.returncode == 0, cp.stdout + cp.stderr
    _assert_quiet(w)


def test_the_projects_unit_tests(default_session):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    with default_session.watch() as w:
        # test_generator_status runs event-generator actions (cat /etc/shadow, ...): attacks on purpose
        cp = _run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/unit",
                   "--ignore", "tests/unit/test_generator_status.py"], cwd=REPO, env=env)
    assert cp.returncode == 0, cp.stdout[-3000:]
    _assert_quiet(w)
