# SPDX-License-Identifier: Apache-2.0
"""Collects lists, macros and rules in file order: definitions, appends and overrides.

Each item gets an increasing id. A definition of a new name takes the id as its ``index``
(its place in the order) and ``visibility`` (what it may refer to); redefining, appending or
overriding keeps the index and moves the visibility up to the new id. An ``ItemError`` stops
reading the current file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pyfalco.rules.checker import MODIFIER_OPS
from pyfalco.rules.lexer import ALL_OPS, LIST_OPS, MODIFIERS
from pyfalco.rules.nodes import quote
from pyfalco.rules.result import Location
from pyfalco.rules.ruleset import Priority

__all__ = ["ItemError", "ListInfo", "MacroInfo", "RuleInfo", "ExceptionInfo", "Collector"]


class ItemError(Exception):
    def __init__(self, code: str, msg: str, locations: tuple, snippet: str = ""):
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.locations = tuple(locations)
        self.snippet = snippet


@dataclass
class ListInfo:
    name: str
    items: list
    index: int
    visibility: int
    loc: Location
    snippet: str = ""


@dataclass
class MacroInfo:
    name: str
    condition: str
    index: int
    visibility: int
    loc: Location
    cond_loc: Any = None
    snippet: str = ""
    text: str = ""             # condition after list expansion
    tree: Any = None           # parsed condition (None until parsed, or when it does not parse)
    more: dict = field(default_factory=dict, repr=False)  # appends not folded in yet (Collector.finish)


_BARE_VALUE = re.compile(r"[^\s(),=\"']+")
_FIELD = re.compile(r"([a-zA-Z][a-zA-Z0-9_]*(?:\.[a-zA-Z][a-zA-Z0-9_]*)+)(?:\[([^\]]+)\])?")


def _value_text(value: str) -> str:
    if _BARE_VALUE.fullmatch(value):
        return value
    if len(value) >= 2 and value[0] == value[-1] and value[0] in ('"', "'"):
        return value
    return quote(value)


def _list_text(values) -> str:
    return "(" + ", ".join(_value_text(v) for v in values) + ")"


@dataclass
class ExceptionInfo:
    name: str
    fields: Any            # str (single-field form) or list of str, None when not given
    comps: Any             # str, list of str, or None
    values: Any            # list (of str, or of lists), or None
    loc: Location
    snippet: str = ""

    def _fail(self, msg: str):
        raise ItemError("LOAD_ERR_VALIDATE", msg, (self.loc,), self.snippet)

    def _check_field(self, text: str, provider) -> None:
        m = _FIELD.fullmatch(text)
        if not m or provider.field_info(m.group(1)) is None:
            self._fail(f"'{text}' is not a supported filter field")

    def _check_comp(self, comp: str) -> None:
        parts = comp.split()
        ok = bool(parts) and parts[0] in ALL_OPS and parts[0] != "exists" and (
            len(parts) == 1 or (len(parts) == 2 and parts[1] in MODIFIERS and parts[0] in MODIFIER_OPS))
        if not ok:
            self._fail(f"'{comp}' is not a supported comparison operator")

    def condition_text(self, provider) -> str | None:
        """The condition this exception excludes, or None without values. Raises ItemError."""
        if self.fields is None:
            self._fail("Item has no mapping for key 'fields'")
        if isinstance(self.fields, str):
            self._check_field(self.fields, provider)
            comp = "in" if self.comps is None else self.comps
            if not isinstance(comp, str):
                self._fail("Fields and comps lists must have equal length")
            self._check_comp(comp)
            if comp.split()[0] not in LIST_OPS and len(comp.split()) == 1:
                self._fail(f"With a single field, comps must be a list operator (in, pmatch, intersects) "
                           f"or an operator with a list modifier, not '{comp}'")
            if not self.values:
                return None
            if any(not isinstance(v, str) for v in self.values):
                self._fail("Values of a single-field exception must be strings")
            return f"{self.fields} {comp} {_list_text(self.values)}"
        fields = list(self.fields)
        for f in fields:
            self._check_field(f, provider)
        comps = ["="] * len(fields) if self.comps is None else self.comps
        if isinstance(comps, str) or len(comps) != len(fields):
            self._fail("Fields and comps lists must have equal length")
        for c in comps:
            self._check_comp(c)
        if not self.values:
            return None
        terms = []
        for tup in self.values:
            if not isinstance(tup, list) or len(tup) != len(fields):
                self._fail("Fields and values lists must have equal length")
            parts = []
            for f, c, v in zip(fields, comps, tup):
                is_list_op = c.split()[0] in LIST_OPS or len(c.split()) == 2
                if isinstance(v, list):
                    text = _list_text(v)
                else:
                    text = _list_text([v]) if is_list_op else _value_text(v)
                parts.append(f"{f} {c} {text}")
            terms.append("(" + " and ".join(parts) + ")")
        return " or ".join(terms)


@dataclass
class RuleInfo:
    name: str
    index: int
    loc: Location
    snippet: str = ""
    condition: str = ""
    output: str = ""
    desc: str = ""
    priority: Priority = Priority.DEBUG
    source: str = "syscall"
    enabled: bool = True
    tags: list = field(default_factory=list)
    exceptions: list = field(default_factory=list)
    warn_evttypes: bool = True
    skip_unknown: bool = False
    capture: bool = False
    capture_duration: int = 0
    cond_loc: Any = None
    out_loc: Location | None = None
    more: dict = field(default_factory=dict, repr=False)  # appends not folded in yet (Collector.finish)


_RULE_ATTR = {"skip-if-unknown-filter": "skip_unknown"}


class Collector:
    def __init__(self, load: Any):
        self.load = load
        self.lists: dict[str, ListInfo] = {}
        self.macros: dict[str, MacroInfo] = {}
        self.rules: dict[str, RuleInfo] = {}
        self._id = 0

    def _next(self) -> int:
        self._id += 1
        return self._id

    def lists_in_order(self) -> list[ListInfo]:
        return sorted(self.lists.values(), key=lambda i: i.index)

    def macros_in_order(self) -> list[MacroInfo]:
        return sorted(self.macros.values(), key=lambda i: i.index)

    def rules_in_order(self) -> list[RuleInfo]:
        return sorted(self.rules.values(), key=lambda i: i.index)

    def finish(self) -> None:
        """Fold the appends in. Appends are collected in lists and joined once here: joining at
        every append made N appends cost O(N^2) (20,000 of them took minutes)."""
        for info in list(self.macros.values()) + list(self.rules.values()):
            more, info.more = info.more, {}
            for key in ("condition", "desc"):
                if key in more:
                    setattr(info, key, " ".join([getattr(info, key)] + more[key]))
            if "output" in more:  # every part is stripped: as (a + " " + b).strip() at each append
                info.output = " ".join(part for part in [info.output] + more["output"] if part)
            if "tags" in more:
                info.tags = list(more["tags"])

    # ---- lists and macros ---------------------------------------------------------------------
    def list(self, name: str, items: list, op: str, loc: Location, snippet: str) -> None:
        ident = self._next()
        prev = self.lists.get(name)
        if op == "define":
            if prev is None:
                self.lists[name] = ListInfo(name, list(items), ident, ident, loc, snippet)
            else:
                prev.items, prev.visibility, prev.loc, prev.snippet = list(items), ident, loc, snippet
            return
        if prev is None:
            if op == "append":
                raise ItemError("LOAD_ERR_VALIDATE", "List uses 'append' or 'override.items: append' but no "
                                "list by that name already exists", (loc,), snippet)
            raise ItemError("LOAD_ERR_VALIDATE", "An 'override.items: replace' to a list was requested but no "
                            "list by that name already exists", (loc,), snippet)
        if op == "append":
            if not items:
                self.load.message("LOAD_APPEND_NO_VALUES", "Overriding/appending list with no values", (loc,),
                                  snippet)
            prev.items.extend(items)  # in place: N appends stay linear
        else:
            prev.items = list(items)
        prev.visibility = ident

    def macro(self, name: str, cond: str, op: str, loc: Location, cond_loc: Any, snippet: str) -> None:
        ident = self._next()
        prev = self.macros.get(name)
        if op == "define":
            if prev is None:
                self.macros[name] = MacroInfo(name, cond, ident, ident, loc, cond_loc, snippet)
            else:
                prev.condition, prev.visibility, prev.loc, prev.cond_loc, prev.snippet = \
                    cond, ident, loc, cond_loc, snippet
                prev.more.pop("condition", None)
            return
        if prev is None:
            if op == "append":
                raise ItemError("LOAD_ERR_VALIDATE", "Macro uses 'append' or 'override.condition: append' but "
                                "no macro by that name already exists", (loc,), snippet)
            raise ItemError("LOAD_ERR_VALIDATE", "An 'override.condition: replace' to a macro was requested "
                            "but no macro by that name already exists", (loc,), snippet)
        if op == "append":
            prev.more.setdefault("condition", []).append(cond)
            prev.cond_loc = None  # positions now span two items: report against the macro
        else:
            prev.condition, prev.cond_loc = cond, cond_loc
            prev.more.pop("condition", None)
        prev.visibility = ident

    # ---- rules --------------------------------------------------------------------------------
    def rule(self, name, values: dict, override, append: bool, loc, cond_loc, out_loc, snippet, keys) -> None:
        ident = self._next()
        prev = self.rules.get(name)
        if append:
            if prev is None:
                raise ItemError("LOAD_ERR_VALIDATE", "Rule uses 'append' or 'override.<key>: append' but no rule "
                                "by that name already exists", (loc,), snippet)
            for key in ("condition", "output", "desc", "tags", "exceptions"):
                if key in values:
                    self._append(prev, key, values[key], loc, snippet)
            return
        if override is not None:
            if prev is None:
                key, op = next(iter(override.items()), ("condition", "append"))
                if op == "append":
                    raise ItemError("LOAD_ERR_VALIDATE", f"Rule uses 'append' or 'override.{key}: append' but no "
                                    "rule by that name already exists", (loc,), snippet)
                raise ItemError("LOAD_ERR_VALIDATE", f"An 'override.{key}: replace' to a rule was requested but "
                                "no rule by that name already exists", (loc,), snippet)
            for key, op in override.items():
                if op == "append":
                    self._append(prev, key, values[key], loc, snippet)
                else:
                    self._replace(prev, key, values[key], cond_loc, out_loc)
            return
        if "enabled" in values and not ({"condition", "output", "desc", "priority"} & set(values)):
            if prev is None:
                raise ItemError("LOAD_ERR_VALIDATE", "Rule has only an 'enabled' key but no rule by that name "
                                "already exists", (loc,), snippet)
            self.load.message("LOAD_DEPRECATED_ITEM",
                              "The standalone 'enabled' key usage is deprecated. The correct approach requires "
                              "also a 'replace' entry under the 'override' key (i.e. 'enabled: replace').",
                              (loc,), snippet)
            prev.enabled = values["enabled"]
            return
        for key in ("condition", "output", "desc", "priority"):
            if key not in values:
                raise ItemError("LOAD_ERR_YAML_VALIDATE", f"Item has no mapping for key '{key}'", (loc,), snippet)
        info = RuleInfo(name, ident if prev is None else prev.index, loc, snippet)
        if prev is not None and "source" in values and values["source"] != prev.source:
            raise ItemError("LOAD_ERR_VALIDATE", f"Rule '{name}' is redefined with source '{values['source']}', "
                            f"different from its previous source '{prev.source}'", (loc,), snippet)
        for key, value in values.items():
            setattr(info, _RULE_ATTR.get(key, key), value)
        info.tags = list(dict.fromkeys(info.tags))
        info.cond_loc, info.out_loc = cond_loc, out_loc
        self._check_exception_names(info.exceptions, loc, snippet)
        self.rules[name] = info

    def _check_exception_names(self, exceptions, loc, snippet) -> None:
        seen = set()
        for exc in exceptions:
            if exc.name in seen:
                self.load.message("LOAD_EXCEPTION_NAME_NOT_UNIQUE",
                                  f"Multiple definitions of exception '{exc.name}' in the same rule",
                                  (loc, exc.loc), exc.snippet)
            seen.add(exc.name)
            if exc.fields is None:
                raise ItemError("LOAD_ERR_YAML_VALIDATE", "Item has no mapping for key 'fields'",
                                (loc, exc.loc), exc.snippet)

    def _append(self, prev: RuleInfo, key: str, value, loc, snippet) -> None:
        if key in ("condition", "output", "desc"):  # joined once, by finish()
            prev.more.setdefault(key, []).append(value)
            if key == "condition":
                prev.cond_loc = None
            elif key == "output":
                prev.out_loc = None
        elif key == "tags":
            tags = prev.more.get("tags")
            if tags is None:
                tags = prev.more["tags"] = dict.fromkeys(prev.tags)
            tags.update(dict.fromkeys(value))
        elif key == "exceptions":
            by_name = prev.more.get("exceptions")
            if by_name is None:
                by_name = prev.more["exceptions"] = {e.name: e for e in prev.exceptions}
            for exc in value:
                old = by_name.get(exc.name)
                if old is None:
                    if exc.fields is None or exc.values is None:
                        missing = "fields" if exc.fields is None else "values"
                        raise ItemError("LOAD_ERR_VALIDATE",
                                        f"Appended exception '{exc.name}' is new and has no '{missing}'",
                                        (loc, exc.loc), exc.snippet)
                    prev.exceptions.append(exc)
                    by_name[exc.name] = exc
                    continue
                if exc.fields is not None or exc.comps is not None:
                    raise ItemError("LOAD_ERR_VALIDATE",
                                    f"Can not append exception fields or comps to existing exception "
                                    f"'{exc.name}', only values", (loc, exc.loc), exc.snippet)
                if not exc.values:
                    self.load.message("LOAD_APPEND_NO_VALUES", "Overriding/appending exception with no values",
                                      (loc, exc.loc), exc.snippet)
                    continue
                if old.values is None:
                    old.values = []
                old.values.extend(exc.values)

    def _replace(self, prev: RuleInfo, key: str, value, cond_loc, out_loc) -> None:
        prev.more.pop(key, None)
        setattr(prev, _RULE_ATTR.get(key, key), value)
        if key == "condition":
            prev.cond_loc = cond_loc
        elif key == "output":
            prev.out_loc = out_loc
        elif key == "tags":
            prev.tags = list(dict.fromkeys(value))
        elif key == "exceptions":
            self._check_exception_names(value, prev.loc, prev.snippet)
