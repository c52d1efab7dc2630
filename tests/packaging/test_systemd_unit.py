# SPDX-License-Identifier: Apache-2.0
"""deploy/systemd/pyfalco.service passes ``systemd-analyze verify`` (tools/setup installs systemd),
with its ExecStart pointed at a real installed pyfalco (the wheel's fresh venv): the unit as
shipped names /opt/pyfalco, which verify checks for existence. A broken copy fails the same check,
so the check is not vacuous. The agent itself cannot run under systemd here (no systemd as PID 1)."""

from __future__ import annotations

import configparser
import shutil
import subprocess

import pytest

from packagingtools import REPO

pytestmark = pytest.mark.slow

UNIT = REPO / "deploy" / "systemd" / "pyfalco.service"


def verify(path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is missing: tools/setup installs the systemd package")
    return subprocess.run([tool, "verify", str(path)], capture_output=True, text=True, timeout=120)


def unit_for(venv, tmp_path, text=None):
    p = tmp_path / "pyfalco.service"
    p.write_text((text or UNIT.read_text()).replace("/opt/pyfalco", str(venv)))
    return p


def test_unit_is_like_falcos_modern_ebpf_unit():
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str
    cp.read_string(UNIT.read_text())
    svc = cp["Service"]
    assert svc["Type"] == "simple" and svc["Restart"] == "on-failure"
    assert svc["ExecStart"].startswith("/opt/pyfalco/bin/pyfalco")
    assert svc["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert svc["ConfigurationDirectory"] == "pyfalco"
    assert svc["NoNewPrivileges"] == "true" and svc["ProtectSystem"] == "full"
    # nothing that would take away BPF, /proc of other processes or the kmod devices
    for key in ("PrivateDevices", "CapabilityBoundingSet", "ProtectProc", "DeviceAllow", "PrivatePIDs",
                "SystemCallFilter", "ProtectKernelModules", "MemoryDenyWriteExecute"):
        assert key not in svc, key
    assert cp["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_analyze_verify(fresh_venv, tmp_path):
    r = verify(unit_for(fresh_venv, tmp_path))
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    bad = unit_for(fresh_venv, tmp_path, UNIT.read_text().replace("Type=simple", "Type=simplest")
                   .replace("ExecStart=/opt/pyfalco/bin/pyfalco", "ExecStart=/opt/pyfalco/bin/nope"))
    r = verify(bad)
    assert r.returncode != 0 and "nope" in r.stderr, r.stderr
