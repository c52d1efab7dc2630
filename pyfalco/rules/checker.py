# SPDX-License-Identifier: Apache-2.0
"""Checks a resolved condition tree against a field provider: fields, arguments, operators, literals.

Also home of the typing helpers the compiler and interpreter share: :func:`operand_type` tells
the value kind of an operand and whether it yields several values.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from pyfalco.rules import nodes as n
from pyfalco.rules.nodes import frozen_node
from pyfalco.rules.errors import RuleError
from pyfalco.rules.lexer import LIST_OPS, MODIFIERS, NUM_OPS
from pyfalco.rules.operators import ALLOWED_OPS, LiteralError, convert_literal, kind_of

__all__ = ["CheckError", "OperandType", "Checker", "operand_type", "ANCESTOR_FIELDS", "MODIFIER_OPS",
           "field_display", "event_type_names"]

# Fields that, without an index, stand for "any ancestor" (several values).
ANCESTOR_FIELDS = frozenset(("proc.aname", "proc.aexe", "proc.aexepath", "proc.acmdline", "proc.apid",
                             "proc.aargs"))
MODIFIER_OPS = frozenset(("=", "==", "!=", "contains", "icontains", "bcontains", "startswith",
                          "bstartswith", "endswith", "glob", "iglob", "regex"))
_STR_INPUT = frozenset(("str", "bytes", "dyn"))


@lru_cache(maxsize=1)
def event_type_names() -> frozenset:
    """Every event type name of the event table (the universe of ``evt.type`` values)."""
    from pyfalco._schema import EVENTS  # imported lazily: the schema is generated elsewhere
    return frozenset(e.name for e in EVENTS if e.name and e.name != "NA")


class CheckError(RuleError, ValueError):
    """A semantic problem at ``pos`` in the text of the innermost macro of ``macros`` (or the rule).

    ``unknown`` marks problems that ``skip-if-unknown-filter`` turns into a warning (unknown
    fields and event types); ``field`` names the unknown field.
    """

    def __init__(self, msg: str, pos: int, macros: tuple = (), unknown: bool = False,
                 field: str | None = None):
        super().__init__(msg)
        self.msg = msg
        self.pos = pos
        self.macros = macros
        self.unknown = unknown
        self.field = field


@frozen_node
class OperandType:
    kind: str          # str, num, bool, ip, bytes, dyn
    multi: bool        # the operand yields a tuple of values
    is_list: bool      # a list field proper (``in`` then means "all values in the set")


def field_display(ref: n.FieldRef) -> str:
    return ref.name if ref.arg is None else f"{ref.name}[{ref.arg}]"


def _field_type(provider: Any, ref: n.FieldRef) -> OperandType:
    info = provider.field_info(ref.name)
    if info is None:
        raise CheckError(f"unknown field '{ref.name}'", ref.pos, unknown=True, field=ref.name)
    dotted = info.name != ref.name
    if dotted:
        if ref.arg is not None:
            raise CheckError(f"field '{ref.name}' already names its argument: remove '[{ref.arg}]'", ref.pos)
    elif ref.arg is None:
        if info.arg in ("required", "key"):
            raise CheckError(f"field '{ref.name}' requires an argument, e.g. '{ref.name}[...]'", ref.pos)
    else:
        if info.arg == "none":
            raise CheckError(f"field '{ref.name}' does not take an argument", ref.pos)
        if info.arg == "index" and not re.fullmatch(r"[0-9]+", ref.arg):
            raise CheckError(f"field '{ref.name}' takes a numeric index, not '{ref.arg}'", ref.pos)
    multi = info.is_list or getattr(info, "multi", False) or (ref.arg is None and info.name in ANCESTOR_FIELDS)
    return OperandType(kind_of(info.type), multi, info.is_list)


def operand_type(provider: Any, node: n.Node) -> OperandType:
    """Kind and arity of a FieldRef, Transform or Val; raises CheckError on invalid operands."""
    if isinstance(node, n.FieldRef):
        return _field_type(provider, node)
    if isinstance(node, n.Val):
        return _field_type(provider, node.field)
    if isinstance(node, n.Transform):
        if node.name in ("join", "concat"):
            for arg in node.args[1:] if node.name == "join" else node.args:
                if not isinstance(arg, n.Literal):
                    operand_type(provider, arg)
            return OperandType("str", False, False)
        inner = operand_type(provider, node.args[0])
        if node.name == "len":
            return OperandType("num", False, False)
        if inner.kind not in _STR_INPUT:
            raise CheckError(f"transformer '{node.name}' needs a string operand, "
                             f"not a {inner.kind} one", node.pos)
        return OperandType("str", inner.multi, inner.is_list)
    raise CheckError(f"not an operand: {n.to_text(node)}", getattr(node, "pos", 0))


class Checker(n.NodeVisitor):
    """Validates a tree whose macros are resolved; collects ``<NA>`` warnings in ``warnings``.

    ``check_evttypes`` validates ``evt.type`` names against the event table (syscall source).
    """

    def __init__(self, provider: Any, check_evttypes: bool = True):
        self.provider = provider
        self.check_evttypes = check_evttypes
        self.macros: list[str] = []
        self.warnings: list[tuple[str, int, tuple]] = []
        self.fields: set[str] = set()

    def check(self, tree: n.Node) -> None:
        self.visit(tree)

    def _fail(self, exc: CheckError):
        exc.macros = tuple(self.macros)
        raise exc

    def visit_Or(self, node):
        for item in node.items:
            self.visit(item)

    visit_And = visit_Or

    def visit_Not(self, node):
        self.visit(node.expr)

    def visit_Macro(self, node):
        self.macros.append(node.name)
        self.visit(node.expr)
        self.macros.pop()

    def visit_Const(self, node):
        pass

    def visit_MacroRef(self, node):
        self._fail(CheckError(f"Undefined macro '{node.name}' used in filter.", node.pos))

    def _operand(self, node) -> OperandType:
        try:
            t = operand_type(self.provider, node)
        except CheckError as exc:
            self._fail(exc)
        self._collect_fields(node)
        return t

    def _collect_fields(self, node):
        if isinstance(node, n.FieldRef):
            self.fields.add(field_display(node))
        elif isinstance(node, n.Val):
            self.fields.add(field_display(node.field))
        elif isinstance(node, n.Transform):
            for arg in node.args:
                if not isinstance(arg, n.Literal):
                    self._collect_fields(arg)

    def visit_Check(self, node: n.Check):
        lt = self._operand(node.lhs)
        op = node.op
        lhs_text = n.to_text(node.lhs)
        if op not in ALLOWED_OPS[lt.kind]:
            self._fail(CheckError(f"operator '{op}' cannot be used with '{lhs_text}' "
                                  f"(a {lt.kind} value)", node.pos))
        if op == "exists":
            return
        if node.modifier is not None:
            if op not in MODIFIER_OPS:
                self._fail(CheckError(f"modifier '{node.modifier}' cannot be used with operator '{op}'",
                                      node.pos))
            assert node.modifier in MODIFIERS
        value = node.value
        if isinstance(value, n.ListRef):
            self._fail(CheckError(f"Undefined list '{value.name}' used in filter.", value.pos))
        if isinstance(value, (n.Val, n.Transform)):
            rt = self._operand(value)
            if rt.kind != lt.kind and not ({rt.kind, lt.kind} <= {"str", "dyn", "bytes"}):
                self._fail(CheckError(f"cannot compare '{lhs_text}' (a {lt.kind} value) with "
                                      f"'{n.to_text(value)}' (a {rt.kind} value)", value.pos))
            return
        items = value.items if isinstance(value, n.ListLiteral) else (value,)
        if isinstance(value, n.ListLiteral) and op not in LIST_OPS and node.modifier is None:
            self._fail(CheckError(f"operator '{op}' needs a single value, not a list", value.pos))
        for item in items:
            self._literal(lt, op, item)
        if (self.check_evttypes and isinstance(node.lhs, n.FieldRef) and node.lhs.name == "evt.type"
                and node.lhs.arg is None and op in ("=", "==", "!=", "in", "intersects")):
            known = event_type_names()
            for item in items:
                if item.value not in known:
                    self._fail(CheckError(f"unknown event type '{item.value}'", item.pos, unknown=True))
        if op in ("=", "==", "!=") and lt.kind == "str" and isinstance(value, n.Literal) \
                and value.value == "<NA>":
            self.warnings.append((f"comparing '{lhs_text}' with '<NA>' is unsafe: use "
                                  f"'{'not ' if op != '!=' else ''}{lhs_text} exists' instead",
                                  value.pos, tuple(self.macros)))

    def _literal(self, lt: OperandType, op: str, item: n.Literal):
        try:
            value = convert_literal(lt.kind, op, item.value)
        except LiteralError as exc:
            self._fail(CheckError(str(exc), item.pos))
        if op in NUM_OPS and isinstance(value, str) and lt.kind == "str":
            return
        if op == "regex":
            try:
                re.compile(value)
            except re.error as exc:
                self._fail(CheckError(f"invalid regular expression '{item.value}': {exc}", item.pos))
