# SPDX-License-Identifier: Apache-2.0
"""Conditions specialised for one event type (the batch path's per-type buckets).

An event of code ``c`` only ever reaches the bucket of its type, and its ``evt.type`` is that
type's name: every ``evt.type`` check with literal names (``=``, ``!=``, ``in``, ``intersects``,
``oneof``/``anyof``: the shapes ``evttypes.py`` indexes by) folds to a constant, and so do the
boolean subtrees above it. Rules that mix event types in one macro (Falco's ``outbound``:
``evt.type = connect or (evt.type in (sendto, sendmsg) and fd.l4proto != tcp ...)``) then often
reduce, for one of their types, to a conjunction that cannot hold: ``f != v and ... and f = v``
on a single-valued field (or ``X and not X``). Such a rule is dropped from that type's bucket,
and a type left with no rule is not wanted at all (``Ruleset.code_index``): the state engine
then takes its cheap paths for those events. A dropped rule was false for every event of the
type, so no alert changes; the per-event path (``Ruleset.match``) is unchanged. Conjunctions
also test their cheap terms first (Falco's ``outbound`` reads fd.ip and fd.net before the
rule's ``proc.exe endswith ssh``: ~12 us -> ~1 us per TCP connect of another program).
"""

from __future__ import annotations

from typing import Any, Iterator

from pyfalco.rules import nodes as n
from pyfalco.rules import operators as ops
from pyfalco.rules.checker import operand_type
from pyfalco.rules.compiler import _Folder, _node_key

__all__ = ["specialize"]

_EQ = ("=", "==")


class _TypeFolder(_Folder):
    """compiler._Folder (macros inlined, constants folded) with ``evt.type`` a constant."""

    def __init__(self, provider: Any, type_name: str):
        super().__init__(provider)
        self.type_name = type_name

    def visit_Check(self, node: n.Check):
        lhs, value, op = node.lhs, node.value, node.op
        if isinstance(lhs, n.FieldRef) and lhs.name == "evt.type" and lhs.arg is None:
            folded = self._type_check(node, lhs, value, op)
            if folded is not None:
                return n.Const(folded, pos=node.pos)
        return super().visit_Check(node)

    def _type_check(self, node: n.Check, lhs: n.FieldRef, value: Any, op: str) -> bool | None:
        """The check's value when evt.type is ``type_name``; None when it is not a simple shape."""
        lt = operand_type(self.provider, lhs)
        if lt.multi or lt.kind in ("ip", "dyn"):
            return None
        name = self.type_name
        if isinstance(value, n.Literal) and node.modifier is None and op in ("=", "==", "!="):
            hit = ops.convert_literal(lt.kind, op, value.value) == name
            return hit if op != "!=" else not hit
        if isinstance(value, n.ListLiteral) and all(isinstance(i, n.Literal) for i in value.items) and (
                op in ("in", "intersects") or (op in _EQ and node.modifier in ("oneof", "anyof"))):
            return any(ops.convert_literal(lt.kind, op, i.value) == name for i in value.items)
        return None

    def visit_And(self, node):
        out = super().visit_And(node)
        if not isinstance(out, n.And):
            return out
        if _contradicts(out, self.provider):
            return n.Const(False, pos=node.pos)
        # cheap tests first: the conjuncts are pure for one event, so their order changes no
        # result (when a reordered one raises, the bucket answers rule by rule as written);
        # nested conjunctions are one list, each kept in its order otherwise
        items = list(_conjuncts(out))
        costly = [self._costly(i) for i in items]
        if any(costly) and not all(costly):
            items = [i for i, c in zip(items, costly) if not c] + [i for i, c in zip(items, costly) if c]
            return n.And(tuple(items), pos=out.pos)
        return out

    def _costly(self, node: n.Node) -> bool:
        """Whether a test reads a multi-valued or address field (fd.ip, fd.net, ...: a value
        object per end, compared by a generic helper) or compares two fields/transforms."""
        if isinstance(node, (n.And, n.Or)):
            return any(self._costly(i) for i in node.items)
        if isinstance(node, n.Not):
            return self._costly(node.expr)
        if isinstance(node, n.Check):
            if not isinstance(node.lhs, n.FieldRef) or isinstance(node.value, (n.Val, n.Transform)):
                return True
            try:
                lt = operand_type(self.provider, node.lhs)
            except Exception:
                return True
            return lt.multi or lt.kind in ("ip", "dyn")
        return False


def _conjuncts(node: n.Node) -> Iterator[n.Node]:
    if isinstance(node, n.And):
        for item in node.items:
            yield from _conjuncts(item)
    else:
        yield node


def _simple(node: n.Node) -> tuple | None:
    """(field, arg, literal text, op) of ``field op literal`` (= or !=, no modifier)."""
    if isinstance(node, n.Check) and isinstance(node.lhs, n.FieldRef) and isinstance(node.value, n.Literal) \
            and node.modifier is None and node.op in ("=", "==", "!="):
        return node.lhs.name, node.lhs.arg, node.value.value, "!=" if node.op == "!=" else "="
    return None


def _contradicts(node: n.And, provider: Any) -> bool:
    """True when the conjunction holds for no event: ``X`` with ``not X`` (accessors are pure
    for one event), or ``f = v`` with ``f != v`` on a single-valued field of a kind
    whose ``=``/``!=`` are plain comparisons of one converted literal (the emitter's
    ``lhs == r`` / ``lhs is not None and lhs != r``: a missing value fails both)."""
    eq: set = set()
    ne: set = set()
    plain: set = set()
    negated: set = set()
    cache: dict = {}
    for item in _conjuncts(node):
        if isinstance(item, n.Not):
            negated.add(_node_key(item.expr, cache))
            continue
        plain.add(_node_key(item, cache))
        s = _simple(item)
        if s is not None:
            (eq if s[3] == "=" else ne).add(s[:3])
    if plain & negated:
        return True
    for name, arg, text in eq & ne:
        try:
            lt = operand_type(provider, n.FieldRef(name, arg))
            if lt.multi or lt.kind in ("ip", "dyn"):
                continue
            if ops.convert_literal(lt.kind, "=", text) == ops.convert_literal(lt.kind, "!=", text):
                return True
        except Exception:  # a field or literal the checker would refuse: no conclusion
            continue
    return False


def specialize(tree: n.Node, provider: Any, type_name: str) -> n.Node:
    """``tree`` folded for events whose ``evt.type`` is ``type_name`` (macros inlined);
    ``Const(False)`` when no such event can match it."""
    return _TypeFolder(provider, type_name).visit(tree)
