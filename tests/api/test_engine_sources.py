# SPDX-License-Identifier: Apache-2.0
"""Event sources besides the syscall one (the EventSource protocol of CONTRACTS.md): their events
meet the rules of their source, on a thread of their own, alerts carry ``.source``; the engine and
the agent end when every source has ended; a failing source is an error of the loop. The sources
here are small Python classes reading records from memory: what a plugin source does, without a
plugin (the plugin framework has its own tests)."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

import pyfalco
from pyfalco.engine import SourceError
from pyfalco.fields.catalog import FieldInfo
from pyfalco.rules import DictProvider

ROOT = Path(__file__).resolve().parents[2]
CURL = ROOT.parent / "shared" / "captures" / "libs_curl_google.scap"
LOGIN_RULES = """
- rule: Root login
  desc: root logged in
  condition: login.user = root
  output: "root login (user=%login.user port=%login.port)"
  priority: CRITICAL
  tags: [auth]
  source: logins
"""
ETC_RULES = """
- rule: Etc open
  desc: an open below /etc
  condition: evt.type = open and evt.dir = < and fd.name startswith /etc
  output: "etc open (file=%fd.name)"
  priority: WARNING
"""


class Logins:
    """Records from memory, two per batch, then the end (None); notes the threads it ran on."""

    source = "logins"
    provider = DictProvider({"login.user": FieldInfo("login.user", "CHARBUF", "user"),
                             "login.port": FieldInfo("login.port", "UINT16", "port")})

    def __init__(self, records, fail_after: int | None = None):
        self.records = list(records)
        self.fail_after = fail_after
        self.threads: set[int] = set()
        self.opened = self.closed = 0
        self.batches = 0

    def open(self):
        self.opened += 1

    def next_batch(self, timeout):
        self.threads.add(threading.get_ident())
        self.batches += 1
        if self.fail_after is not None and self.batches > self.fail_after:
            raise OSError("the audit log went away")
        if not self.records:
            return None
        batch, self.records = self.records[:2], self.records[2:]
        return batch

    def close(self):
        self.closed += 1


RECORDS = [{"login.user": "alice", "login.port": 22}, {"login.user": "root", "login.port": 22},
           {"login.user": "bob", "login.port": 2222}, {"login.user": "root", "login.port": 8022}]


def test_a_source_alone():
    src = Logins(RECORDS)
    engine = pyfalco.Engine(LOGIN_RULES, sources=[src])
    with engine:
        alerts = list(engine.alerts())
    assert [(a.rule, a.source, a.fields["login.port"]) for a in alerts] == \
        [("Root login", "logins", 22), ("Root login", "logins", 8022)]
    assert alerts[0].message == "root login (user=root port=22)" and alerts[0].tags == frozenset({"auth"})
    assert src.threads and threading.get_ident() not in src.threads     # its own thread
    assert src.opened == 1 and src.closed == 1 and engine.n_events == 4 and engine.ended


def test_syscall_source_and_another_together():
    src = Logins(RECORDS)
    got = []
    engine = pyfalco.Engine([LOGIN_RULES, ETC_RULES], capture=pyfalco.Capture("replay", capture_file=str(CURL)),
                            sources=[src], on_alert=got.append)
    with engine:
        engine.run()           # returns once both the capture file and the records ended
    by_source = {}
    for a in got:
        by_source.setdefault(a.source, []).append(a.rule)
    assert by_source == {"syscall": ["Etc open"] * 8, "logins": ["Root login"] * 2}
    assert engine.ended and src.closed == 1


def test_the_event_hook_sees_syscall_events_only():
    """An event hook for every event (no types: pyfalco.testing's recording) gets the capture's
    events, never another source's; both sources' rules still see theirs."""
    src = Logins(RECORDS)
    got, hooked = [], []
    engine = pyfalco.Engine([LOGIN_RULES, ETC_RULES], capture=pyfalco.Capture("replay", capture_file=str(CURL)),
                            sources=[src], on_alert=got.append, batch=False)
    engine.set_event_hook(lambda ie: hooked.append(type(ie).__name__) and False)
    with engine:
        engine.run()
    assert hooked and set(hooked) == {"InspectedEvent"} and len(hooked) == engine.events_by_source["syscall"]
    assert sorted({a.source for a in got}) == ["logins", "syscall"]


def test_a_failing_source_is_an_error_of_the_loop():
    src = Logins(RECORDS * 10, fail_after=1)
    engine = pyfalco.Engine(LOGIN_RULES, sources=[src])
    with engine, pytest.raises(SourceError, match="logins.*audit log went away"):
        for _ in range(1000):      # the failure surfaces within a few steps
            engine.step(0.05)
    assert isinstance(SourceError("x"), pyfalco.PyFalcoError)


def test_provider_of_a_source_can_be_replaced():
    """``providers`` (what an extractor plugin's chained provider uses): a field the source's own
    provider does not know becomes usable in its rules."""
    class Extended(DictProvider):
        pass
    ext = Extended({"login.user": FieldInfo("login.user", "CHARBUF", "user"),
                    "login.port": FieldInfo("login.port", "UINT16", "port"),
                    "login.geo": FieldInfo("login.geo", "CHARBUF", "where")})
    rules = LOGIN_RULES.replace("login.user = root", "login.user = root and login.geo = mars")
    with pytest.raises(pyfalco.rules.RulesLoadError):
        pyfalco.Engine(rules, sources=[Logins([])])
    records = [dict(r, **{"login.geo": "mars" if r["login.port"] == 8022 else "earth"}) for r in RECORDS]
    engine = pyfalco.Engine(rules, sources=[Logins(records)], providers={"logins": ext})
    with engine:
        assert [a.fields["login.port"] for a in engine.alerts()] == [8022]


def test_agent_runs_extra_sources_and_exits_when_all_ended(tmp_path):
    """The agent: a replayed capture plus a source of records; it exits (code 0) once both ended,
    and the extra source ran on its own thread."""
    import sys
    sys.path.insert(0, str(ROOT / "tests" / "agent"))
    from agenttools import base_config
    from pyfalco.agent import Agent, load_config
    rules = tmp_path / "rules.yaml"
    rules.write_text(ETC_RULES)
    cfg = base_config(tmp_path, rules_files=[str(rules)], json_output=True,
                      engine={"kind": "replay", "replay": {"capture_file": str(CURL)}})
    buf = io.BytesIO()
    src = Logins(RECORDS)
    agent = Agent(load_config(str(cfg)), stdout_stream=buf, sources=[src])
    assert agent.run() == 0
    assert src.opened == 1 and src.closed == 1 and src.records == []
    assert src.threads and threading.get_ident() not in src.threads
    assert buf.getvalue().count(b'"rule":"Etc open"') == 8
    assert agent.metrics.n_evts > 0


def test_wrong_types_are_type_errors():
    with pytest.raises(TypeError, match="list of EventSource"):
        pyfalco.Engine(LOGIN_RULES, sources=Logins([]))
    with pytest.raises(TypeError, match="not an EventSource"):
        pyfalco.Engine(LOGIN_RULES, sources=[object()])
    with pytest.raises(TypeError, match="rules"):
        pyfalco.Engine(b"- rule: x")
