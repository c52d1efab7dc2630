# SPDX-License-Identifier: Apache-2.0
"""Computes the set of event types a condition can match, for the ruleset index.

``and`` intersects, ``or`` unites, ``not`` is pushed to the leaves (De Morgan). A check on
``evt.type`` with ``=``/``in``/``intersects``/``!=`` and literal names gives its set (or the
complement); ``evt.num = 0`` (the ``never_true`` idiom) gives the empty set; any other check is
neutral: every type.
"""

from __future__ import annotations

from pyfalco.rules import nodes as n
from pyfalco.rules.checker import event_type_names

__all__ = ["EvttypeResolver", "evttypes"]


class EvttypeResolver(n.NodeVisitor):
    def __init__(self, universe: frozenset | None = None):
        self.universe = universe if universe is not None else event_type_names()
        self._macros: dict[tuple, tuple] = {}  # (id of a macro's tree, negated) -> (tree, types)

    def types(self, tree: n.Node) -> frozenset:
        return self.visit(tree, False)

    def visit_Or(self, node, negated):
        sets = [self.visit(item, negated) for item in node.items]
        return frozenset.intersection(*sets) if negated else frozenset.union(*sets)

    def visit_And(self, node, negated):
        sets = [self.visit(item, negated) for item in node.items]
        return frozenset.union(*sets) if negated else frozenset.intersection(*sets)

    def visit_Not(self, node, negated):
        return self.visit(node.expr, not negated)

    def visit_Macro(self, node, negated):
        key = (id(node.expr), negated)  # a macro's tree is shared by its references: once each way
        hit = self._macros.get(key)
        if hit is None:
            hit = self._macros[key] = (node.expr, self.visit(node.expr, negated))
        return hit[1]

    def visit_Const(self, node, negated):
        return self.universe if node.value != negated else frozenset()

    def visit_MacroRef(self, node, negated):
        return self.universe

    def visit_Check(self, node: n.Check, negated):
        lhs, value, op = node.lhs, node.value, node.op
        if not isinstance(lhs, n.FieldRef) or lhs.arg is not None:
            return self.universe
        if lhs.name == "evt.num" and op in ("=", "==") and isinstance(value, n.Literal) \
                and value.value.strip() in ("0", "0x0", "0X0"):
            return self.universe if negated else frozenset()
        if lhs.name != "evt.type":
            return self.universe
        if isinstance(value, n.Literal) and node.modifier is None and op in ("=", "==", "!="):
            names = frozenset((value.value,))
            positive = op != "!="
        elif isinstance(value, n.ListLiteral) and (
                op in ("in", "intersects") or (op in ("=", "==") and node.modifier in ("oneof", "anyof"))):
            names = frozenset(item.value for item in value.items)
            positive = True
        else:
            return self.universe
        names &= self.universe
        if positive != negated:
            return names
        return self.universe - names


def evttypes(tree: n.Node, universe: frozenset | None = None) -> frozenset:
    """Event type names ``tree`` can match."""
    return EvttypeResolver(universe).types(tree)
