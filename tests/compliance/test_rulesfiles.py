# SPDX-License-Identifier: Apache-2.0
"""Data-driven rules-file compliance: rulesfiles/*.yaml.

Each file is a list of cases ``{name, rules | files, errors, warnings, loaded?, conditions?, info?,
events?, warn_unused?}``. ``errors``/``warnings`` list every message in order with its code, item
and exact text. ``events`` are matched with the compiled ruleset and with the reference
interpreter (``rule_matching: all``); both must give the listed rule names.
``PYFALCO_CASES=exceptions`` narrows the run to one file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from pyfalco.rules import Ruleset, format_output, load_rules

from test_conditions import make_event

HERE = Path(__file__).parent / "rulesfiles"


def _cases():
    only = os.environ.get("PYFALCO_CASES")
    for path in sorted(HERE.glob("*.yaml")):
        if only and path.stem != only:
            continue
        for case in yaml.safe_load(path.read_text()):
            yield pytest.param(case, id=f"{path.stem}:{case['name']}")


def message_dict(msg) -> dict:
    out = {"code": msg.code, "item_type": msg.item_type, "item_name": msg.item_name, "message": msg.message}
    if msg.code == "LOAD_ERR_YAML_PARSE":  # the text comes from the YAML library (libyaml or pure Python)
        del out["message"]
    return out


def load_case(case):
    texts = case.get("files") or [case["rules"]]
    sources = [(f"file{i}.yaml", text) for i, text in enumerate(texts)]
    return load_rules(*sources, warn_unused=case.get("warn_unused", True), rule_matching="all")


@pytest.mark.parametrize("case", list(_cases()))
def test_rules_file(case):
    result = load_case(case)
    assert [message_dict(m) for m in result.errors] == case.get("errors", [])
    assert [message_dict(m) for m in result.warnings] == case.get("warnings", [])
    assert result.ok == (result.ruleset is not None)
    if not result.ok:
        return
    ruleset = result.ruleset
    if "loaded" in case:
        assert [r.name for r in ruleset.rules] == case["loaded"]
    for name, text in (case.get("conditions") or {}).items():
        assert ruleset.rule(name).condition == text
    for name, info in (case.get("info") or {}).items():
        rule = ruleset.rule(name)
        for key, want in info.items():
            if key == "priority":
                got = rule.priority.label
            elif key == "tags":
                got, want = sorted(rule.tags), sorted(want)
            elif key == "enabled":
                got = ruleset.is_enabled(name)
            elif key == "evttypes":
                got, want = rule.evttypes, frozenset(want)
            else:
                got = getattr(rule, key)
            assert got == want, key
    reference = Ruleset(ruleset.rules, ruleset.providers, rule_matching="all", reference=True)
    for key, value in ruleset._enabled.items():
        reference._enabled[key] = value
    reference._rebuild()
    for event in case.get("events") or []:
        evt = make_event(event["given"])
        got = [r.name for r in ruleset.match(evt)]
        assert got == [r.name for r in reference.match(evt)]
        assert got == event["match"]
        if "output" in event:
            assert format_output(ruleset.match(evt)[0], evt) == event["output"]
