# SPDX-License-Identifier: Apache-2.0
"""Data-driven condition compliance: conditions/*.yaml, run on the compiled engine AND the
reference interpreter, which must agree with each other and with the expected result.

File shape: ``{given: {field: value}, macros: {name: cond}, lists: {name: [items]},
cases: [{condition, result | error: syntax|resolve|check|unknown, message?, pos?, evttypes?, given?}]}``.
``PYFALCO_CASES=strings`` narrows the run to one file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from pyfalco.fields.catalog import lookup
from pyfalco.rules import ConditionSyntaxError, DictProvider, compile_filter, event_type_names
from pyfalco.rules.checker import CheckError
from pyfalco.rules.resolver import ResolveError

HERE = Path(__file__).parent / "conditions"


def _files():
    only = os.environ.get("PYFALCO_CASES")
    for path in sorted(HERE.glob("*.yaml")):
        if only and path.stem != only:
            continue
        yield path


def _cases():
    for path in _files():
        data = yaml.safe_load(path.read_text())
        for i, case in enumerate(data["cases"]):
            yield pytest.param(data, case, id=f"{path.stem}[{i}]:{case['condition'][:60]}")


def make_event(given: dict) -> dict:
    evt = {}
    for key, value in given.items():
        if isinstance(value, list):
            value = tuple(value)
        info = lookup(key.split("[")[0])
        if info is not None and info.type == "BYTEBUF" and isinstance(value, str):
            value = value.encode()
        evt[key] = value
    return evt


def expected_types(spec):
    universe = event_type_names()
    if spec == "all":
        return universe
    if isinstance(spec, str) and spec.startswith("all-but"):
        return universe - set(yaml.safe_load(spec[len("all-but"):]))
    return frozenset(spec)


_ERRORS = {"syntax": ConditionSyntaxError, "resolve": ResolveError, "check": CheckError, "unknown": CheckError}


@pytest.mark.parametrize("data,case", list(_cases()))
def test_condition(data, case):
    provider = DictProvider()
    given = dict(data.get("given") or {})
    given.update(case.get("given") or {})
    evt = make_event(given)
    compile_ = lambda: compile_filter(case["condition"], provider, macros=data.get("macros"),  # noqa: E731
                                      lists=data.get("lists"))
    if "error" in case:
        with pytest.raises(_ERRORS[case["error"]]) as info:
            compile_()
        exc = info.value
        if case["error"] in ("check", "unknown"):
            assert exc.unknown == (case["error"] == "unknown")
        if "message" in case:
            assert exc.msg == case["message"]
        if "pos" in case:
            assert exc.pos == case["pos"]
        return
    flt = compile_()
    compiled = flt.matches(evt)
    reference = flt.reference_matches(evt)
    assert compiled == reference, f"compiled={compiled} reference={reference}\n{flt.source}"
    assert compiled is case["result"], flt.source
    if "evttypes" in case:
        assert flt.evttypes == expected_types(case["evttypes"])
