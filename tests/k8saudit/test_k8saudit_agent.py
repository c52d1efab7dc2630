# SPDX-License-Identifier: Apache-2.0
"""The agent (pyfalco CLI) with a Falco-style k8saudit configuration: the webhook source alone
(--disable-source syscall) alerting on pyfalco-event-generator's POSTs, bad bodies that never
stop it, a file source after which the agent exits, and the packaged default configuration
(k8s audit rules named with -V, no plugin loaded) validating without an error."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from k8sauditkit import DEFAULT_K8S_RULES, FALCO_K8S_RULES, REPO, post
from pyfalco.generator import k8saudit as gen

PYFALCO = [sys.executable, "-m", "pyfalco.cli.main"]


def config(tmp_path: Path, open_params: str, rules: Path, **extra) -> Path:
    cfg = {"stdout_output": {"enabled": True}, "syslog_output": {"enabled": False}, "json_output": True,
           "webserver": {"enabled": False}, "log_syslog": False, "log_stderr": True, "config_files": [],
           "watch_config_files": False, "rules_files": [str(rules)],
           "load_plugins": ["k8saudit", "json"],
           "plugins": [{"name": "k8saudit", "library_path": "libk8saudit.so", "init_config": {"maxEventSize": 65536},
                        "open_params": open_params},
                       {"name": "json", "library_path": "libjson.so", "init_config": ""}]}
    cfg.update(extra)
    p = tmp_path / "pyfalco.yaml"
    p.write_text(json.dumps(cfg))
    return p


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e["FALCO_HOSTNAME"] = "test-host"
    return e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alerts_of(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_webhook_source_alone_alerts_and_survives_bad_bodies(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/k8s-audit"
    alerts_file = tmp_path / "alerts.json"
    cfg = config(tmp_path, url, FALCO_K8S_RULES, file_output={"enabled": True, "filename": str(alerts_file)})
    agent = subprocess.Popen(PYFALCO + ["-c", str(cfg), "--disable-source", "syscall"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env(), cwd=str(REPO))
    try:
        end = time.monotonic() + 60
        while True:       # the webhook answers once the agent runs
            try:
                assert post(port, b"{bad", timeout=2)[0] == 400
                break
            except OSError:
                assert agent.poll() is None, agent.stderr.read()
                assert time.monotonic() < end, "the agent's webhook never came up"
                time.sleep(0.2)
        assert post(port, {"kind": "Status"})[0] == 400
        # a client that resets in the middle of its body
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"POST /k8s-audit HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 900\r\n\r\n{")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        # an event over maxEventSize (65536 here) is skipped, the request is still answered 200
        huge = dict(gen.privileged_pod()[0], blob="y" * 70000)
        assert post(port, gen.event_list([huge]))[0] == 200
        cp = subprocess.run([sys.executable, "-m", "pyfalco.generator", "run", "k8saudit.*", "--k8s-audit-url", url],
                            capture_output=True, text=True, timeout=120, env=env())
        assert cp.returncode == 0, cp.stdout + cp.stderr
        end = time.monotonic() + 60         # the alerts also go to a file: wait for them there
        while len(alerts_of(alerts_file.read_text() if alerts_file.exists() else "")) < len(gen.K8S_ACTIONS):
            assert time.monotonic() < end and agent.poll() is None, "no alerts in time"
            time.sleep(0.1)
    finally:
        agent.terminate()
        out, err = agent.communicate(timeout=30)
    assert agent.returncode == 0, err
    alerts = alerts_of(out)
    # rule_matching first (Falco's default): one alert per event, the first of its rules in the file
    assert len(alerts) == len(gen.K8S_ACTIONS)
    for alert, act in zip(alerts, gen.K8S_ACTIONS.values()):
        assert alert["rule"] in act.upstream
    assert {a["source"] for a in alerts} == {"k8s_audit"}
    priv = next(a for a in alerts if a["rule"] == "Create Privileged Pod")
    assert priv["priority"] == "Warning" and priv["output_fields"]["ka.user.name"] == "kubernetes-admin"
    assert priv["output_fields"]["ka.req.pod.containers.image"] == ["docker.io/library/busybox:1.36"]
    assert "Traceback" not in err and "bad request" in err


def test_file_source_ends_and_the_agent_exits(tmp_path):
    evs = gen.benign_events() + gen.privileged_pod() + gen.cluster_admin_binding() + gen.benign_events()
    f = tmp_path / "audit.log"
    f.write_text("\n".join(json.dumps(e) for e in evs) + "\n")
    cfg = config(tmp_path, str(f), DEFAULT_K8S_RULES)
    cp = subprocess.run(PYFALCO + ["-c", str(cfg), "--disable-source", "syscall"], capture_output=True, text=True,
                        timeout=120, env=env(), cwd=str(REPO))
    assert cp.returncode == 0, cp.stderr
    assert [a["rule"] for a in alerts_of(cp.stdout)] == ["Create Privileged Pod", "Attach to cluster-admin Role"]


def test_packaged_configuration_validates_the_k8s_rules_without_the_plugin():
    # the default configuration loads no plugin: the k8s audit rules named with it (-V) are
    # skipped with warnings, not errors (Falco's behaviour)
    cp = subprocess.run(PYFALCO + ["-c", str(REPO / "deploy" / "pyfalco.yaml"), "-V", str(DEFAULT_K8S_RULES)],
                        capture_output=True, text=True, timeout=120, env=env(), cwd=str(REPO))
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "LOAD_UNKNOWN_SOURCE" in cp.stdout + cp.stderr or "Unknown source" in cp.stdout + cp.stderr


def test_audit_events_round_trip_through_scap(tmp_path):
    # audit events recorded as pluginevents (plugin id 1), replayed by the agent with the plugin
    from pyfalco.plugins.registry import PluginSet, load_plugin
    from pyfalco.plugins.scapio import read_plugin_events, record
    from pyfalco.plugins.source import PluginSource
    evs = gen.benign_events() + gen.exec_pod() + gen.kube_system_pod()
    f = tmp_path / "audit.jsonl"
    f.write_text("\n".join(json.dumps(e) for e in evs) + "\n")
    k8s = load_plugin({"name": "k8saudit", "library_path": "libk8saudit.so", "init_config": "", "open_params": str(f)})
    scap = tmp_path / "audit.scap"
    assert record(PluginSource(k8s, PluginSet([k8s])), str(scap)) == len(evs)
    back = list(read_plugin_events(str(scap), PluginSet([k8s])))
    assert [e.plugin_id for e in back] == [1] * len(evs)
    assert [json.loads(e.data)["auditID"] for e in back] == [e["auditID"] for e in evs]
    cfg = config(tmp_path, "", DEFAULT_K8S_RULES)
    cp = subprocess.run(PYFALCO + ["-c", str(cfg), "-o", "engine.kind=replay", "-o", f"engine.replay.capture_file={scap}"],
                        capture_output=True, text=True, timeout=120, env=env(), cwd=str(REPO))
    assert cp.returncode == 0, cp.stderr
    alerts = alerts_of(cp.stdout)
    assert [a["rule"] for a in alerts] == ["Attach/Exec Pod", "Pod Created in Kube Namespace"]
    assert {a["source"] for a in alerts} == {"k8s_audit"}
