# SPDX-License-Identifier: Apache-2.0
"""Falco's k8s_audit_rules.yaml (../shared/rules) and pyfalco's default k8s audit rules on the
built-in k8saudit + json plugins: load cleanly, fire on realistic audit events that went through
the real webhook (posted by pyfalco-event-generator), stay quiet on everyday traffic."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from k8sauditkit import DEFAULT_K8S_RULES, FALCO_K8S_RULES, as_events, drain, k8s_ruleset
from pyfalco.generator import k8saudit as gen
from pyfalco.plugins.k8saudit import K8sAuditPlugin, parse_payload
from pyfalco.rules import load_rules


@pytest.fixture(scope="module")
def falco_rules():
    res, _ = k8s_ruleset(FALCO_K8S_RULES)
    return res


@pytest.fixture(scope="module")
def default_rules():
    res, _ = k8s_ruleset(DEFAULT_K8S_RULES, json_plugin=False)
    return res


def fired(ruleset, events: list[dict]) -> list[set]:
    body = gen.event_list(events)
    batch, problems = parse_payload(json.dumps(body).encode())
    assert not problems
    return [{r.name for r in ruleset.match(e, source="k8s_audit")} for e in as_events(batch)]


def test_falco_k8s_audit_rules_load_unchanged_with_no_error(falco_rules):
    assert falco_rules.ok and not falco_rules.errors, falco_rules.as_text(verbose=True)
    assert not falco_rules.warnings, falco_rules.as_text(verbose=True)
    rules = falco_rules.ruleset.enabled_rules("k8s_audit")
    assert len(rules) == 48


def test_default_k8s_rules_load_with_no_error_or_warning(default_rules):
    assert default_rules.ok and not default_rules.warnings, default_rules.as_text(verbose=True)
    assert {r.name for r in default_rules.ruleset.enabled_rules("k8s_audit")} == \
        {r for a in gen.K8S_ACTIONS.values() for r in a.rules}


@pytest.mark.parametrize("name", list(gen.K8S_ACTIONS))
def test_actions_fire_exactly_their_rules(name, falco_rules, default_rules):
    act = gen.K8S_ACTIONS[name]
    (ours,) = fired(default_rules.ruleset, act.build())
    (falco,) = fired(falco_rules.ruleset, act.build())
    assert ours == set(act.rules)
    assert falco == set(act.upstream)


def test_everyday_traffic_fires_nothing(falco_rules, default_rules):
    assert fired(default_rules.ruleset, gen.benign_events()) == [set()] * 4
    assert fired(falco_rules.ruleset, gen.benign_events()) == [set()] * 4


def test_rules_look_at_the_right_stage_and_outcome(default_rules):
    (priv,) = gen.privileged_pod()
    started = dict(priv, stage="RequestReceived")
    (exec_done,) = gen.exec_pod()
    exec_done = dict(exec_done, stage="ResponseComplete")
    unprivileged = copy.deepcopy(priv)
    unprivileged["requestObject"]["spec"]["containers"][0]["securityContext"]["privileged"] = False
    falco_image = copy.deepcopy(priv)
    falco_image["requestObject"]["spec"]["containers"][0]["image"] = "docker.io/falcosecurity/falco:0.39.0"
    system = gen.kube_system_pod(user="system:serviceaccount:kube-system:daemon-set-controller")
    assert fired(default_rules.ruleset, [started, exec_done, unprivileged, falco_image] + system) == [set()] * 5


def test_alert_output_has_the_audit_fields(default_rules):
    (evt,) = as_events(parse_payload(json.dumps(gen.exec_pod(ns="shop", name="cart"))
                                     .encode())[0])
    (rule,) = default_rules.ruleset.match(evt, source="k8s_audit")
    text = rule.output_format.render(evt)
    assert "user=kubernetes-admin pod=cart" in text and "ns=shop action=exec command=sh container=cart" in text


def test_without_a_k8s_audit_source(tmp_path):
    # ours: every rule skipped with Falco's unknown-source warning, no error (the default agent)
    res = load_rules(str(DEFAULT_K8S_RULES))
    assert res.ok and res.ruleset is not None and len(res.ruleset.enabled_rules()) == 0
    codes = [w.code for w in res.warnings]
    assert codes.count("LOAD_UNKNOWN_SOURCE") == 5
    # Falco's file requires the k8saudit and json plugins: an error without them, as in Falco
    res = load_rules(str(FALCO_K8S_RULES))
    assert not res.ok and any("k8saudit" in str(e) for e in res.errors)


def test_generator_posts_to_a_running_webhook():
    p = K8sAuditPlugin()
    p.init("")
    hook = p.open("http://127.0.0.1:0/k8s-audit")
    try:
        url = f"http://127.0.0.1:{hook.port}/k8s-audit"
        cp = subprocess.run([sys.executable, "-m", "pyfalco.generator", "run", "k8saudit.*", "--k8s-audit-url", url],
                            capture_output=True, text=True, timeout=120)
        assert cp.returncode == 0, cp.stdout + cp.stderr
        assert "all 5 action(s) done" in cp.stdout
        got = drain(hook, 5)
        assert len(got) == 5
        res, _ = k8s_ruleset(DEFAULT_K8S_RULES, json_plugin=False)
        names = {r.name for e in as_events(got) for r in res.ruleset.match(e, source="k8s_audit")}
        assert names == {r for a in gen.K8S_ACTIONS.values() for r in a.rules}
    finally:
        hook.close()
    # nothing listens any more: the action fails with the reason, exit status 1
    cp = subprocess.run([sys.executable, "-m", "pyfalco.generator", "run", "k8saudit.exec_pod", "--k8s-audit-url", url],
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode == 1 and "Connection refused" in cp.stdout
    cp = subprocess.run([sys.executable, "-m", "pyfalco.generator", "run", "k8saudit.nope"],
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode == 2 and "unknown action" in cp.stderr
