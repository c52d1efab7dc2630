# SPDX-License-Identifier: Apache-2.0
"""The wheel works alone: built from a clean copy of the checkout (``pip wheel --no-deps``, by the
README's block) and installed with pip into a fresh virtual environment, run from an empty folder
outside the checkout with no PYTHONPATH: plain ``pyfalco`` (root, live eBPF) loads the packaged
configuration and default rules and detects ``cat /etc/shadow``; ``python -m pyfalco``,
``pyfalco --dry-run``, the pytest fixtures of ``pyfalco.testing`` and ``pyfalco-event-generator run
--check`` work; the wheel carries the package data, ``py.typed`` and the license files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import zipfile

import pytest

from packagingtools import clean_env

pytestmark = [pytest.mark.slow]

SHADOW_RULE = "Read sensitive file untrusted"


@pytest.fixture
def empty_dir(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    return d


def run(venv, args, cwd, timeout=300, **kw):
    return subprocess.run(args, cwd=cwd, env=clean_env(cwd), capture_output=True, text=True, timeout=timeout, **kw)


def _require_root():
    if os.geteuid() != 0:
        pytest.fail("the live wheel tests need root (modern eBPF)")


def test_wheel_contents(readme_wheel):
    with zipfile.ZipFile(readme_wheel.wheel) as z:
        names = set(z.namelist())
        data_cfg = z.read("pyfalco/data/pyfalco.yaml")
        data_rules = z.read("pyfalco/data/pyfalco_rules.yaml")
        data_k8s_rules = z.read("pyfalco/data/pyfalco_k8s_audit_rules.yaml")
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    src = readme_wheel.src
    assert data_cfg == (src / "deploy" / "pyfalco.yaml").read_bytes()
    assert data_rules == (src / "rules" / "pyfalco_rules.yaml").read_bytes()
    assert data_k8s_rules == (src / "rules" / "pyfalco_k8s_audit_rules.yaml").read_bytes()
    assert {"pyfalco/py.typed", "pyfalco/__main__.py", "pyfalco/libpyfalco.so",
            "pyfalco/driver_loader/kmod_src/LICENSE", "pyfalco/driver_loader/kmod_src/LICENSE.MIT",
            "pyfalco/driver_loader/kmod_src/LICENSE.GPL-2.0"} <= names
    lic = {n.split(".dist-info/", 1)[1] for n in names if ".dist-info/licenses/" in n}
    assert {"licenses/LICENSE", "licenses/driver/LICENSE", "licenses/kmod/LICENSE"} <= lic
    assert "Apache-2.0 (library), GPL-2.0-only OR MIT (drivers)" in meta
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_licenses_match_pyproject():
    from packagingtools import REPO
    text = (REPO / "pyproject.toml").read_text()
    assert 'license = { text = "Apache-2.0 (library), GPL-2.0-only OR MIT (drivers)" }' in text
    assert "Apache License\n                           Version 2.0, January 2004" in (REPO / "LICENSE").read_text()
    for d in ("driver", "kmod"):
        assert "GPL-2.0-only OR MIT" in (REPO / d / "LICENSE").read_text()
        assert "GNU GENERAL PUBLIC LICENSE\n                       Version 2, June 1991" in \
            (REPO / d / "LICENSE.GPL-2.0").read_text()
        assert (REPO / d / "LICENSE.MIT").read_text().startswith("MIT License")


def test_dry_run_and_python_m_from_an_empty_folder(fresh_venv, empty_dir):
    r = run(fresh_venv, [str(fresh_venv / "bin" / "pyfalco"), "--dry-run", "-o", "log_syslog=false"], empty_dir)
    assert r.returncode == 0, r.stderr
    assert f"configuration {fresh_venv}/lib/" in r.stderr and "pyfalco/data/pyfalco.yaml and " in r.stderr
    r = run(fresh_venv, [str(fresh_venv / "bin" / "python"), "-m", "pyfalco", "--version"], empty_dir)
    assert r.returncode == 0 and r.stdout.startswith("pyfalco version: "), r.stderr
    r = run(fresh_venv, [str(fresh_venv / "bin" / "python"), "-c",
                         "import pyfalco, pathlib; p = pathlib.Path(pyfalco.__file__).parent; "
                         "print((p / 'py.typed').exists(), p)"], empty_dir)
    assert r.stdout.split()[0] == "True" and r.stdout.split()[1].startswith(str(fresh_venv)), r.stdout + r.stderr
    # missing rules are fatal from the installed package too
    r = run(fresh_venv, [str(fresh_venv / "bin" / "pyfalco"), "--dry-run", "-r", "missing.yaml"], empty_dir)
    assert r.returncode == 1 and "Could not open rules file missing.yaml for reading" in r.stderr


def test_plain_pyfalco_detects_cat_etc_shadow(fresh_venv, empty_dir):
    _require_root()
    assert not os.path.exists("/etc/pyfalco/pyfalco.yaml"), \
        "this machine has /etc/pyfalco/pyfalco.yaml: the test checks the packaged default"
    # plain pyfalco; the overrides only keep the test off shared resources (syslog, port 8765)
    # and make the alerts JSON
    proc = subprocess.Popen([str(fresh_venv / "bin" / "pyfalco"), "-M", "120", "-o", "webserver.enabled=false",
                             "-o", "syslog_output.enabled=false", "-o", "log_syslog=false", "-o", "json_output=true"],
                            cwd=empty_dir, env=clean_env(empty_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    out: list = []
    err: list = []
    threads = [threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True),
               threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True)]
    for t in threads:
        t.start()

    def shadow_alert():
        for line in list(out):
            if line.startswith("{"):
                a = json.loads(line)
                f = a.get("output_fields", {})
                if a["rule"] == SHADOW_RULE and f.get("fd.name") == "/etc/shadow" and f.get("proc.name") == "cat":
                    return a
        return None
    try:
        end = time.monotonic() + 90
        while time.monotonic() < end and not any("loaded " in x and " rules from " in x for x in err):
            assert proc.poll() is None, "".join(err)
            time.sleep(0.1)
        alert = None
        while time.monotonic() < end and alert is None:
            subprocess.run(["cat", "/etc/shadow"], stdout=subprocess.DEVNULL, check=True)
            time.sleep(0.3)
            alert = shadow_alert()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for t in threads:
            t.join(5)
    log = "".join(err)
    assert alert is not None, log
    assert code == 0, log
    assert f"loaded configuration {fresh_venv}/lib/" in log and "/site-packages/pyfalco/data/pyfalco.yaml" in log
    assert alert["priority"] == "Warning" and "mitre_credential_access" in alert["tags"]


FIXTURE_TESTS = '''
import subprocess

from pyfalco.testing import default_rules_path


def test_default_rules_are_the_packaged_ones():
    assert default_rules_path().endswith("site-packages/pyfalco/data/pyfalco_rules.yaml")


def test_cat_shadow_fires(falco):
    subprocess.run(["cat", "/etc/shadow"], stdout=subprocess.DEVNULL, check=True)
    falco.assert_fired("Read sensitive file untrusted", **{"fd.name": "/etc/shadow"})


def test_true_is_quiet(falco):
    subprocess.run(["true"], check=True)
    falco.assert_not_fired("Read sensitive file untrusted")
'''


def test_pytest_fixtures_work_from_the_wheel(fresh_venv, empty_dir):
    _require_root()
    (empty_dir / "test_detect.py").write_text(FIXTURE_TESTS)
    r = run(fresh_venv, [str(fresh_venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                         "--pyfalco-require", "test_detect.py"], empty_dir, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 passed" in r.stdout, r.stdout


def test_event_generator_check_from_the_wheel(fresh_venv, empty_dir):
    _require_root()
    actions = ["read_sensitive_file", "shell_from_server", "exec_from_dev_shm", "fileless_execution"]
    r = run(fresh_venv, [str(fresh_venv / "bin" / "pyfalco-event-generator"), "run", "--check", "-v", *actions],
            empty_dir, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    for a in actions:
        assert any(x.startswith(a) and x.endswith(" ok") for x in r.stdout.splitlines()), r.stdout
    assert r.stdout.splitlines()[-1] == f"all {len(actions)} action(s) fired their rules"
