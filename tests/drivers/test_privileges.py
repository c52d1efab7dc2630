# SPDX-License-Identifier: Apache-2.0
"""The modern_ebpf engine without privileges: the error names the capabilities it needs and the
ones this process lacks, in one line; and the capabilities it names are enough. Each case runs
in a child whose capabilities were dropped for real (setpriv: effective, permitted, inheritable,
ambient and bounding sets), as root-owned files stay readable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.environ.get("PYFALCO_TEST_ENGINE", "modern_ebpf") != "modern_ebpf",
                                 reason="the modern_ebpf engine's privileges (the kmod run tests the module)")]

_CHILD = textwrap.dedent("""
    import os, pyfalco
    from pyfalco.errors import DriverPermissionError
    try:
        with pyfalco.Capture("modern_ebpf", syscalls=["openat"], buffer_bytes=1 << 20) as c:
            open("/dev/null").close()
            n = sum(len(c.next_batch(200)) for _ in range(10))
            print("OPENED", n)
    except DriverPermissionError as err:
        print("PERM", str(err))
""")


def _run_with(caps: str) -> subprocess.CompletedProcess:
    if os.geteuid() != 0:
        pytest.fail("dropping capabilities from root needs root")
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is missing"
    cmd = [setpriv, "--inh-caps=-all", "--ambient-caps=-all", f"--bounding-set=-all{caps}", sys.executable, "-c",
           _CHILD]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("caps,lacks", [
    ("", "CAP_BPF, CAP_PERFMON"),
    (",+bpf", "CAP_PERFMON"),
    (",+perfmon", "CAP_BPF"),
    (",+sys_resource,+net_admin,+sys_ptrace", "CAP_BPF, CAP_PERFMON"),
])
def test_missing_capabilities_are_named(caps, lacks):
    r = _run_with(caps)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout.strip()
    assert out.startswith("PERM "), out + r.stderr[-2000:]
    assert "\n" not in out
    assert "Operation not permitted (the modern_ebpf engine needs root, or the capabilities CAP_BPF and " \
           "CAP_PERFMON (CAP_SYS_ADMIN stands for both)" in out
    assert out.endswith(f"this process lacks {lacks})"), out


@pytest.mark.parametrize("caps", [",+bpf,+perfmon", ",+sys_admin"])
def test_the_named_capabilities_are_enough(caps):
    """The capabilities the message names suffice: the engine opens and delivers events."""
    r = _run_with(caps)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith("OPENED "), r.stdout + r.stderr[-2000:]
    assert int(r.stdout.split()[1]) > 0


def test_agent_without_capabilities_says_it_once(tmp_path):
    setpriv = shutil.which("setpriv")
    cmd = [setpriv, "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", sys.executable, "-m",
           "pyfalco.cli.main", "-o", "webserver.enabled=false", "-o", "syslog_output.enabled=false"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 1, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    lines = [x for x in r.stderr.splitlines() if "Operation not permitted" in x]
    assert len(lines) == 1, lines
    assert "needs root, or the capabilities CAP_BPF and CAP_PERFMON" in lines[0]
    assert "this process lacks CAP_BPF, CAP_PERFMON" in lines[0]
