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
from collections.abc import Mapping
from typing import Callable, Sequence

from pyfalco.rules import nodes as n
from pyfalco.rules.errors import RuleError
from pyfalco.rules.limits import (MAX_CONDITION_LENGTH, MAX_LIST_ITEMS, MAX_MACRO_DEPTH, Expansion, limit_problem,
                                  measure)

__all__ = ["expand_lists", "quote_item", "compile_lists", "MacroResolver", "ResolveError", "CycleError",
           "LimitError", "ListLimitError"]

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
    """Replace every delimited list name in ``text`` by its items (see the module docstring).

    Raises :class:`LimitError` (at the offending reference) when the result would be longer
    than ``MAX_CONDITION_LENGTH`` characters; nothing that long is built.
    """
    if not lists:
        if len(text) > MAX_CONDITION_LENGTH:
            raise LimitError(_too_long(len(text)), 0)
        return text
    out: list[str] = []
    size = 0
    last = 0
    skip_comma = False
    joined: dict[str, str] = {}
    for m in _WORD.finditer(text):
        items = lists.get(m.group())
        if items is None:
            continue
        if used is not None:
            used.add(m.group())
        start, end = m.start(), m.end()
        sub = joined.get(m.group())
        if sub is None:
            # the text of a list is built once per condition, and only while it fits
            if len(items) > MAX_CONDITION_LENGTH // 2:
                raise LimitError(_too_long(size + 2 * len(items)), start)
            sub = joined[m.group()] = ", ".join(quote_item(i) for i in items)
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
        size += len(before) + len(sub) + 2
        if size > MAX_CONDITION_LENGTH:
            raise LimitError(_too_long(size), start)
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
    if size + len(rest) > MAX_CONDITION_LENGTH:
        raise LimitError(_too_long(size + len(rest)), last)
    out.append(rest)
    return "".join(out)


def _too_long(size: int) -> str:
    return (f"the condition is longer than the limit of {MAX_CONDITION_LENGTH:,} characters once its "
            f"lists are expanded (at least {size:,})")


class CycleError(RuleError, ValueError):
    def __init__(self, kind: str, chain: Sequence[str]):
        self.chain = tuple(chain)
        super().__init__(f"{kind} cycle detected: {' -> '.join(chain)}")


class ListLimitError(RuleError, ValueError):
    """A list with more than ``MAX_LIST_ITEMS`` items once the lists it names are inlined."""

    def __init__(self, name: str, size: int):
        self.chain = (name,)
        self.size = size
        super().__init__(f"list '{name}' has {size:,} items once the lists it names are inlined, more "
                         f"than the limit of {MAX_LIST_ITEMS:,}")


def compile_lists(order: Sequence, used: set) -> Mapping[str, list[str]]:
    """Items of each list with references to earlier lists inlined.

    ``order`` holds objects with ``name``, ``items``, ``index`` and ``visibility``: a list item
    naming list L is inlined when ``L.index < visibility`` of the referring list. Raises
    :class:`CycleError` on a cycle and :class:`ListLimitError` on a list longer than
    ``MAX_LIST_ITEMS``. Only sizes are computed here (iteratively: lists may name lists to
    any depth); a list's items are built when a condition first uses it, so memory follows
    what the conditions use.
    """
    by_name = {info.name: info for info in order}
    sizes: dict[str, int] = {}

    def refs(info):
        for item in info.items:
            ref = by_name.get(item)
            if ref is not None and ref.index < info.visibility:
                yield ref

    for root in order:
        if root.name in sizes:
            continue
        stack = [(root, refs(root))]
        on_stack = [root.name]
        while stack:
            info, pending = stack[-1]
            ref = next(pending, None)
            if ref is not None:
                used.add(ref.name)
                if ref.name in sizes:
                    continue
                if ref.name in on_stack:
                    raise CycleError("List", on_stack[on_stack.index(ref.name):] + [ref.name])
                stack.append((ref, refs(ref)))
                on_stack.append(ref.name)
                continue
            size = 0
            for item in info.items:
                ref = by_name.get(item)
                size += sizes[ref.name] if ref is not None and ref.index < info.visibility else 1
            if size > MAX_LIST_ITEMS:
                raise ListLimitError(info.name, size)
            sizes[info.name] = size
            stack.pop()
            on_stack.pop()
    return _Lists(by_name, sizes)


class _Lists(Mapping):
    """The items of every list (see compile_lists), built on first use."""

    def __init__(self, by_name: dict, sizes: dict):
        self._by_name = by_name
        self._sizes = sizes
        self._built: dict[str, list[str]] = {}

    def _refs(self, info):
        for item in info.items:
            ref = self._by_name.get(item)
            if ref is not None and ref.index < info.visibility:
                yield ref

    def __getitem__(self, name: str) -> list[str]:
        built = self._built
        items = built.get(name)
        if items is not None:
            return items
        stack = [self._by_name[name]]  # KeyError for unknown names, as a dict; no cycles here
        while stack:  # post-order without recursion: lists may name lists to any depth
            info = stack[-1]
            if info.name in built:
                stack.pop()
                continue
            missing = [ref for ref in self._refs(info) if ref.name not in built]
            if missing:
                stack.extend(missing)
                continue
            stack.pop()
            items = []
            for item in info.items:
                ref = self._by_name.get(item)
                if ref is not None and ref.index < info.visibility:
                    items.extend(built[ref.name])
                else:
                    items.append(item)
            built[info.name] = items
        return built[name]

    def get(self, name: str, default=None):  # per word of every condition: no KeyError round trip
        return self[name] if name in self._by_name else default

    def __contains__(self, name) -> bool:
        return name in self._by_name

    def __iter__(self):
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)


class ResolveError(RuleError, ValueError):
    """An undefined macro (or a cycle) at ``pos`` of the text of ``macros[-1]`` (or the rule)."""

    def __init__(self, msg: str, pos: int, macros: tuple = (), cycle: tuple | None = None):
        super().__init__(msg)
        self.msg = msg
        self.pos = pos
        self.macros = macros
        self.cycle = cycle


class LimitError(ResolveError):
    """A condition over one of the limits of limits.py (expansion size, depth, length)."""


class MacroResolver(n.NodeVisitor):
    """Substitutes macro references.

    ``macros`` maps a name to an object with ``index``, ``visibility`` and ``tree`` (the parsed,
    unresolved condition, or None when the macro did not parse). ``used`` collects the names of
    macros referenced.

    A macro is resolved once and its tree shared by every reference (the result is a DAG, its
    size linear in the rules text); a macro or a rule whose expansion is over a limit of
    limits.py raises :class:`LimitError` (measured on the DAG, never expanded).
    """

    def __init__(self, macros: Mapping[str, object], used: set | None = None,
                 on_broken: Callable[[str], None] | None = None):
        self.macros = macros
        self.used = used if used is not None else set()
        self._resolved: dict[str, n.Node] = {}
        self._stack: list[str] = []
        self._visibility: list[float] = []
        self._measured: dict = {}  # limits.measure's memo, shared by every tree of this resolver
        self._failed: dict[str, ResolveError] = {}  # macros that failed: never resolved twice

    def expansion(self, tree: n.Node) -> Expansion:
        """limits.measure of a tree this resolver returned (memoized across its trees)."""
        return measure(tree, self._measured)

    def resolve(self, tree: n.Node, visibility: float = float("inf")) -> n.Node:
        """``tree`` with its macros substituted; raises ResolveError (LimitError over a limit)."""
        self._visibility = [visibility]
        self._stack = []
        tree = self.visit(tree)
        problem = limit_problem(tree, self._measured)
        if problem:
            raise LimitError(problem, 0, ())
        return tree

    def resolve_macro(self, name: str) -> n.Node:
        """The resolved tree of macro ``name`` (raises ResolveError)."""
        if name in self._resolved:
            return self._resolved[name]
        failed = self._failed.get(name)
        if failed is not None:  # a fresh copy: re-raising one object would grow its traceback
            raise type(failed)(failed.msg, failed.pos, failed.macros, failed.cycle)
        info = self.macros[name]
        if name in self._stack:
            chain = self._stack[self._stack.index(name):] + [name]
            raise ResolveError(f"Macro cycle detected: {' -> '.join(chain)}", 0, tuple(self._stack), tuple(chain))
        if info.tree is None:
            raise ResolveError(f"Macro '{name}' has an invalid condition", 0, tuple(self._stack))
        if len(self._stack) >= MAX_MACRO_DEPTH:
            # only macros referring to macros defined after them (appends, overrides) get here:
            # the loader resolves macros in definition order, so one level at a time
            chain = self._stack[:3] + ["..."] + self._stack[-2:] + [name]
            exc = LimitError(f"macros are nested more than the limit of {MAX_MACRO_DEPTH} levels "
                             f"({' -> '.join(chain)})", 0, tuple(self._stack) + (name,))
            exc.on_stack = True
            raise exc
        self._stack.append(name)
        self._visibility.append(info.visibility)
        try:
            tree = self.visit(info.tree)
        except ResolveError as exc:
            # a macro that fails fails the same way from anywhere: remember it, so that a chain
            # of macros over a broken one costs one resolution each (not one per reference)
            if not getattr(exc, "on_stack", False) and not (exc.cycle and name in exc.cycle):
                self._failed[name] = exc
            raise
        finally:
            self._stack.pop()
            self._visibility.pop()
        problem = limit_problem(n.Macro(name, tree), self._measured)
        if problem:
            exc = self._failed[name] = LimitError(problem, 0, tuple(self._stack) + (name,))
            raise exc
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
