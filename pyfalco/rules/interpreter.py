# SPDX-License-Identifier: Apache-2.0
"""Reference tree-walking evaluator of condition trees (for differential tests and debugging).

Evaluates the same checked, resolved trees as compiler.py, directly and slowly, from the
definitions in operators.py. The compliance suite asserts that both agree on every case.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pyfalco.rules import nodes as n
from pyfalco.rules import operators as ops
from pyfalco.rules.checker import OperandType, operand_type
from pyfalco.rules.lexer import LIST_OPS

__all__ = ["Interpreter", "compare_dynamic", "evaluate"]

_NETS = (ipaddress.IPv4Network, ipaddress.IPv6Network)


def _ip_target(value):
    return value if isinstance(value, _NETS) else ops.to_ip(value)


def compare_dynamic(op: str, kind: str, multi: bool, is_list: bool, lhs, rhs) -> bool:
    """``lhs op rhs`` where both sides come from the event (``val()`` or a transformer)."""
    lvals = [x for x in (lhs if isinstance(lhs, tuple) else (lhs,)) if x is not None]
    rvals = [x for x in (rhs if isinstance(rhs, tuple) else (rhs,)) if x is not None]
    if kind == "ip":
        rvals = [t for t in map(_ip_target, rvals) if t is not None]
    if op in ("in", "intersects"):
        def test(x):
            if kind == "ip":
                return any(ops.ip_match(x, t) for t in rvals)
            return x in rvals
        if op == "in" and multi and is_list:
            return all(test(x) for x in lvals)
        return any(test(x) for x in lvals)
    if op == "pmatch":
        prefixes = frozenset(ops.normalize_prefix(str(r)) for r in rvals)
        return any(ops.pmatch(x, prefixes) for x in lvals)
    if op in ("bcontains", "bstartswith"):
        rvals = [ops.to_bytes(r) for r in rvals]
    return any(ops.apply_scalar(op, kind, x, r) for x in lvals for r in rvals)


class Interpreter(n.NodeVisitor):
    """Evaluates trees for one provider; accessors are fetched once per field and cached."""

    def __init__(self, provider: Any):
        self.provider = provider
        self._accessors: dict = {}

    def evaluate(self, tree: n.Node, evt: Any) -> bool:
        return bool(self.visit(tree, evt))

    def visit_Or(self, node, evt):
        return any(self.visit(item, evt) for item in node.items)

    def visit_And(self, node, evt):
        return all(self.visit(item, evt) for item in node.items)

    def visit_Not(self, node, evt):
        return not self.visit(node.expr, evt)

    def visit_Macro(self, node, evt):
        return self.visit(node.expr, evt)

    def visit_Const(self, node, evt):
        return node.value

    def operand(self, node, evt):
        if isinstance(node, n.FieldRef):
            key = (node.name, node.arg)
            acc = self._accessors.get(key)
            if acc is None:
                acc = self._accessors[key] = self.provider.accessor(node.name, node.arg)
            return acc(evt)
        if isinstance(node, n.Val):
            return self.operand(node.field, evt)
        if isinstance(node, n.Transform):
            args = [a.value if isinstance(a, n.Literal) else self.operand(a, evt) for a in node.args]
            return ops.TRANSFORMS[node.name](*args)
        raise TypeError(node)  # pragma: no cover

    def visit_Check(self, node: n.Check, evt) -> bool:
        lt: OperandType = operand_type(self.provider, node.lhs)
        op, kind, value = node.op, lt.kind, node.value
        lhs = self.operand(node.lhs, evt)
        if op == "exists":
            return lhs is not None
        if lhs is None:
            return False
        if isinstance(value, (n.Val, n.Transform)):
            rhs = self.operand(value, evt)
            if rhs is None:
                return False
            return compare_dynamic(op, kind, lt.multi, lt.is_list, lhs, rhs)
        lvals = [x for x in (lhs if lt.multi else (lhs,)) if x is not None]
        if isinstance(value, n.ListLiteral):
            items = [ops.convert_literal(kind, op, item.value) for item in value.items]
            if op in LIST_OPS or (node.modifier in ("oneof", "anyof") and op in ("=", "==")):
                if op == "pmatch":
                    prefixes = frozenset(ops.normalize_prefix(p) for p in items)
                    def test(x): return ops.pmatch(x, prefixes)
                elif kind == "ip":
                    def test(x): return any(ops.ip_match(x, t) for t in items)
                else:
                    def test(x): return x in items
                if op == "in" and lt.multi and lt.is_list:
                    return all(test(x) for x in lvals)
                return any(test(x) for x in lvals)
            quantifier = all if node.modifier == "allof" else any
            return any(quantifier(ops.apply_scalar(op, kind, x, r) for r in items) for x in lvals)
        rhs = ops.convert_literal(kind, op, value.value)
        return any(ops.apply_scalar(op, kind, x, rhs) for x in lvals)


def evaluate(tree: n.Node, evt: Any, provider: Any) -> bool:
    """Evaluate a checked, resolved tree on one event with the reference semantics."""
    return Interpreter(provider).evaluate(tree, evt)
