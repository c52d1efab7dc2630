# SPDX-License-Identifier: Apache-2.0
"""The event generator's exit status and report say which actions failed: an action whose command
exits with an unexpected status (``cat: /etc/shadow: Permission denied`` as nobody), on the host
or in a container, is reported as FAILED with the command's error, named in the summary line and
the JSON report, and makes the exit status 1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pyfalco.generator import ACTIONS, Action, main, run_action
from pyfalco.generator.actions import get_action

REPO = Path(__file__).resolve().parents[2]
GEN = [sys.executable, "-m", "pyfalco.generator"]


def gen(args, *, as_nobody: bool = False) -> subprocess.CompletedProcess:
    pre = []
    if as_nobody:
        pre = [shutil.which("setpriv") or "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(pre + GEN + list(args), capture_output=True, text=True, timeout=120, env=env, cwd="/")


def _require_root():
    if os.geteuid() != 0:
        pytest.fail("needs root (to run the generator as root and, with setpriv, as nobody)")


def test_action_that_works_is_done_and_exits_0():
    _require_root()
    r = gen(["run", "read_sensitive_file"])
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[-1] == "done"
    assert lines[-1] == "all 1 action(s) done"


def test_action_failing_as_nobody_is_reported_and_exits_1():
    _require_root()
    r = gen(["run", "read_sensitive_file", "shell_from_server"], as_nobody=True)
    assert r.returncode == 1, r.stdout + r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("read_sensitive_file") and "FAILED cat exited with status 1" in first
    assert "/etc/shadow: Permission denied" in first
    assert any(x.startswith("shell_from_server") and x.endswith(" done") for x in r.stdout.splitlines())
    assert r.stdout.splitlines()[-1] == "FAILED: 1 of 2 action(s) failed: read_sensitive_file"
    j = gen(["run", "read_sensitive_file", "shell_from_server", "--json"], as_nobody=True)
    assert j.returncode == 1
    report = {x["name"]: x for x in json.loads(j.stdout)}
    assert report["read_sensitive_file"]["ok"] is False
    assert "Permission denied" in report["read_sensitive_file"]["error"]
    assert report["shell_from_server"] == {**report["shell_from_server"], "ok": True, "error": None}


@pytest.fixture
def failing_actions(monkeypatch):
    """Two extra actions whose real commands fail: a host cat of a missing file, and the same in a
    container of the generator image."""
    def host(ctx):
        ctx.run([ctx.tool("cat"), "/nonexistent-pyfalco-generator-test"])

    def container(ctx):
        ctx.container_sh("/bin/cat /nonexistent-pyfalco-generator-test")
    monkeypatch.setitem(ACTIONS, "test_host_failure", Action("test_host_failure", ("Never",), "host", "", host))
    monkeypatch.setitem(ACTIONS, "test_container_failure",
                        Action("test_container_failure", ("Never",), "container", "", container))


def test_host_command_failure_in_process(failing_actions, capsys):
    run = run_action("test_host_failure")
    assert not run.ok and run.error.startswith("cat exited with status 1: ")
    assert "No such file or directory" in run.error
    assert main(["run", "test_host_failure", "read_ssh_private_key"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "FAILED: 1 of 2 action(s) failed: test_host_failure"


@pytest.mark.root
@pytest.mark.slow
def test_container_command_failure(failing_actions):
    _require_root()
    run = run_action("test_container_failure")
    assert run.error is not None and run.error.startswith("in the container: /bin/sh exited with status 1")
    assert "No such file or directory" in run.error
    assert len(run.containers) == 1
    ok = run_action(get_action("write_below_etc"))
    assert ok.error is None, ok.error


def test_check_that_cannot_start_is_one_line_and_exit_1(tmp_path):
    _require_root()
    missing = tmp_path / "missing_rules.yaml"
    r = gen(["run", "--check", "-r", str(missing), "read_sensitive_file"])
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and "--check: rules:" in r.stderr and str(missing) in r.stderr
    # no privileges for the capture: says so, names the capabilities
    r = gen(["run", "--check", "read_sensitive_file"], as_nobody=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and "cannot start the detection session" in r.stderr
    assert r.stdout == ""
