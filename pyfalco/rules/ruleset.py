# SPDX-License-Identifier: Apache-2.0
"""Compiled rules, indexed by event type, with Falco's selection options.

``Ruleset.match(evt)`` looks up the event's type in a dict built from the enabled rules, so an
event only meets rules whose condition can match its type, and calls their compiled functions
in definition order (``rule_matching: first`` stops at the first match). Enabling/disabling by
name (``*`` wildcards) or tag and the minimum priority rebuild the index; they never touch the
per-event path.
"""

from __future__ import annotations

import enum
import fnmatch
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from pyfalco.rules import nodes as n

__all__ = ["Priority", "Rule", "Ruleset"]

log = logging.getLogger(__name__)
#: event types whose bucket may get the open prefilter (pyfalco.rules.prefilter)
_OPEN_TYPES = frozenset(("open", "openat", "openat2"))


class Priority(enum.IntEnum):
    """Falco priorities; a lower value is more severe."""

    EMERGENCY = 0
    ALERT = 1
    CRITICAL = 2
    ERROR = 3
    WARNING = 4
    NOTICE = 5
    INFORMATIONAL = 6
    DEBUG = 7

    @property
    def label(self) -> str:
        """The long name Falco prints: ``Warning``, ``Informational``, ..."""
        return self.name.capitalize()

    @classmethod
    def parse(cls, text: str | "Priority") -> "Priority":
        """Case-insensitive name (``Info`` too); raises ValueError("Invalid priority ...")."""
        if isinstance(text, Priority):
            return text
        key = str(text).strip().upper()
        if key == "INFO":
            key = "INFORMATIONAL"
        try:
            return cls[key]
        except KeyError:
            raise ValueError(f"Invalid priority '{text}'") from None


@dataclass(eq=False)
class Rule:
    """One compiled rule. ``source`` is the generated Python source of its condition;
    ``event_source`` is the rule's ``source`` key (``syscall``)."""

    name: str
    desc: str
    condition: str                   # effective condition text (exceptions appended, lists expanded)
    output: str
    priority: Priority
    event_source: str
    tags: frozenset
    enabled: bool
    evttypes: frozenset
    tree: n.Node = field(repr=False)
    source: str = field(repr=False)
    fn: Callable[[Any], bool] = field(repr=False)
    output_format: Any = field(repr=False)
    provider: Any = field(repr=False)
    exceptions: tuple = ()
    warn_evttypes: bool = True
    skip_if_unknown_filter: bool = False
    capture: bool = False
    capture_duration: int = 0
    fields: frozenset = frozenset()
    macros: frozenset = frozenset()
    index: int = 0

    def matches(self, evt: Any) -> bool:
        """Evaluate the compiled condition."""
        return self.fn(evt)

    def reference_matches(self, evt: Any) -> bool:
        """Evaluate with the reference interpreter (slow; for tests and debugging)."""
        from pyfalco.rules.interpreter import Interpreter
        return Interpreter(self.provider).evaluate(self.tree, evt)


def _matches_selector(rule: Rule, name: str | None, tag: str | None) -> bool:
    if name is not None and not fnmatch.fnmatchcase(rule.name, name):
        return False
    if tag is not None and tag not in rule.tags:
        return False
    return name is not None or tag is not None


class Ruleset:
    """The enabled rules of a load, indexed by event type, per event source.

    ``rule_matching`` is ``"first"`` (Falco's default) or ``"all"``; ``min_priority`` drops rules
    less severe than it; ``reference=True`` evaluates with the interpreter instead of the
    compiled functions (for comparisons).
    """

    #: the batch path's buckets see each rule's condition specialised for their event type, and
    #: leave out rules no event of that type can match (specialize.py); False: as written
    specialize_types: bool = True

    def __init__(self, rules: Sequence[Rule], providers: Mapping[str, Any], *,
                 rule_matching: str = "first", min_priority: Priority | str = Priority.DEBUG,
                 default_source: str = "syscall", universe: frozenset | None = None,
                 reference: bool = False):
        if rule_matching not in ("first", "all"):
            raise ValueError(f"rule_matching must be 'first' or 'all', not {rule_matching!r}")
        self.rules: tuple[Rule, ...] = tuple(rules)
        self._by_name = {r.name: r for r in self.rules}
        self.providers = dict(providers)
        self.rule_matching = rule_matching
        self.min_priority = Priority.parse(min_priority)
        self.default_source = default_source
        self.reference = reference
        if universe is None:
            from pyfalco.rules.checker import event_type_names
            universe = event_type_names()
        self.universe = universe
        self._enabled = {r.name: r.enabled for r in self.rules}
        #: the kernel filter's clause analysis (pyfalco.kfilter, set by the engine): buckets of
        #: open events test its clauses first (pyfalco.rules.prefilter); None: no prefilter
        self.open_analysis: Any = None
        self._indexes: dict[str, tuple[dict, tuple]] = {}
        # rule name -> evaluations that raised (a provider handing a value of an unexpected type):
        # counted for every event, logged at 1, 10, 100, ... so that a bad rule cannot flood the log
        self.evaluation_errors: dict[str, int] = {}
        self._rebuild()

    # ---- selection ------------------------------------------------------------------------
    def enable(self, name: str | None = None, tag: str | None = None) -> int:
        """Enable rules whose name matches ``name`` (``*`` wildcards) and/or carry ``tag``;
        returns how many rules matched."""
        return self._set(True, name, tag)

    def disable(self, name: str | None = None, tag: str | None = None) -> int:
        return self._set(False, name, tag)

    def _set(self, value: bool, name: str | None, tag: str | None) -> int:
        count = 0
        for rule in self.rules:
            if _matches_selector(rule, name, tag):
                self._enabled[rule.name] = value
                count += 1
        self._rebuild()
        return count

    def select(self, selection: Iterable[Mapping]) -> None:
        """Apply Falco's ``rules:`` config, in order: ``[{"disable": {"tag": "x"}},
        {"enable": {"rule": "A*"}}]``. Raises ValueError on a malformed entry."""
        for entry in selection:
            if not isinstance(entry, Mapping) or len(entry) != 1:
                raise ValueError(f"rules selection entries must be {{enable|disable: {{rule|tag: ...}}}}: {entry!r}")
            (action, target), = entry.items()
            if action not in ("enable", "disable") or not isinstance(target, Mapping) \
                    or not set(target) <= {"rule", "tag"} or not target:
                raise ValueError(f"invalid rules selection entry: {entry!r}")
            self._set(action == "enable", target.get("rule"), target.get("tag"))

    def set_min_priority(self, priority: Priority | str) -> None:
        self.min_priority = Priority.parse(priority)
        self._rebuild()

    def is_enabled(self, name: str) -> bool:
        return self._enabled[name]

    def rule(self, name: str) -> Rule:
        return self._by_name[name]

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self):
        return iter(self.rules)

    def enabled_rules(self, source: str | None = None) -> list[Rule]:
        source = source or self.default_source
        return [r for r in self.rules if r.event_source == source and self._active(r)]

    def _active(self, rule: Rule) -> bool:
        return self._enabled[rule.name] and rule.priority <= self.min_priority

    # ---- index ----------------------------------------------------------------------------
    def _rebuild(self) -> None:
        indexes: dict[str, tuple[dict, tuple]] = {}
        for source in {r.event_source for r in self.rules} | {self.default_source}:
            active = self.enabled_rules(source)
            pairs = [(r.reference_matches if self.reference else r.fn, r) for r in active]
            by_type: dict[str, list] = {}
            catch_all = []
            for pair in pairs:
                rule = pair[1]
                if rule.evttypes >= self.universe or source != "syscall":
                    catch_all.append(pair)
                for t in rule.evttypes:
                    by_type.setdefault(t, []).append(pair)
            # keep definition order inside every bucket (it already is: pairs are in order)
            indexes[source] = ({t: tuple(v) for t, v in by_type.items()}, tuple(catch_all))
        self._indexes = indexes
        self._default = indexes[self.default_source]
        self._code_indexes: dict = {}
        self._spec_trees: dict = {}
        self._event_type = self.providers[self.default_source].event_type \
            if self.default_source in self.providers else (lambda evt: None)

    def match(self, evt: Any, source: str | None = None) -> list[Rule]:
        """Rules matching ``evt`` (at most one with ``rule_matching='first'``)."""
        if source is None or source == self.default_source:
            by_type, catch_all = self._default
            etype = self._event_type(evt)
        else:
            by_type, catch_all = self._indexes.get(source, ({}, ()))
            provider = self.providers.get(source)
            etype = provider.event_type(evt) if provider is not None else None
        pairs = by_type.get(etype, catch_all) if by_type else catch_all
        if not pairs:
            return []
        try:
            if self.rule_matching == "first":
                for fn, rule in pairs:
                    if fn(evt):
                        return [rule]
                return []
            return [rule for fn, rule in pairs if fn(evt)]
        except Exception:  # a provider handed a value of the wrong type: isolate the rule
            return self._match_safely(pairs, evt)

    def code_index(self, code_names: Sequence[str | None], source: str | None = None) -> tuple[list, bytes]:
        """The type index by event code: ``(pairs, mask)`` where ``pairs[code]`` holds the
        ``(function, rule)`` candidates of events of that code (what ``match`` looks up by the
        provider's ``event_type`` name; ``code_names[code]`` must be that name) for every u16 code,
        and ``mask[code]`` is 1 when there is at least one. Evaluate with :meth:`match_pairs`.
        Cached until the selection changes."""
        key = (id(code_names), source)
        hit = self._code_indexes.get(key)
        if hit is not None and hit[0] is code_names:
            return hit[1]
        by_type, catch_all = self._indexes.get(source or self.default_source, ({}, ()))
        pairs = [by_type.get(name, catch_all) if by_type else catch_all for name in code_names]
        if self._can_specialize(code_names, source):
            # per type, without the rules that no event of that type can match (specialize.py):
            # a type left with none is not wanted
            live: dict = {}
            for code, (name, cands) in enumerate(zip(code_names, pairs)):
                if cands and name is not None:
                    key = (id(cands), name)
                    hit = live.get(key)
                    if hit is None:
                        hit = live[key] = tuple(p for p in cands if not self._never(p[1], name))
                    pairs[code] = hit
        rest = 65536 - len(pairs)
        pairs.extend([catch_all] * rest)
        mask = bytes(1 if p else 0 for p in pairs[:len(code_names)]) + (b"\x01" if catch_all else b"\x00") * rest
        self._code_indexes[key] = (code_names, (pairs, mask))
        return pairs, mask

    def code_matchers(self, code_names: Sequence[str | None], source: str | None = None) -> tuple[list, bytes]:
        """Like :meth:`code_index`, with one function per event type instead of candidate pairs:
        ``(matchers, mask)`` where ``matchers[code](evt)`` returns the rules matching an event of
        that code (a tuple; ``rule_matching: first``: at most one) exactly as :meth:`match` would,
        and is None where ``mask[code]`` is 0. The conditions of an event type's candidates are
        compiled together (compiler.compile_bucket): a field used by several of them is
        extracted once per event. Cached until the selection changes."""
        key = ("matchers", id(code_names), source)
        hit = self._code_indexes.get(key)
        if hit is not None and hit[0] is code_names:
            return hit[1]
        pairs_of, mask = self.code_index(code_names, source)
        spec = self._can_specialize(code_names, source)
        # each event type's function is compiled when its first event comes (a ruleset selects
        # dozens of types; most captures see a few of them)
        stubs: dict[int, Any] = {}
        codes_of: dict[int, list] = {}
        matchers: list = []
        for code, pairs in enumerate(pairs_of):
            if not pairs:
                matchers.append(None)
                continue
            m = stubs.get(id(pairs))
            if m is None:
                codes_of[id(pairs)] = []
                m = stubs[id(pairs)] = self._lazy_bucket(pairs, matchers, codes_of[id(pairs)], code_names, source,
                                                         spec)
            codes_of[id(pairs)].append(code)
            matchers.append(m)
        self._code_indexes[key] = (code_names, (matchers, mask))
        return matchers, mask

    def _lazy_bucket(self, pairs: Sequence, matchers: list, codes: list, code_names: Sequence[str | None] = (),
                     source: str | None = None, spec: bool = False) -> Callable[[Any], tuple]:
        made: list = []

        def compile_then_match(evt):
            if not made:
                # syscall opens: a bucket of open types only gets the open prefilter
                opens = source in (None, "syscall") and bool(codes) and all(
                    code < len(code_names) and code_names[code] in _OPEN_TYPES for code in codes)
                # a bucket of one type's codes: its conditions with evt.type a constant
                names = {code_names[code] if code < len(code_names) else None for code in codes}
                type_name = next(iter(names)) if spec and len(names) == 1 else None
                made.append(self._bucket(pairs, opens, type_name))
                for code in codes:
                    matchers[code] = made[0]
            return made[0](evt)
        return compile_then_match

    def _can_specialize(self, code_names: Sequence[str | None], source: str | None) -> bool:
        """Whether ``code_names[code]`` is what evt.type gives for events of that code in the
        conditions of ``source``'s rules (the syscall provider's evt.type), so a bucket's
        conditions may be specialised for its type (specialize.py)."""
        if self.reference or not self.specialize_types or (source or self.default_source) != "syscall":
            return False
        key = ("spec", id(code_names))
        hit = self._code_indexes.get(key)
        if hit is not None and hit[0] is code_names:
            return hit[1]
        from pyfalco.fields.common import EVENT_NAMES
        from pyfalco.fields.evt import evt_type
        from pyfalco.rules.compiler import _unsafe
        ok = tuple(code_names) == tuple(EVENT_NAMES)
        providers = {id(r.provider): r.provider for r in self.enabled_rules("syscall")}
        for provider in providers.values():
            try:
                ok = ok and _unsafe(provider.accessor("evt.type", None)) is evt_type
            except Exception:
                ok = False
        self._code_indexes[key] = (code_names, ok)
        return ok

    def _spec_tree(self, rule: Rule, type_name: str) -> Any:
        """``rule``'s condition for events of type ``type_name`` (specialize.py), cached; its
        own tree when it cannot be specialised."""
        key = (id(rule), type_name)
        hit = self._spec_trees.get(key)
        if hit is None or hit[0] is not rule:
            from pyfalco.rules.specialize import specialize
            try:
                tree = specialize(rule.tree, rule.provider, type_name)
            except Exception as exc:  # no conclusion: the condition as written
                log.debug("rule %r not specialised for %s: %s", rule.name, type_name, exc)
                tree = rule.tree
            hit = self._spec_trees[key] = (rule, tree)
        return hit[1]

    def _never(self, rule: Rule, type_name: str) -> bool:
        """True when no event of type ``type_name`` can match ``rule``."""
        tree = self._spec_tree(rule, type_name)
        return isinstance(tree, n.Const) and not tree.value

    def _bucket(self, pairs: Sequence, opens: bool = False, type_name: str | None = None) -> Callable[[Any], tuple]:
        first = self.rule_matching == "first"

        def one_by_one(evt, pairs=pairs):
            hits = self.match_pairs(pairs, evt)
            return tuple(hits)
        if self.reference:
            return one_by_one
        from pyfalco.rules.compiler import compile_bucket
        rules = [rule for _fn, rule in pairs]
        guard = None
        if opens and self.open_analysis is not None and all(r.event_source == "syscall" for r in rules):
            from pyfalco.rules.prefilter import open_guard
            guard = open_guard([r.tree for r in rules], self.open_analysis)
        try:
            trees = [r.tree if type_name is None else self._spec_tree(r, type_name) for r in rules]
            return compile_bucket(trees, rules[0].provider, [(r,) for r in rules], first,
                                  lambda evt: tuple(self._match_safely(pairs, evt)),
                                  name=f"{len(rules)} rules: {rules[0].name!r}...", guard=guard)
        except (SyntaxError, RecursionError, MemoryError, ValueError, TypeError) as exc:
            log.debug("rules %s compiled one by one: %s", [r.name for r in rules], exc)
            return one_by_one

    def match_pairs(self, pairs: Sequence, evt: Any) -> list[Rule]:
        """``match`` over candidates from :meth:`code_index` (same first/all semantics)."""
        try:
            if self.rule_matching == "first":
                for fn, rule in pairs:
                    if fn(evt):
                        return [rule]
                return []
            return [rule for fn, rule in pairs if fn(evt)]
        except Exception:  # a provider handed a value of the wrong type: isolate the rule
            return self._match_safely(pairs, evt)

    def _match_safely(self, pairs, evt) -> list[Rule]:
        out = []
        for fn, rule in pairs:
            try:
                hit = fn(evt)
            except Exception as exc:
                count = self.evaluation_errors.get(rule.name, 0) + 1
                self.evaluation_errors[rule.name] = count
                if count == 10 ** (len(str(count)) - 1):  # 1, 10, 100, ...
                    log.warning("rule %r raised %s: %s while evaluating an event; treated as no match "
                                "(%d time%s so far; logged at every power of ten)", rule.name,
                                type(exc).__name__, exc, count, "" if count == 1 else "s")
                continue
            if hit:
                out.append(rule)
                if self.rule_matching == "first":
                    break
        return out

    def event_types(self, source: str | None = None) -> frozenset:
        """Union of the event types of the enabled rules (what the driver must capture)."""
        source = source or self.default_source
        types: set = set()
        for rule in self.enabled_rules(source):
            types |= rule.evttypes
        return frozenset(types)
