# SPDX-License-Identifier: Apache-2.0
"""The agent's loop: reloads, internal alerts, webserver, shutdown under load (in process and as a
process receiving real signals). Every loop is bounded in time."""

from __future__ import annotations

import io
import json
import re
import signal
import socket
import threading
import time
import urllib.request

import pytest

import pyfalco
from agenttools import CURL_SCAP, ETC_ALERTS, ETC_RULES, base_config, json_lines, popen_cli
from pyfalco.agent import Agent, load_config


class LoopCapture:
    """Replays a capture file over and over: an endless, fast event source without root."""

    opened = 0

    def __init__(self, engine="replay", capture_file=None, syscalls=None, **kw):
        LoopCapture.opened += 1
        self.path = capture_file or str(CURL_SCAP)
        self.selected = syscalls
        self.closed = False
        self.eof = False
        self.batches = 0
        self._cap = pyfalco.Capture("replay", capture_file=self.path)

    def next_batch(self, timeout_ms=100):
        b = self._cap.next_batch(timeout_ms)
        if not b and self._cap.eof:
            self._cap.close()
            self._cap = pyfalco.Capture("replay", capture_file=self.path)
            b = self._cap.next_batch(timeout_ms)
        self.batches += 1
        return b

    def select(self, syscalls):
        self.selected = syscalls

    def stats(self):
        return {"n_evts": self.batches * 100, "n_drops_buffer": 0}

    def close(self):
        self.closed = True
        self._cap.close()


def make_agent(tmp_path, rules_text=ETC_RULES, overrides=(), **extra):
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_text)
    extra.setdefault("stdout_output", {"enabled": True})
    cfg = base_config(tmp_path, rules_files=[str(rules)], json_output=True,
                      engine={"kind": "replay", "replay": {"capture_file": str(CURL_SCAP)}}, **extra)
    buf = io.BytesIO()
    agent = Agent(load_config(str(cfg), list(overrides)), overrides=list(overrides), stdout_stream=buf,
                  capture_factory=LoopCapture)
    return agent, buf, rules


def run_in_thread(agent):
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("code", agent.run()), daemon=True)
    t.start()
    return t, result


def wait_for(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def rules_seen(buf):
    return {a["rule"] for a in json_lines(buf.getvalue().decode())}


def test_reload_swaps_rules_and_keeps_the_capture(tmp_path):
    agent, buf, rules = make_agent(tmp_path)
    LoopCapture.opened = 0
    t, res = run_in_thread(agent)
    try:
        assert wait_for(lambda: "Etc open" in rules_seen(buf))
        cap = agent.capture
        rules.write_text(ETC_RULES.replace("Etc open", "Etc open v2"))
        agent.request_reload()
        assert wait_for(lambda: "Etc open v2" in rules_seen(buf))
        assert agent.capture is cap and LoopCapture.opened == 1 and agent.metrics.reloads == 1
        # a broken ruleset: refused, the running one keeps alerting
        rules.write_text("- rule: broken\n  desc: d\n  condition: evt.type = open and\n  output: o\n  priority: INFO\n")
        agent.request_reload()
        assert wait_for(lambda: agent.metrics.reload_failures == 1)
        before = len(buf.getvalue())
        assert wait_for(lambda: len(buf.getvalue()) > before)
        assert agent.bundle.ruleset.rules[0].name == "Etc open v2"
    finally:
        agent.request_stop()
        t.join(15)
    assert res["code"] == 0 and cap.closed


def test_reload_selects_new_syscalls(tmp_path):
    agent, buf, rules = make_agent(tmp_path, overrides=["engine.kind=nodriver"])
    t, res = run_in_thread(agent)
    try:
        assert wait_for(lambda: agent.capture is not None and agent.selection is not None)
        assert "chmod" not in agent.capture.selected
        rules.write_text(ETC_RULES.replace("evt.type = open", "evt.type in (open, chmod)"))
        agent.request_reload()
        assert wait_for(lambda: "chmod" in (agent.capture.selected or ()))
    finally:
        agent.request_stop()
        t.join(15)
    assert res["code"] == 0


def test_watched_rules_file_change_reloads(tmp_path):
    agent, buf, rules = make_agent(tmp_path, watch_config_files=True)
    t, res = run_in_thread(agent)
    try:
        assert wait_for(lambda: "Etc open" in rules_seen(buf))
        time.sleep(0.05)
        rules.write_text(ETC_RULES.replace("Etc open", "Etc open watched"))
        assert wait_for(lambda: "Etc open watched" in rules_seen(buf), timeout=15)
    finally:
        agent.request_stop()
        t.join(15)


def test_stop_under_load_accounts_for_every_alert(tmp_path, receiver):
    receiver.mode, receiver.delay = "slow", 0.05
    agent, buf, _ = make_agent(tmp_path, http_output={"enabled": True, "url": receiver.url(), "keep_alive": True},
                               outputs_queue={"capacity": 100})
    t, res = run_in_thread(agent)
    assert wait_for(lambda: agent.metrics.n_evts > 20000, timeout=30)
    agent.request_stop()
    t.join(30)
    assert res["code"] == 0
    alerts = sum(agent.metrics.alerts_by_rule.values())
    internal = agent.metrics.internal_alerts
    counters = agent.outputs.counters()
    for name, c in counters.items():
        assert c["offered"] == alerts + internal, (name, c)
        assert c["offered"] == c["sent"] + c["failed"] + c["dropped_full"] + c["dropped_shutdown"], (name, c)
        assert c["pending"] == 0
    assert counters["stdout"]["sent"] == len(buf.getvalue().splitlines())
    # an alert whose delivery failed may still have reached the server (it is never sent twice)
    http = counters["http"]
    assert http["sent"] <= len(receiver.bodies) <= http["sent"] + http["failed"] + http["dropped_shutdown"]
    assert counters["http"]["dropped_full"] > 0          # the slow receiver could not keep up ...
    assert counters["stdout"]["dropped_full"] == 0       # ... without holding back the others


def test_internal_drop_and_metrics_alerts(tmp_path):
    agent, buf, _ = make_agent(tmp_path, overrides=["engine.kind=nodriver", "syscall_event_drops.simulate_drops=true",
                                                    "syscall_event_drops.rate=100", "syscall_event_drops.max_burst=10",
                                                    "metrics.enabled=true", "metrics.interval=1s",
                                                    f"metrics.output_file={tmp_path / 'metrics.jsonl'}"])
    t, res = run_in_thread(agent)
    try:
        assert wait_for(lambda: {"Falco internal: syscall event drop", "Falco internal: metrics snapshot"}
                        <= rules_seen(buf), timeout=15)
    finally:
        agent.request_stop()
        t.join(15)
    out = json_lines(buf.getvalue().decode())
    drop = next(a for a in out if a["rule"] == "Falco internal: syscall event drop")
    assert drop["priority"] == "Debug" and drop["source"] == "internal" and "tags" not in drop
    assert drop["output_fields"]["n_drops"] == "1" and "n_drops_buffer_total" in drop["output_fields"]
    snap = next(a for a in out if a["rule"] == "Falco internal: metrics snapshot")
    f = snap["output_fields"]
    for key in ("falco.cpu_usage_perc", "falco.memory_rss_mb", "falco.num_evts", "scap.n_drops",
                "falco.outputs_queue_num_drops", "falco.evts_rate_sec"):
        assert key in f, key
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])["rule"] == snap["rule"]


def _port_from(proc, timeout=20.0):
    end = time.monotonic() + timeout
    lines = []
    while time.monotonic() < end:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"webserver listening on 127\.0\.0\.1:(\d+)", line)
        if m:
            return int(m.group(1)), lines
    raise AssertionError("no webserver line:\n" + "".join(lines))


def _drain(proc, lines):
    t = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    t.start()
    return t


def test_process_webserver_sighup_and_sigterm(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(ETC_RULES)
    cfg = base_config(tmp_path, rules_files=[str(rules)], engine={"kind": "nodriver"},
                      webserver={"enabled": True, "listen_address": "127.0.0.1", "listen_port": 0,
                                 "prometheus_metrics_enabled": True},
                      metrics={"enabled": True, "interval": "1h", "output_rule": False})
    proc = popen_cli(["-c", cfg, "-M", "60"])
    try:
        port, lines = _port_from(proc)
        drain = _drain(proc, lines)
        base = f"http://127.0.0.1:{port}"
        assert json.loads(urllib.request.urlopen(base + "/healthz", timeout=5).read()) == {"status": "ok"}
        v = json.loads(urllib.request.urlopen(base + "/versions", timeout=5).read())
        assert v["engine_version_semver"] == "0.62.0"
        prom = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
        for name in ("falcosecurity_scap_n_evts_total", 'falcosecurity_scap_n_drops_total{reason="buffer"}',
                     "falcosecurity_falco_cpu_usage_ratio", "falcosecurity_falco_memory_rss_bytes",
                     "falcosecurity_falco_outputs_queue_depth", "falcosecurity_falco_rules_matches_total"):
            assert name in prom, name
        # SIGHUP with a broken ruleset: refused, still serving
        rules.write_text("- rule: broken\n  desc: d\n  condition: nope(\n  output: o\n  priority: INFO\n")
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: any("keeping the running configuration and rules" in x for x in lines))
        assert proc.poll() is None
        assert urllib.request.urlopen(base + "/healthz", timeout=5).status == 200
        rules.write_text(ETC_RULES)
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: any("reloaded:" in x for x in lines))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        drain.join(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_webserver_restart_after_a_reload_is_off_the_event_loop(tmp_path, monkeypatch):
    """A reload that changes the webserver restarts it on a thread of its own: events keep being
    read and matched while the old server's stop is held, then the new server answers and the
    old port is closed. The test holds the real stop on an event (a real stop waits up to 1 s
    for its connections' threads: too short to observe without timing); the servers are real."""
    from pyfalco.agent import webserver as wsmod
    held, release = threading.Event(), threading.Event()
    real_stop = wsmod.WebServer.stop

    def held_stop(self):
        held.set()
        release.wait(120)     # past the test's wait: a stop on the loop would fail it
        real_stop(self)
    ws = {"enabled": True, "listen_address": "127.0.0.1", "listen_port": 0, "threadiness": 1}
    agent, buf, rules = make_agent(tmp_path, overrides=["webserver.enabled=true"], webserver=ws)
    t, res = run_in_thread(agent)
    try:
        assert wait_for(lambda: "Etc open" in rules_seen(buf) and agent.webserver is not None)
        old_port = agent.webserver.port
        assert urllib.request.urlopen(f"http://127.0.0.1:{old_port}/healthz", timeout=5).status == 200
        monkeypatch.setattr(wsmod.WebServer, "stop", held_stop)
        cfg_path = tmp_path / "pyfalco.yaml"
        cfg = json.loads(cfg_path.read_text())
        cfg["webserver"]["threadiness"] = 2
        cfg_path.write_text(json.dumps(cfg))
        agent.request_reload()
        assert held.wait(30), "the reload did not stop the old webserver"
        n0, alerts0 = agent.metrics.n_evts, len(buf.getvalue())
        assert wait_for(lambda: agent.metrics.n_evts > n0 + 1000 and len(buf.getvalue()) > alerts0, timeout=30), \
            "no event was processed while the old webserver was being stopped"
        assert agent.metrics.reloads == 1 and agent.webserver is None
        release.set()
        assert wait_for(lambda: agent.webserver is not None, timeout=30)
        new = agent.webserver
        assert new.workers == 2
        assert urllib.request.urlopen(f"http://127.0.0.1:{new.port}/healthz", timeout=5).status == 200
        if new.port != old_port:
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", old_port), timeout=5).close()
    finally:
        release.set()
        agent.request_stop()
        t.join(15)
    assert res["code"] == 0 and agent.webserver is None


def test_replay_exits_zero_and_flushes(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(ETC_RULES)
    out = tmp_path / "events.json"
    cfg = base_config(tmp_path, rules_files=[str(rules)], json_output=True, stdout_output={"enabled": False},
                      file_output={"enabled": True, "keep_alive": True, "filename": str(out)},
                      buffered_outputs=True)
    proc = popen_cli(["-c", cfg, "-e", CURL_SCAP])
    assert proc.wait(30) == 0
    assert len(out.read_text().splitlines()) == ETC_ALERTS


def _generated_rules(n: int) -> str:
    """ETC_RULES plus ``n`` rules that match nothing: a ruleset that takes a while to load."""
    out = [ETC_RULES.replace("Etc open", "Etc open big")]
    for i in range(n):
        out.append(f"- rule: Generated {i}\n  desc: generated\n  condition: evt.type = open and evt.dir = < and "
                   f"(fd.name startswith /nonexistent/{i}/ or proc.name = gen{i}x or "
                   f"fd.directory in (/nonexistent/a{i}, /nonexistent/b{i}))\n"
                   f"  output: gen {i} %fd.name %proc.name\n  priority: INFO\n")
    return "".join(out)


def test_reload_is_prepared_off_the_event_loop(tmp_path):
    """A reload loads and compiles the new rules on a thread of its own: events keep being read
    and matched by the running rules meanwhile (a large ruleset takes seconds), then the new
    rules take over. Replay of a real capture in a loop (no root needed)."""
    agent, buf, rules = make_agent(tmp_path)
    t, res = run_in_thread(agent)
    try:
        assert wait_for(lambda: "Etc open" in rules_seen(buf))
        rules.write_text(_generated_rules(3000))
        agent.request_reload()
        assert wait_for(lambda: agent._reload_thread is not None, timeout=5)
        n0, alerts0 = agent.metrics.n_evts, len(buf.getvalue())
        grew = wait_for(lambda: agent._reload_thread is None
                        or (agent.metrics.n_evts > n0 + 1000 and len(buf.getvalue()) > alerts0), timeout=60)
        preparing = agent._reload_thread is not None
        assert grew and preparing, "no event was processed while the reload was being prepared"
        assert agent.metrics.reloads == 0 and "Etc open big" not in rules_seen(buf)   # old rules still
        assert wait_for(lambda: "Etc open big" in rules_seen(buf), timeout=120)
        assert agent.metrics.reloads == 1 and agent.metrics.reload_failures == 0
        assert len(agent.bundle.ruleset.rules) == 3001
    finally:
        agent.request_stop()
        t.join(15)
    assert res["code"] == 0
