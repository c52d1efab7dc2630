# SPDX-License-Identifier: Apache-2.0
"""pyfalco.testing as another project uses it: the pytest plugin's fixtures in a separate pytest
run (live and replay), and DetectionSession recording a capture that replay() reads back."""

from __future__ import annotations

from pathlib import Path
import subprocess
import sys
import textwrap
from importlib import metadata

import pytest

from pyfalco.testing import DetectionError, DetectionSession, replay

# the paths of tests/rules/conftest.py, not imported from it: with several test directories on
# pytest's command line another directory's conftest module can hold the name 'conftest'
REPO = Path(__file__).resolve().parents[2]
DEFAULT_RULES = REPO / "rules" / "pyfalco_rules.yaml"

SAMPLE = '''
import subprocess

def test_reading_shadow_is_detected(falco):
    subprocess.run(["cat", "/etc/shadow"], stdout=subprocess.DEVNULL)
    falco.assert_fired("Read sensitive file untrusted", fd__name="/etc/shadow")
    falco.assert_not_fired("Write below etc")

def test_quiet_code_raises_nothing(falco):
    subprocess.run(["true"])
    falco.assert_no_alerts()

def test_replay(pyfalco_replay):
    result = pyfalco_replay(CAPTURE)
    result.assert_fired("Create Symlink Over Sensitive Files")
    assert "Read sensitive file untrusted" not in result.fired
'''


def _plugin_args():
    eps = metadata.entry_points()
    group = eps.select(group="pytest11") if hasattr(eps, "select") else eps.get("pytest11", [])
    return [] if any(ep.value.startswith("pyfalco.testing") for ep in group) else ["-p", "pyfalco.testing.plugin"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A capture file of a symlink over /etc/shadow, recorded by a live session."""
    import os
    if os.geteuid() != 0:
        pytest.skip("recording a live capture needs root")
    d = tmp_path_factory.mktemp("rec")
    path = d / "symlink.scap"
    with DetectionSession([str(DEFAULT_RULES)], record=str(path)) as s:
        with s.watch() as w:
            subprocess.run(["ln", "-s", "/etc/shadow", str(d / "link")], check=True)
        w.assert_fired("Create Symlink Over Sensitive Files")
    return path


@pytest.mark.root
def test_record_then_replay(recorded):
    result = replay(recorded, [str(DEFAULT_RULES)])
    hits = result.assert_fired("Create Symlink Over Sensitive Files")
    assert hits[0].fields["evt.arg.target"] == "/etc/shadow"
    with pytest.raises(DetectionError, match="expected at least 1 alert"):
        result.assert_fired("Write below etc")
    with pytest.raises(DetectionError, match="fired"):
        result.assert_not_fired("Create Symlink*")


@pytest.mark.root
@pytest.mark.slow
def test_plugin_in_another_project(recorded, tmp_path):
    (tmp_path / "test_sample.py").write_text(f"CAPTURE = {str(recorded)!r}\n" + textwrap.dedent(SAMPLE))
    cp = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *_plugin_args(),
                         "--pyfalco-require", str(tmp_path / "test_sample.py")],
                        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert cp.returncode == 0, cp.stdout[-4000:] + cp.stderr[-2000:]
    assert "3 passed" in cp.stdout


def test_plugin_rules_option_loads_given_rules(tmp_path):
    """--pyfalco-rules replaces the default ruleset (checked through pyfalco_rules, no capture)."""
    rules = tmp_path / "mine.yaml"
    rules.write_text("- rule: Mine\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: INFO\n")
    (tmp_path / "test_opt.py").write_text(textwrap.dedent('''
        def test_rules(pyfalco_rules):
            assert pyfalco_rules and pyfalco_rules[0].endswith("mine.yaml")
    '''))
    cp = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *_plugin_args(),
                         "--pyfalco-rules", str(rules), str(tmp_path / "test_opt.py")],
                        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert cp.returncode == 0, cp.stdout[-3000:]


def test_session_refuses_a_broken_ruleset():
    from pyfalco.rules import RulesLoadError
    with pytest.raises(RulesLoadError):
        DetectionSession(["- rule: Broken\n  desc: d\n  condition: evt.type = = open\n  output: o\n  priority: INFO\n"]).load()
