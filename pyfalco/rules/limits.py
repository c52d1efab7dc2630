# SPDX-License-Identifier: Apache-2.0
"""Bounds on what a rules file may ask of the loader, and the measure of an expanded condition.

A rules file is input from whoever can write it: without bounds a few hundred bytes of macros
that each use the previous one twice expand to millions of checks (exponential time and memory),
and a long chain of macros nests deeper than Python's recursion limit. The loader refuses such
conditions with an error naming the item and the limit; everything under the limits loads in
time and memory linear in its expanded size. The values are documented in docs/rules.md.

:func:`measure` computes the expanded size and depths of a resolved tree without expanding it:
macro subtrees are shared (a DAG) and measured once, iteratively (no recursion on depth).
"""

from __future__ import annotations

from typing import NamedTuple

from pyfalco.rules import nodes as n

__all__ = ["MAX_NESTING", "MAX_MACRO_DEPTH", "MAX_EXPANDED_DEPTH", "MAX_EXPANDED_NODES",
           "MAX_EXPANDED_VALUES", "MAX_LIST_ITEMS", "MAX_CONDITION_LENGTH", "MAX_TOTAL_NODES",
           "MAX_TOTAL_VALUES", "MAX_TOTAL_LENGTH", "Expansion", "measure", "macro_path", "largest_macro",
           "limit_problem", "Budget"]

# Parentheses, ``not`` and transformer calls nested in one condition text (parser.py).
MAX_NESTING = 100
# Macros using macros: the longest chain of macro references in one condition.
MAX_MACRO_DEPTH = 64
# ``and``/``or``/``not`` and transformer levels of a condition after its macros are expanded.
# The generated Python nests one parenthesis per level, and CPython refuses more than 200.
MAX_EXPANDED_DEPTH = 100
# Checks and ``and``/``or``/``not`` operators of a condition after its macros are expanded.
MAX_EXPANDED_NODES = 25_000
# Values of list literals (``in (...)``, ``oneof (...)``) of a condition after macro expansion.
MAX_EXPANDED_VALUES = 200_000
# Items of one list after the lists it names are inlined.
MAX_LIST_ITEMS = 100_000
# Characters of one condition after its lists are expanded (before parsing).
MAX_CONDITION_LENGTH = 1024 * 1024
# The same, added up over every rule (and macro, for the text) of one load: a small file can
# otherwise use one big macro or list in thousands of rules.
MAX_TOTAL_NODES = 100_000
MAX_TOTAL_VALUES = 1_000_000
MAX_TOTAL_LENGTH = 8 * 1024 * 1024


class Expansion(NamedTuple):
    """What a condition amounts to once every macro is expanded."""

    nodes: int          # checks and and/or/not operators
    values: int         # list literal values
    depth: int          # and/or/not/transformer nesting
    macro_depth: int    # longest chain of macro references


_LEAF = Expansion(1, 0, 1, 0)


def _operand_depth(node) -> int:
    """Transformer nesting of an operand (bounded by the parser's MAX_NESTING)."""
    depth = 0
    while True:
        if isinstance(node, n.Val):
            return depth + 1
        if not isinstance(node, n.Transform):
            return depth
        inner = [a for a in node.args if not isinstance(a, n.Literal)]
        if not inner:
            return depth + 1
        if len(inner) == 1:
            depth, node = depth + 1, inner[0]
            continue
        return depth + 1 + max(_operand_depth(a) for a in inner)


def _children(node) -> tuple:
    if isinstance(node, (n.And, n.Or)):
        return node.items
    if isinstance(node, n.Not):
        return (node.expr,)
    if isinstance(node, n.Macro):
        return (node.expr,)
    return ()


def _leaf(node) -> Expansion:
    if isinstance(node, n.Check):
        values = len(node.value.items) if isinstance(node.value, n.ListLiteral) else 0
        depth = 1 + max(_operand_depth(node.lhs), _operand_depth(node.value))
        return Expansion(1, values, depth, 0)
    return _LEAF


def measure(tree: n.Node, memo: dict | None = None) -> Expansion:
    """The :class:`Expansion` of a resolved ``tree``, in time linear in its distinct nodes.

    ``memo`` (id of a node -> (node, Expansion)) may be shared between calls on trees that share
    macro subtrees (the resolver's); it keeps the nodes alive so that their ids stay theirs.
    """
    memo = {} if memo is None else memo
    stack = [(tree, False)]
    while stack:
        node, expanded = stack.pop()
        key = id(node)
        if key in memo:
            continue
        kids = _children(node)
        if not kids:
            memo[key] = (node, _leaf(node))
            continue
        if not expanded:
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in memo)
            continue
        parts = [memo[id(k)][1] for k in kids]
        nodes = sum(p.nodes for p in parts)
        values = sum(p.values for p in parts)
        depth = max(p.depth for p in parts)
        mdepth = max(p.macro_depth for p in parts)
        if isinstance(node, n.Macro):
            memo[key] = (node, Expansion(nodes, values, depth, mdepth + 1))
        else:
            memo[key] = (node, Expansion(nodes + 1, values, depth + 1, mdepth))
    return memo[id(tree)][1]


def macro_path(tree: n.Node, memo: dict) -> list[str]:
    """Names of the macros on the longest chain of macro references in ``tree`` (measured)."""
    path = []
    node = tree
    while True:
        kids = _children(node)
        if not kids:
            return path
        if isinstance(node, n.Macro):
            path.append(node.name)
        node = max(kids, key=lambda k: memo[id(k)][1].macro_depth)


def largest_macro(tree: n.Node, memo: dict) -> tuple[str, Expansion] | None:
    """The macro used in ``tree`` (measured) that contributes the most, with its expansion."""
    node = tree.expr if isinstance(tree, n.Macro) else tree  # a macro is not its own culprit
    while True:
        if isinstance(node, n.Macro):
            return node.name, memo[id(node)][1]
        kids = _children(node)
        if not kids:
            return None
        node = max(kids, key=lambda k: memo[id(k)][1].nodes + memo[id(k)][1].values)


def _chain_text(names: list[str]) -> str:
    if len(names) > 6:
        names = names[:3] + ["..."] + names[-2:]
    return " -> ".join(names)


def limit_problem(tree: n.Node, memo: dict) -> str | None:
    """Why the resolved ``tree`` is over a limit (None when it is not). Linear in its DAG."""
    exp = measure(tree, memo)
    if exp.macro_depth > MAX_MACRO_DEPTH:
        return (f"macros are nested {exp.macro_depth} levels deep, more than the limit of "
                f"{MAX_MACRO_DEPTH} ({_chain_text(macro_path(tree, memo))})")
    if exp.depth > MAX_EXPANDED_DEPTH:
        return (f"the condition is nested {exp.depth} levels deep once its macros are expanded, "
                f"more than the limit of {MAX_EXPANDED_DEPTH}")
    for count, limit, what in ((exp.nodes, MAX_EXPANDED_NODES, "checks and operators"),
                               (exp.values, MAX_EXPANDED_VALUES, "list values")):
        if count > limit:
            big = largest_macro(tree, memo)
            via = ""
            if big is not None:
                share = big[1].nodes if what != "list values" else big[1].values
                via = f"; macro '{big[0]}' alone expands to {share:,}"
            return (f"the condition expands to {count:,} {what} once its macros are expanded, more "
                    f"than the limit of {limit:,}{via}")
    return None


class Budget:
    """What the conditions of one load have used so far of the MAX_TOTAL_* limits."""

    def __init__(self):
        self.length = 0
        self.nodes = 0
        self.values = 0
        self.exhausted = False  # set with the first problem: the load stops compiling there

    def spend_text(self, length: int) -> str | None:
        """Count a condition text after list expansion; the problem when over the limit."""
        self.length += length
        if self.length > MAX_TOTAL_LENGTH:
            self.exhausted = True
            return (f"the conditions of the rules files are longer than the limit of {MAX_TOTAL_LENGTH:,} "
                    f"characters in all once their lists are expanded")
        return None

    def spend(self, exp: Expansion) -> str | None:
        """Count a rule's expanded condition; the problem when over a limit."""
        self.nodes += exp.nodes
        self.values += exp.values
        if self.nodes > MAX_TOTAL_NODES or self.values > MAX_TOTAL_VALUES:
            self.exhausted = True
        if self.nodes > MAX_TOTAL_NODES:
            return (f"the rules expand to more than the limit of {MAX_TOTAL_NODES:,} checks and operators "
                    f"in all once their macros are expanded")
        if self.values > MAX_TOTAL_VALUES:
            return (f"the rules expand to more than the limit of {MAX_TOTAL_VALUES:,} list values in all "
                    f"once their macros are expanded")
        return None
