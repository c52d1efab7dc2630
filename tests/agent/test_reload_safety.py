# SPDX-License-Identifier: Apache-2.0
"""A reload that fails for any reason keeps the running rules and the agent: a live agent (root,
modern eBPF) is reloaded by SIGHUP and by watched-file changes with a broken configuration, broken
rules, an emptied, deleted or all-disabled rules file and a macro chain deeper than Python's
recursion limit; after each refusal (one error line, no retry) the old rule still fires on a real
open, and a good reload afterwards swaps the rules."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid

import pytest

from agenttools import base_config, is_root, popen_cli

from pyfalco.agent import Agent, load_config
from pyfalco.agent import rulesload

pytestmark = pytest.mark.root

KEEP = "reload: keeping the running configuration and rules"


def token_rules(token: str, name: str, extra: str = "") -> str:
    return f"""
- rule: {name}
  desc: an open of the test's token files
  condition: evt.type in (open, openat, openat2) and evt.arg.name contains {token}
  output: "token opened (file=%evt.arg.name)"
  priority: NOTICE
  tags: [testing]
{extra}"""


def deep_macro_chain(n: int = 3000) -> str:
    """m0 .. m{n-1}, each naming the previous one: deeper than CPython's recursion limit."""
    items = ["- macro: m0\n  condition: evt.type = open\n"]
    items += [f"- macro: m{i}\n  condition: m{i - 1}\n" for i in range(1, n)]
    items.append(f"- rule: Deep\n  desc: d\n  condition: m{n - 1}\n  output: deep\n  priority: INFO\n")
    return "".join(items)


class LiveAgent:
    """``pyfalco -c cfg`` on live eBPF, alerts (JSON) in a file, stderr collected."""

    def __init__(self, tmp_path, watch: bool):
        self.tmp = tmp_path
        self.token = f"pyfalco-reload-{uuid.uuid4().hex[:8]}"
        self.rules = tmp_path / "rules.yaml"
        self.rules.write_text(token_rules(self.token, "Token v1"))
        self.alerts = tmp_path / "alerts.json"
        self.cfg_extra = dict(rules_files=[str(self.rules)], json_output=True, stdout_output={"enabled": False},
                              file_output={"enabled": True, "keep_alive": True, "filename": str(self.alerts)},
                              watch_config_files=watch)
        self.cfg = base_config(tmp_path, **self.cfg_extra)
        self.good_cfg_text = self.cfg.read_text()
        self.proc = popen_cli(["-c", self.cfg, "-M", "300"])
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True)
        self.reader.start()
        self.n = 0
        assert self.wait(lambda: any("loaded 1 rules" in x for x in self.lines), 60), self.log()

    def log(self) -> str:
        return "".join(self.lines)

    def wait(self, pred, timeout=30.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return True
            if self.proc.poll() is not None:
                return pred()
            time.sleep(0.05)
        return pred()

    def count(self, text: str) -> int:
        return sum(text in x for x in self.lines)

    def fires(self, rule: str) -> bool:
        """Opens a fresh token file until an alert for it arrives; True if ``rule`` raised it."""
        self.n += 1
        target = self.tmp / f"{self.token}-{self.n}"
        seen: list = []

        def got():
            with open(target, "w") as f:
                f.write("x")
            if self.alerts.exists():
                seen[:] = [a["rule"] for a in map(json.loads, self.alerts.read_text().splitlines())
                           if a["output_fields"].get("evt.arg.name") == str(target)]
            return bool(seen)
        assert self.wait(got, 30), f"no alert for {target}\n{self.log()}"
        return rule in seen

    def refused(self, change, how: str, expect: str) -> None:
        """Applies ``change``, reloads (SIGHUP or the watcher), expects exactly one refusal line
        containing ``expect``, and the running rule still firing."""
        before = self.count(KEEP)
        change()
        if how == "sighup":
            self.proc.send_signal(signal.SIGHUP)
        assert self.wait(lambda: self.count(KEEP) > before), self.log()
        assert self.proc.poll() is None, self.log()
        assert self.fires("Token v1"), self.log()
        # one line per failed attempt: the watcher does not retry an unchanged file
        assert self.count(KEEP) == before + 1, self.log()
        line = [x for x in self.lines if KEEP in x][-1]
        assert expect in line, line

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
            self.reader.join(5)


@pytest.fixture
def live(tmp_path, request):
    if not is_root():
        pytest.fail("live reload tests need root (modern_ebpf)")
    agent = LiveAgent(tmp_path, watch=request.param == "watch")
    yield agent, request.param
    agent.stop()


@pytest.mark.parametrize("live", ["sighup", "watch"], indirect=True)
def test_failed_reloads_keep_the_running_rules(live):
    agent, how = live
    good = agent.rules.read_text()
    assert agent.fires("Token v1")

    agent.refused(lambda: agent.cfg.write_text("webserver: [unclosed\n"), how, "invalid YAML")
    agent.refused(lambda: agent.cfg.write_text(json.dumps({**json.loads(agent.good_cfg_text),
                                                           "json_output": "maybe"})), how, "json_output")
    agent.cfg.write_text(agent.good_cfg_text)
    if how == "watch":  # the restored configuration reloads by itself (same rules)
        assert agent.wait(lambda: agent.count("reloaded:") >= 1), agent.log()

    agent.refused(lambda: agent.rules.write_text(token_rules(agent.token, "Broken").replace(
        "evt.type in", "evt.type inn")), how, "error loading rules")
    agent.refused(lambda: agent.rules.write_text(""), how, f"rules file {agent.rules} is empty now")
    agent.refused(lambda: agent.rules.write_text("# nothing here\n\n"), how, "is empty now")
    agent.refused(lambda: agent.rules.unlink(), how, f"Could not open rules file {agent.rules} for reading")
    agent.refused(lambda: agent.rules.write_text(token_rules(agent.token, "Token off", "  enabled: false\n")),
                  how, "no rules loaded")
    agent.refused(lambda: agent.rules.write_text(deep_macro_chain()), how, "")

    agent.rules.write_text(good.replace("Token v1", "Token v2"))
    before = agent.count("reloaded:")
    if how == "sighup":
        agent.proc.send_signal(signal.SIGHUP)
    assert agent.wait(lambda: agent.count("reloaded:") > before), agent.log()
    assert agent.fires("Token v2"), agent.log()
    assert "Traceback" not in agent.log()
    assert agent.stop() == 0, agent.log()


def test_reload_survives_any_exception_from_the_rules_library(tmp_path, monkeypatch):
    """Fault injection (the rules library is being hardened to raise only its load errors, so no
    real file is guaranteed to make it raise something else): whatever load raises, reload()
    refuses with one line and keeps the bundle; a good reload afterwards works."""
    token = uuid.uuid4().hex[:8]
    rules = tmp_path / "rules.yaml"
    rules.write_text(token_rules(token, "Token v1"))
    cfg = base_config(tmp_path, rules_files=[str(rules)], engine={"kind": "nodriver"})
    agent = Agent(load_config(str(cfg)))
    agent.setup()
    try:
        bundle = agent.bundle
        real_load = rulesload.load
        for exc in (RecursionError("maximum recursion depth exceeded"), MemoryError(), KeyError("x"),
                    RuntimeError("boom")):
            def failing(*a, _exc=exc, **kw):
                raise _exc
            monkeypatch.setattr(rulesload, "load", failing)
            assert agent.reload() is False
            assert agent.bundle is bundle and agent.capture is not None
        assert agent.metrics.reload_failures == 4
        monkeypatch.setattr(rulesload, "load", real_load)
        rules.write_text(token_rules(token, "Token v2"))
        assert agent.reload() is True
        assert [r.name for r in agent.bundle.ruleset.rules] == ["Token v2"]
    finally:
        agent.close()


def test_reload_with_a_real_deep_macro_chain_in_process(tmp_path):
    """The same refusal in-process for a real file: a 3000-deep macro chain (RecursionError in
    the rules library before its hardening, a load error after) never escapes reload()."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(token_rules("tok", "Token v1"))
    cfg = base_config(tmp_path, rules_files=[str(rules)], engine={"kind": "nodriver"})
    agent = Agent(load_config(str(cfg)))
    agent.setup()
    try:
        bundle = agent.bundle
        rules.write_text(deep_macro_chain())
        assert agent.reload() is False
        assert agent.bundle is bundle and agent.metrics.reload_failures == 1
    finally:
        agent.close()
    assert os.path.exists(rules)


def test_started_without_c_a_reload_finds_a_new_etc_config(tmp_path, monkeypatch):
    """Started without -c (the packaged default), a reload (after the watcher sees it appear)
    switches to /etc/pyfalco/pyfalco.yaml once it exists (here: a path of the test's)."""
    from pyfalco.agent import config as config_mod
    etc = tmp_path / "etc_pyfalco.yaml"
    monkeypatch.setattr(config_mod, "DEFAULT_CONFIG_PATHS", (str(etc),))
    overrides = ["engine.kind=nodriver", "webserver.enabled=false", "syslog_output.enabled=false",
                 "log_syslog=false", "stdout_output.enabled=false"]
    agent = Agent(load_config(None, overrides), overrides=overrides, resolve_config=True)
    agent.setup()
    try:
        assert agent.config.path == config_mod.packaged_path("pyfalco.yaml")
        assert str(etc) in agent._watch_paths()
        rules = tmp_path / "mine.yaml"
        rules.write_text(token_rules("tok", "Mine"))
        etc.write_text("rules_files: [mine.yaml]\n")
        assert agent.reload() is True
        assert agent.config.path == str(etc)
        assert [r.name for r in agent.bundle.ruleset.rules] == ["Mine"]
    finally:
        agent.close()
