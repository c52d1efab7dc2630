# SPDX-License-Identifier: Apache-2.0
"""The field extractors reach the state only through the typed StateView protocol
(pyfalco/fields/stateview.py), and the Inspector implements it."""

from __future__ import annotations

import ast
from pathlib import Path

import pyfalco.fields
from pyfalco.fields.stateview import FieldEvent, StateView

FIELDS_DIR = Path(pyfalco.fields.__file__).parent


def _members(proto) -> set[str]:
    names = set(getattr(proto, "__annotations__", {}))
    names |= {n for n, v in vars(proto).items() if callable(v) and not n.startswith("_")}
    return names


def _inspector_uses(tree: ast.AST) -> set[tuple[str, int]]:
    """(attribute, line) of every ``<x>.inspector.<attribute>`` and ``getattr(getattr(<x>, "inspector"), "<attribute>")``."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                and node.value.attr == "inspector":
            out.add((node.attr, node.lineno))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" \
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
            inner = node.args[0]
            if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name) and inner.func.id == "getattr" \
                    and len(inner.args) >= 2 and isinstance(inner.args[1], ast.Constant) \
                    and inner.args[1].value == "inspector":
                out.add((node.args[1].value, node.lineno))
    return out


def test_field_modules_use_only_what_the_state_view_names():
    allowed = _members(StateView)
    assert {"threads", "users", "container", "paths_of", "port_name", "read_environ"} <= allowed
    seen, bad = set(), []
    for path in sorted(FIELDS_DIR.glob("*.py")):
        for attr, line in _inspector_uses(ast.parse(path.read_text(), str(path))):
            seen.add(attr)
            if attr not in allowed:
                bad.append(f"{path.name}:{line}: ie.inspector.{attr} is not part of StateView")
    assert not bad, "\n".join(bad)
    # the walk does find the reach-throughs (the check above is not vacuous)
    assert {"threads", "users", "container", "paths_of"} <= seen


def test_the_inspector_implements_the_state_view():
    from pyfalco.inspector import Inspector
    insp = Inspector(None)
    try:
        assert isinstance(insp, StateView)
        missing = [m for m in _members(StateView) if not hasattr(insp, m)]
        assert not missing, missing
    finally:
        insp.close()


def test_an_object_without_the_state_is_not_a_state_view():
    class Partial:
        threads = users = None

        def container(self, t):
            return None
    assert not isinstance(Partial(), StateView)


def test_inspected_events_carry_what_extractors_read():
    from pyfalco.state.event import InspectedEvent
    slots = set(InspectedEvent.__slots__)
    assert set(FieldEvent.__annotations__) <= slots, set(FieldEvent.__annotations__) - slots
