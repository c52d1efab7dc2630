# SPDX-License-Identifier: Apache-2.0
"""One condition compiled on its own (no rules file): for ad-hoc filters, tests and tools.

``compile_filter("proc.name in (shells)", lists={"shells": ["sh", "bash"]})`` runs the same
pipeline as a rule: list expansion, parse, macro resolution, checks, event types, codegen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from pyfalco.rules import nodes as n
from pyfalco.rules.checker import Checker
from pyfalco.rules.compiler import compile_condition
from pyfalco.rules.evttypes import evttypes
from pyfalco.rules.interpreter import Interpreter
from pyfalco.rules.parser import parse
from pyfalco.rules.provider import DictProvider
from pyfalco.rules.resolver import MacroResolver, compile_lists, expand_lists

__all__ = ["Filter", "compile_filter"]


@dataclass
class _Item:
    name: str
    index: int
    visibility: float
    items: Sequence[str] = ()
    tree: Any = None


@dataclass
class Filter:
    condition: str           # after list expansion
    tree: n.Node = field(repr=False)
    source: str = field(repr=False)
    evttypes: frozenset = field(repr=False)
    provider: Any = field(repr=False)
    fn: Any = field(repr=False)
    warnings: list = field(default_factory=list, repr=False)

    def matches(self, evt: Any) -> bool:
        return self.fn(evt)

    def reference_matches(self, evt: Any) -> bool:
        return Interpreter(self.provider).evaluate(self.tree, evt)


def compile_filter(condition: str, provider: Any = None, *, macros: Mapping[str, str] | None = None,
                   lists: Mapping[str, Sequence[str]] | None = None, check_evttypes: bool = True) -> Filter:
    """Compile ``condition`` with ``macros`` (name -> condition, in definition order) and ``lists``.

    Raises ConditionSyntaxError (syntax), ResolveError (undefined macro, cycle) or CheckError
    (unknown field, bad operator or literal), all subclasses of RuleError.
    """
    provider = provider if provider is not None else DictProvider()
    lists = dict(lists or {})
    order = [_Item(name, i, i, list(items)) for i, (name, items) in enumerate(lists.items())]
    compiled_lists = compile_lists(order, set()) if order else {}
    infos = {}
    for i, (name, text) in enumerate((macros or {}).items()):
        infos[name] = _Item(name, i, i, tree=parse(expand_lists(text, compiled_lists)))
    text = expand_lists(condition, compiled_lists)
    tree = MacroResolver(infos).resolve(parse(text))
    checker = Checker(provider, check_evttypes=check_evttypes)
    checker.check(tree)
    compiled = compile_condition(tree, provider, name="filter", fn_name="filter")
    return Filter(text, tree, compiled.source, evttypes(tree), provider, compiled.function, checker.warnings)
