# SPDX-License-Identifier: Apache-2.0
"""Expands lists (textually, before parsing) and macros (as subtrees, after parsing).

Lists: an occurrence of a list name delimited by the start/end of the text, a blank, '(', ')',
',' or '=' is replaced by the list's items joined with ", " (items holding a blank are
double-quoted); an empty list also removes one adjacent comma. A list item naming a list defined
earlier is replaced by that list's items.

Macros: a :class:`~pyfalco.rules.nodes.MacroRef` becomes a :class:`~pyfalco.rules.nodes.Macro`
holding the macro's resolved tree. A macro sees only macros defined before it (its
``visibility``); rules see all macros.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping, Sequence

from pyfalco.rules import nodes as n
from pyfalco.rules.errors import RuleError

__all__ = ["expand_lists", "quote_item", "compile_lists", "MacroResolver", "ResolveError", "CycleError"]

_WORD = re.compile(r"[^ \t\n\r(),=]+")
_BLANK = " \t\n\r"


def quote_item(item: str) -> str:
    """A list item as it is written into a condition: items with blanks get double quotes."""
    if item[:1] in ('"', "'"):
        return item
    if any(ch in item for ch in _BLANK):
        return '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return item


def expand_lists(text: str, lists: Mapping[str, Sequence[str]], used: set | None = None) -> str:
    """Replace every delimited list name in ``text`` by its items (see the module docstring)."""
    if not lists:
        return text
    out: list[str] = []
    last = 0
    skip_comma = False
    for m in _WORD.finditer(text):
        items = lists.get(m.group())
        if items is None:
            continue
        if used is not None:
            used.add(m.group())
        start, end = m.start(), m.end()
        sub = ", ".join(quote_item(i) for i in items)
        before = text[last:start].rstrip(_BLANK)
        if skip_comma:
            before = before.lstrip(_BLANK)
            if before.startswith(","):
                before = before[1:]
            skip_comma = False
        if not sub and before.endswith(","):
            before = before[:-1]
        elif not sub:
            skip_comma = True
        out.append(before)
        out.append(" " + sub + " ")
        last = end
        while last < len(text) and text[last] in _BLANK:
            last += 1
    rest = text[last:]
    if skip_comma:
        stripped = rest.lstrip(_BLANK)
        if stripped.startswith(","):
            rest = stripped[1:]
    out.append(rest)
    return "".join(out)


class CycleError(RuleError, ValueError):
    def __init__(self, kind: str, chain: Sequence[str]):
        self.chain = tuple(chain)
        super().__init__(f"{kind} cycle detected: {' -> '.join(chain)}")


def compile_lists(order: Sequence, used: set) -> dict[str, list[str]]:
    """Items of each list with references to earlier lists inlined.

    ``order`` holds objects with ``name``, ``items``, ``index`` and ``visibility``: a list item
    naming list L is inlined when ``L.index < visibility`` of the referring list. Raises
    :class:`CycleError` on a cycle.
    """
    by_name = {info.name: info for info in order}
    done: dict[str, list[str]] = {}

    def build(info, stack: list[str]) -> list[str]:
        if info.name in done:
            return done[info.name]
        if info.name in stack:
            raise CycleError("List", stack[stack.index(info.name):] + [info.name])
        stack.append(info.name)
        items: list[str] = []
        for item in info.items:
            ref = by_name.get(item)
            if ref is not None and ref.index < info.visibility:
                used.add(ref.name)
                items.extend(build(ref, stack))
            else:
                items.append(item)
        stack.pop()
        done[info.name] = items
        return items

    for info in order:
        build(info, [])
    return done


class ResolveError(RuleError, ValueError):
    """An undefined macro (or a cycle) at ``pos`` of the text of ``macros[-1]`` (or the rule)."""

    def __init__(self, msg: str, pos: int, macros: tuple = (), cycle: tuple | None = None):
        super().__init__(msg)
        self.msg = msg
        self.pos = pos
        self.macros = macros
        self.cycle = cycle


class MacroResolver(n.NodeVisitor):
    """Substitutes macro references.

    ``macros`` maps a name to an object with ``index``, ``visibility`` and ``tree`` (the parsed,
    unresolved condition, or None when the macro did not parse). ``used`` collects the names of
    macros referenced.
    """

    def __init__(self, macros: Mapping[str, object], used: set | None = None,
                 on_broken: Callable[[str], None] | None = None):
        self.macros = macros
        self.used = used if used is not None else set()
        self._resolved: dict[str, n.Node] = {}
        self._stack: list[str] = []
        self._visibility: list[float] = []

    def resolve(self, tree: n.Node, visibility: float = float("inf")) -> n.Node:
        self._visibility = [visibility]
        self._stack = []
        return self.visit(tree)

    def resolve_macro(self, name: str) -> n.Node:
        """The resolved tree of macro ``name`` (raises ResolveError)."""
        if name in self._resolved:
            return self._resolved[name]
        info = self.macros[name]
        if name in self._stack:
            chain = self._stack[self._stack.index(name):] + [name]
            raise ResolveError(f"Macro cycle detected: {' -> '.join(chain)}", 0, tuple(self._stack), tuple(chain))
        if info.tree is None:
            raise ResolveError(f"Macro '{name}' has an invalid condition", 0, tuple(self._stack))
        self._stack.append(name)
        self._visibility.append(info.visibility)
        try:
            tree = self.visit(info.tree)
        finally:
            self._stack.pop()
            self._visibility.pop()
        self._resolved[name] = tree
        return tree

    def visit_MacroRef(self, node: n.MacroRef) -> n.Node:
        info = self.macros.get(node.name)
        if info is None or not info.index < self._visibility[-1]:
            raise ResolveError(f"Undefined macro '{node.name}' used in filter.", node.pos, tuple(self._stack))
        self.used.add(node.name)
        return n.Macro(node.name, self.resolve_macro(node.name), pos=node.pos)

    def visit_Or(self, node):
        items = tuple(self.visit(i) for i in node.items)
        return node if all(a is b for a, b in zip(items, node.items)) else type(node)(items, pos=node.pos)

    visit_And = visit_Or

    def visit_Not(self, node):
        expr = self.visit(node.expr)
        return node if expr is node.expr else n.Not(expr, pos=node.pos)

    def generic_visit(self, node, *args):
        return node  # checks, constants and already-resolved macros contain no macro reference
