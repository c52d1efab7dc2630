# SPDX-License-Identifier: Apache-2.0
"""Typed syntax-tree nodes of conditions (built by parser.py), the visitor base, and the printer.

Every node is a frozen, slotted dataclass. ``pos`` is the 0-based offset of the node in the text
it was parsed from; it takes no part in equality, so a printed tree parses back equal.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any, Union

__all__ = [
    "frozen_node", "Node", "Or", "And", "Not", "Check", "MacroRef", "Macro", "Const",
    "FieldRef", "Transform", "Val", "Literal", "ListLiteral", "ListRef",
    "NodeVisitor", "to_text", "Expr", "Operand", "Value",
]

_POS = field(default=-1, compare=False, repr=False)

# Frozen and slotted; Python < 3.10 (PyPy 3.9) has no ``slots=`` and gets plain frozen classes.
frozen_node = dataclass(frozen=True, slots=True) if sys.version_info >= (3, 10) else dataclass(frozen=True)


@frozen_node
class Node:
    """Base class of all nodes."""


# ---- boolean structure -------------------------------------------------------------------------

@frozen_node
class Or(Node):
    items: tuple
    pos: int = _POS


@frozen_node
class And(Node):
    items: tuple
    pos: int = _POS


@frozen_node
class Not(Node):
    expr: Node
    pos: int = _POS


@frozen_node
class Check(Node):
    """``lhs op value``; ``value`` is None for ``exists``; ``modifier`` is oneof/anyof/allof."""

    lhs: Node
    op: str
    value: Node | None = None
    modifier: str | None = None
    pos: int = _POS


@frozen_node
class MacroRef(Node):
    """A bare identifier in check position: a macro to be substituted by resolver.py."""

    name: str
    pos: int = _POS


@frozen_node
class Macro(Node):
    """A macro reference after resolution: the name is kept for error context and listings."""

    name: str
    expr: Node
    pos: int = _POS


@frozen_node
class Const(Node):
    """A folded constant (never produced by the parser)."""

    value: bool
    pos: int = _POS


# ---- operands and values ----------------------------------------------------------------------

@frozen_node
class FieldRef(Node):
    name: str
    arg: str | None = None
    pos: int = _POS


@frozen_node
class Transform(Node):
    """``name(args...)``: tolower/toupper/b64/basename/len take one operand; join takes a
    separator Literal first; concat takes operands and Literals."""

    name: str
    args: tuple
    pos: int = _POS


@frozen_node
class Val(Node):
    """``val(field)`` on the right-hand side: compare against another field of the same event."""

    field: FieldRef
    pos: int = _POS


@frozen_node
class Literal(Node):
    value: str
    pos: int = _POS
    quoted: bool = field(default=False, compare=False, repr=False)


@frozen_node
class ListLiteral(Node):
    items: tuple
    pos: int = _POS


@frozen_node
class ListRef(Node):
    """``in name`` where ``name`` was not expanded textually (an undefined list)."""

    name: str
    pos: int = _POS


Expr = Union[Or, And, Not, Check, MacroRef, Macro, Const]
Operand = Union[FieldRef, Transform]
Value = Union[Literal, ListLiteral, ListRef, Val, Transform]


class NodeVisitor:
    """Dispatches ``visit(node)`` to ``visit_<ClassName>``, falling back to ``generic_visit``."""

    def visit(self, node: Node, *args: Any) -> Any:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            return self.generic_visit(node, *args)
        return method(node, *args)

    def generic_visit(self, node: Node, *args: Any) -> Any:
        raise TypeError(f"{type(self).__name__} cannot visit {type(node).__name__}")


# ---- printer ------------------------------------------------------------------------------------

_BARE_VALUE = re.compile(r"[^\s\b(),=\"'\\]+\Z")
_BARE_ARG = re.compile(r"[^\s\b\[\]\"'\\]+\Z")
_KEYWORDS = frozenset(("and", "or", "not", "oneof", "anyof", "allof", "val", "tolower", "toupper",
                       "b64", "basename", "len", "join", "concat"))


def quote(text: str) -> str:
    """A double-quoted string literal that the lexer reads back as ``text``."""
    out = text.replace("\\", "\\\\").replace('"', '\\"')
    out = out.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return f'"{out}"'


def _value_text(text: str) -> str:
    if _BARE_VALUE.match(text) and text not in _KEYWORDS:
        return text
    return quote(text)


class _Printer(NodeVisitor):
    def _operand(self, node: Node) -> str:
        text = self.visit(node)
        return f"({text})" if isinstance(node, (And, Or)) else text

    def visit_Or(self, node: Or) -> str:
        return " or ".join(self._operand(item) for item in node.items)

    def visit_And(self, node: And) -> str:
        return " and ".join(self._operand(item) for item in node.items)

    def visit_Not(self, node: Not) -> str:
        return "not " + self._operand(node.expr)

    def visit_Check(self, node: Check) -> str:
        lhs = self.visit(node.lhs)
        if node.value is None:
            return f"{lhs} {node.op}"
        mod = f" {node.modifier}" if node.modifier else ""
        return f"{lhs} {node.op}{mod} {self.visit(node.value)}"

    def visit_MacroRef(self, node: MacroRef) -> str:
        return node.name

    def visit_Macro(self, node: Macro) -> str:
        return f"({self.visit(node.expr)})"

    def visit_Const(self, node: Const) -> str:
        # Printed as checks that are constant for every event; they never reach the parser twice.
        return "(evt.num >= 0 or not evt.num >= 0)" if node.value else "(evt.num >= 0 and not evt.num >= 0)"

    def visit_FieldRef(self, node: FieldRef) -> str:
        if node.arg is None:
            return node.name
        arg = node.arg if _BARE_ARG.match(node.arg) else quote(node.arg)
        return f"{node.name}[{arg}]"

    def _targ(self, node: Node) -> str:
        # Inside a transformer a bare word could read back as a field: always quote literals.
        return quote(node.value) if isinstance(node, Literal) else self.visit(node)

    def visit_Transform(self, node: Transform) -> str:
        if node.name == "join":
            sep, *rest = node.args
            return f"join({self._targ(sep)}, ({', '.join(self._targ(a) for a in rest)}))"
        return f"{node.name}({', '.join(self._targ(a) for a in node.args)})"

    def visit_Val(self, node: Val) -> str:
        return f"val({self.visit(node.field)})"

    def visit_Literal(self, node: Literal) -> str:
        return _value_text(node.value)

    def visit_ListLiteral(self, node: ListLiteral) -> str:
        return "(" + ", ".join(self.visit(item) for item in node.items) + ")"

    def visit_ListRef(self, node: ListRef) -> str:
        return node.name


_PRINTER = _Printer()


def to_text(node: Node) -> str:
    """Canonical condition text for ``node``; ``parse(to_text(n)) == n`` for parser output."""
    return _PRINTER.visit(node)
