# SPDX-License-Identifier: Apache-2.0
"""The default rules that share a name with Falco's stable ruleset come in Falco's order, before
pyfalco's own rules: with ``rule_matching: first`` (Falco's and the agent's default) the first
matching rule is the one reported, so the same event raises the same alert here as in Falco.
End to end: ``cat /etc/../etc/../etc/shadow`` raises "Directory traversal monitored file read"
(Falco's first rule), not "Read sensitive file untrusted", with either ruleset."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_RULES = REPO / "rules" / "pyfalco_rules.yaml"
UPSTREAM_RULES = REPO.parent / "shared" / "rules" / "falco_rules.yaml"


def _rule_names(path) -> list[str]:
    with open(path) as f:
        return [item["rule"] for item in yaml.safe_load(f) if isinstance(item, dict) and "rule" in item]


@pytest.fixture(scope="module")
def upstream_names():
    if not UPSTREAM_RULES.exists():
        pytest.fail(f"the upstream stable ruleset is missing: {UPSTREAM_RULES}")
    return _rule_names(UPSTREAM_RULES)


def test_shared_rules_keep_falcos_order(upstream_names):
    ours = _rule_names(DEFAULT_RULES)
    shared = [n for n in ours if n in upstream_names]
    assert len(shared) >= 20, shared
    assert shared == [n for n in upstream_names if n in shared]


def test_shared_rules_come_first(upstream_names):
    ours = _rule_names(DEFAULT_RULES)
    flags = [n in upstream_names for n in ours]
    first_own = flags.index(False)
    assert all(flags[:first_own]) and not any(flags[first_own:]), \
        [n for n, f in zip(ours[first_own:], flags[first_own:]) if f]


def test_loaded_ruleset_evaluates_in_file_order(upstream_names):
    """What rule_matching: first walks is the loaded order, not the file's text order by accident."""
    from pyfalco.fields.provider import StateProvider
    from pyfalco.rules import load_rules
    res = load_rules(str(DEFAULT_RULES), provider=StateProvider(), strict=True, rule_matching="first")
    loaded = [r.name for r in res.ruleset.rules]
    assert loaded == _rule_names(DEFAULT_RULES)


@pytest.mark.root
@pytest.mark.parametrize("rules", [DEFAULT_RULES, UPSTREAM_RULES], ids=["default", "upstream"])
def test_directory_traversal_read_raises_falcos_first_rule(rules, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("live eBPF detection tests need root")
    from pyfalco.testing import DetectionSession
    session = DetectionSession([str(rules)], rule_matching="first").start()
    try:
        with session.watch() as w:
            cp = subprocess.run(["cat", "/etc/../etc/../etc/shadow"], capture_output=True, timeout=30)
        assert cp.returncode == 0
        w.close()
        assert w.fired == {"Directory traversal monitored file read"}, [str(a) for a in w.alerts]
        [alert] = w.alerts
        assert alert.fields["fd.name"] == "/etc/shadow" and alert.fields["proc.name"] == "cat"
        # and with every match reported, the sensitive-file rule is there too (the order decided)
        if rules == DEFAULT_RULES:
            every = DetectionSession([str(rules)], rule_matching="all").start()
            try:
                with every.watch() as w2:
                    subprocess.run(["cat", "/etc/../etc/../etc/shadow"], capture_output=True, timeout=30)
                w2.close()
                assert {"Directory traversal monitored file read", "Read sensitive file untrusted"} <= w2.fired
            finally:
                every.stop()
    finally:
        session.stop()
