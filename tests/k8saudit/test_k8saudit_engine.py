# SPDX-License-Identifier: Apache-2.0
"""k8saudit through pyfalco.Engine and the plugin framework's PluginSource: Falco's
k8s_audit_rules.yaml over the real webhook (a running source) and over a file (a source that
ends), alerts with source k8s_audit and their output fields."""

from __future__ import annotations

import json
import threading
import time

import pytest

import pyfalco
from k8sauditkit import DEFAULT_K8S_RULES, FALCO_K8S_RULES, post
from pyfalco.generator import k8saudit as gen
from pyfalco.plugins.registry import PluginSet, load_plugin
from pyfalco.plugins.source import PluginSource


def k8s_source(params: str) -> tuple[PluginSource, PluginSet]:
    k8s = load_plugin({"name": "k8saudit", "library_path": "libk8saudit.so", "init_config": "",
                       "open_params": params})
    plugins = PluginSet([k8s, load_plugin({"name": "json", "library_path": "libjson.so", "init_config": ""})])
    return PluginSource(k8s, plugins), plugins


def test_file_source_ends_and_the_engine_returns(tmp_path):
    evs = gen.benign_events() + [e for a in gen.K8S_ACTIONS.values() for e in a.build()]
    f = tmp_path / "audit.jsonl"
    f.write_text("\n".join(json.dumps(e) for e in evs) + "\n")
    src, plugins = k8s_source(str(f))
    engine = pyfalco.Engine(sources=[src], rule_matching="all")
    engine.load_rules(str(FALCO_K8S_RULES), plugins=plugins.versions())
    alerts: list = []
    try:
        n = engine.run(alerts.append, duration=60)
    finally:
        engine.close()
    assert n == len(evs) and engine.ended
    assert {a.source for a in alerts} == {"k8s_audit"}
    assert sorted(a.rule for a in alerts) == sorted(r for a in gen.K8S_ACTIONS.values() for r in a.upstream)
    priv = next(a for a in alerts if a.rule == "Create Privileged Pod")
    assert priv.fields["ka.user.name"] == "kubernetes-admin" and priv.fields["ka.target.namespace"] == "default"
    assert "Pod started with privileged container" in priv.message
    # the alert time is the audit event's stageTimestamp
    stamp = next(e for e in evs if e.get("requestObject", {}).get("metadata", {}).get("name") == "priv-debug")
    from pyfalco.plugins.k8saudit import parse_timestamp
    assert priv.time_ns == parse_timestamp(stamp["stageTimestamp"])


def test_webhook_source_alerts_while_running():
    src, plugins = k8s_source("http://127.0.0.1:0/k8s-audit")
    engine = pyfalco.Engine(sources=[src])
    engine.load_rules(str(DEFAULT_K8S_RULES), plugins=plugins.versions())
    alerts: list = []
    t = threading.Thread(target=engine.run, args=(alerts.append,), kwargs={"duration": 60}, daemon=True)
    t.start()
    try:
        end = time.monotonic() + 10
        while src._instance is None and time.monotonic() < end:   # the source thread opens the webhook
            time.sleep(0.02)
        inst = src._instance
        port = inst.port
        for act in gen.K8S_ACTIONS.values():
            assert post(port, gen.event_list(gen.benign_events() + act.build()))[0] == 200
        assert post(port, b"{broken")[0] == 400           # answered, counted, the source goes on
        assert post(port, gen.event_list(gen.exec_pod(name="after")))[0] == 200
        end = time.monotonic() + 15
        while len(alerts) < 6 and time.monotonic() < end:
            time.sleep(0.05)
    finally:
        engine.stop()
        t.join(10)
        engine.close()
    assert [a.rule for a in alerts] == [a.rules[0] for a in gen.K8S_ACTIONS.values()] + ["Attach/Exec Pod"]
    assert alerts[-1].fields["ka.target.name"] == "after"
    assert inst.stats()["bad_requests"] == 1
    with pytest.raises(OSError):      # closing the engine closed the webhook
        post(port, gen.exec_pod()[0], timeout=2)
