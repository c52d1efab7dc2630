# SPDX-License-Identifier: Apache-2.0
"""pyfalco.testing over the k8s audit source: a DetectionSession with the built-in k8saudit
plugin serving its real webhook on a free loopback port; the event generator's k8saudit actions
POST to it (in-process and through the ``pyfalco-event-generator`` CLI, ``--k8s-audit-url``) and
the windows assert on the alerts. sync() makes everything answered 200 before it visible."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from importlib import metadata

import pytest

from k8sauditkit import DEFAULT_K8S_RULES, post
from pyfalco.generator import k8saudit as gen
from pyfalco.testing import DetectionError, DetectionSession

K8S = {"name": "k8saudit", "library_path": "libk8saudit.so", "open_params": "http://127.0.0.1:0/k8s-audit"}
JSON = {"name": "json", "library_path": "libjson.so"}


@pytest.fixture
def k8s_session():
    with DetectionSession([str(DEFAULT_K8S_RULES)], engine=None, plugins=[K8S, JSON]) as falco:
        yield falco


def test_generator_actions_fire_in_a_watch(k8s_session):
    url = k8s_session.webhook_url("k8s_audit")
    assert url.startswith("http://127.0.0.1:") and url.endswith("/k8s-audit")
    assert int(url.split(":")[2].split("/")[0]) >= 1024     # port 0: a free port, not http's 80
    with k8s_session.watch() as w:
        gen.run_k8s_action(gen.K8S_ACTIONS["k8saudit.privileged_pod"], url)
    hits = w.assert_fired("Create Privileged Pod", count=1)
    assert hits[0].source == "k8s_audit" and hits[0].fields["ka.resp.name"] == "priv-debug"
    w.assert_not_fired("Attach/Exec Pod")
    # a later window sees only its own events; benign events fire nothing
    with k8s_session.watch() as w2:
        assert post(int(url.split(":")[2].split("/")[0]), gen.event_list(gen.benign_events()))[0] == 200
    w2.assert_no_alerts()
    with pytest.raises(DetectionError):
        w2.assert_fired("Create Privileged Pod")


def test_every_action_through_the_cli(k8s_session):
    url = k8s_session.webhook_url()
    w = k8s_session.watch()
    r = subprocess.run([sys.executable, "-m", "pyfalco.generator", "run", "k8saudit.*", "--k8s-audit-url", url,
                        "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert {x["name"] for x in report} == set(gen.K8S_ACTIONS) and all(x["ok"] for x in report)
    # the alerts are there as soon as the window is read: sync() waited for the source
    assert sorted(a.rule for a in w.alerts) == sorted(r for a in gen.K8S_ACTIONS.values() for r in a.rules)
    for act in gen.K8S_ACTIONS.values():
        for rule in act.rules:
            w.assert_fired(rule)


def test_default_rules_with_the_k8s_audit_source():
    """rules=None with a k8s_audit source loads pyfalco's default k8s audit rules (engine=None:
    those alone), as the agent does."""
    from pyfalco.testing import default_k8s_rules_path, k8saudit_plugins
    with DetectionSession(engine=None, plugins=k8saudit_plugins()) as falco:
        assert falco.rules_sources == [default_k8s_rules_path()]
        with falco.watch() as w:
            gen.run_k8s_action(gen.K8S_ACTIONS["k8saudit.kube_system_pod"], falco.webhook_url())
        w.assert_fired_only("Pod Created in Kube Namespace")


def test_a_file_source_and_a_bad_plugin(tmp_path):
    f = tmp_path / "audit.jsonl"
    f.write_text("\n".join(json.dumps(e) for e in gen.exec_pod(name="from-file")) + "\n")
    with DetectionSession([str(DEFAULT_K8S_RULES)], engine=None,
                          plugins=[dict(K8S, open_params=str(f)), JSON]) as falco:
        falco.watch(pid=0)   # a window opened after the file was read still sees it: scope all
        hits = falco.alerts
        assert [a.rule for a in hits] == ["Attach/Exec Pod"] and hits[0].fields["ka.target.name"] == "from-file"
    # a webhook that cannot bind (the port is taken) is an error of start(), naming the plugin
    from pyfalco.plugins.api import PluginError
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with pytest.raises(PluginError, match="k8saudit"):
            DetectionSession([str(DEFAULT_K8S_RULES)], engine=None,
                             plugins=[dict(K8S, open_params=f"http://127.0.0.1:{taken}/k8s-audit"), JSON]).start()
    with pytest.raises(ValueError, match="engine=None needs plugins"):
        DetectionSession([str(DEFAULT_K8S_RULES)], engine=None).start()


SAMPLE = '''
import os
import subprocess
import sys


def test_privileged_pod_is_detected(falco_k8saudit):
    assert os.environ["PYFALCO_K8S_AUDIT_URL"].startswith("http://127.0.0.1:")
    # the generator posts to $PYFALCO_K8S_AUDIT_URL: the session's webhook
    subprocess.run([sys.executable, "-m", "pyfalco.generator", "run", "k8saudit.privileged_pod"], check=True)
    hits = falco_k8saudit.assert_fired("Create Privileged Pod", count=1)
    assert hits[0].source == "k8s_audit"
    falco_k8saudit.assert_not_fired("Attach/Exec Pod")


def test_the_next_window_is_empty(falco_k8saudit):
    falco_k8saudit.assert_no_alerts()


def test_exec_is_detected(falco_k8saudit):
    subprocess.run([sys.executable, "-m", "pyfalco.generator", "run", "k8saudit.exec_pod"], check=True)
    falco_k8saudit.assert_fired_only("Attach/Exec Pod")
'''


def _plugin_args() -> list[str]:
    eps = metadata.entry_points()
    group = eps.select(group="pytest11") if hasattr(eps, "select") else eps.get("pytest11", [])
    return [] if any(ep.value.startswith("pyfalco.testing") for ep in group) else ["-p", "pyfalco.testing.plugin"]


def test_pytest_fixture_in_another_project(tmp_path):
    """The pytest plugin's falco_k8saudit fixture in a separate pytest run, as another project
    uses it (no root needed): three tests, the generator's actions posted through the CLI."""
    (tmp_path / "test_k8s_sample.py").write_text(textwrap.dedent(SAMPLE))
    cp = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *_plugin_args(),
                         str(tmp_path / "test_k8s_sample.py")],
                        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert cp.returncode == 0, cp.stdout[-4000:] + cp.stderr[-2000:]
    assert "3 passed" in cp.stdout
