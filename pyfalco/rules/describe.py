# SPDX-License-Identifier: Apache-2.0
"""Falco's ``-L`` JSON: every rule, macro and list with its compiled details.

Shape (Falco's ``falco_engine::describe_rule`` output): ``required_engine_version``,
``required_plugin_versions``, ``lists`` (``info{name, items}``, ``details{used, lists,
items_compiled}``), ``macros`` (``info{name, condition}``, ``details{used, macros, lists,
condition_compiled, condition_fields, condition_operators}``) and ``rules`` (``info{name,
condition, output, description, priority, source, tags, enabled, capture, capture_duration,
exceptions}``, ``details{condition_compiled, output_compiled, condition_fields, output_fields,
condition_operators, events, macros, lists, exception_fields, exception_names,
exception_operators, plugins, extra_output_formatted_fields}``).

Rules come from the compiled ruleset; lists and macros (which the compiled ruleset no longer
holds) are read again from the rules files with Falco's define/append/override semantics.
"""

from __future__ import annotations

import re
from typing import Any

from . import nodes as n

__all__ = ["describe_json", "list_items"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


def _items_of(doc: Any) -> list[dict]:
    return [x for x in doc if isinstance(x, dict)] if isinstance(doc, list) else []


def list_items(files: list[str]) -> tuple[dict[str, dict], dict[str, dict], list[dict]]:
    """(lists, macros, required_plugin_versions) as the files define them, in definition order:
    ``append: true`` or ``override: {items|condition: append}`` extends, ``override: replace`` or a
    second definition replaces."""
    import yaml

    class _Loader(yaml.SafeLoader):
        """Safe loading where a bare ``=`` (Falco's exception comps) is text, not YAML's value tag."""
    _Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))
    lists: dict[str, dict] = {}
    macros: dict[str, dict] = {}
    plugins: list[dict] = []
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                doc = yaml.load(fh, Loader=_Loader)
        except (OSError, yaml.YAMLError):
            continue
        for item in _items_of(doc):
            ov = item.get("override") if isinstance(item.get("override"), dict) else {}
            if "required_plugin_versions" in item and isinstance(item["required_plugin_versions"], list):
                plugins.extend(p for p in item["required_plugin_versions"] if isinstance(p, dict))
            elif "list" in item:
                name = str(item["list"])
                items = [str(i) for i in (item.get("items") or []) if not isinstance(i, (dict, list))]
                if (item.get("append") or ov.get("items") == "append") and name in lists:
                    lists[name]["items"] += items
                else:
                    lists[name] = {"name": name, "items": items}
            elif "macro" in item:
                name = str(item["macro"])
                cond = str(item.get("condition") or "")
                if (item.get("append") or ov.get("condition") == "append") and name in macros:
                    macros[name]["condition"] += " " + cond
                else:
                    macros[name] = {"name": name, "condition": cond}
    return lists, macros, plugins


def _expand_items(name: str, lists: dict, seen: set, used: set) -> list[str]:
    out: list[str] = []
    for it in lists.get(name, {}).get("items", []):
        if it in lists and it not in seen:
            used.add(it)
            out.extend(_expand_items(it, lists, seen | {it}, used))
        else:
            out.append(it)
    return out


def _walk(node: Any, acc: dict) -> None:
    """Collects fields, operators and macros of a condition tree."""
    if isinstance(node, (n.Or, n.And)):
        for it in node.items:
            _walk(it, acc)
    elif isinstance(node, n.Not):
        _walk(node.expr, acc)
    elif isinstance(node, n.Macro):
        acc["macros"].add(node.name)
        _walk(node.expr, acc)
    elif isinstance(node, n.MacroRef):
        acc["macros"].add(node.name)
    elif isinstance(node, n.Check):
        acc["operators"].add(node.op)
        for part in (node.lhs, node.value):
            _walk(part, acc)
    elif isinstance(node, n.FieldRef):
        acc["fields"].add(node.name if node.arg is None else f"{node.name}[{node.arg}]")
    elif isinstance(node, n.Val):
        _walk(node.field, acc)
    elif isinstance(node, n.Transform):
        for a in node.args:
            _walk(a, acc)


def _compiled_text(node: Any) -> str:
    """The condition with macros substituted (Falco's condition_compiled)."""
    if isinstance(node, n.Or):
        return "(" + " or ".join(_compiled_text(i) for i in node.items) + ")"
    if isinstance(node, n.And):
        return "(" + " and ".join(_compiled_text(i) for i in node.items) + ")"
    if isinstance(node, n.Not):
        return "not " + _compiled_text(node.expr)
    if isinstance(node, n.Macro):
        return _compiled_text(node.expr)
    return n.to_text(node)


def _lists_in(text: str, lists: dict) -> set[str]:
    return {w for w in _IDENT.findall(text) if w in lists}


def _macros_closure(names: set[str], macros: dict) -> set[str]:
    out, todo = set(), list(names)
    while todo:
        m = todo.pop()
        if m in out or m not in macros:
            continue
        out.add(m)
        todo.extend(w for w in _IDENT.findall(macros[m]["condition"]) if w in macros)
    return out


def _rule_json(rule: Any, lists: dict, macros: dict) -> dict:
    acc: dict = {"fields": set(), "operators": set(), "macros": set()}
    _walk(rule.tree, acc)
    used_macros = _macros_closure(acc["macros"] | set(rule.macros), macros)
    texts = [rule.condition] + [macros[m]["condition"] for m in used_macros]
    used_lists = set().union(*(_lists_in(t, lists) for t in texts))
    exc_fields, exc_ops, exc_names = set(), set(), []
    for x in rule.exceptions:
        exc_names.append(getattr(x, "name", str(x)))
        flds = getattr(x, "fields", None)
        for f in ([flds] if isinstance(flds, str) else flds or []):
            exc_fields.add(str(f))
        comps = getattr(x, "comps", None)
        for c in ([comps] if isinstance(comps, str) else comps or []):
            exc_ops.add(str(c))
    out_fields = list(getattr(rule.output_format, "fields", ()) or ())
    cond_fields = sorted(acc["fields"] | set(rule.fields))
    plugin_of = getattr(getattr(rule, "provider", None), "plugin_of", None)   # plugin sources' providers
    plugins = sorted({p for p in (plugin_of(f.split("[", 1)[0]) for f in cond_fields) if p}) if plugin_of else []
    return {
        "info": {"name": rule.name, "condition": rule.condition, "output": rule.output,
                 "description": rule.desc, "priority": rule.priority.label, "source": rule.event_source,
                 "tags": sorted(rule.tags), "enabled": rule.enabled, "capture": rule.capture,
                 "capture_duration": rule.capture_duration, "exceptions": exc_names},
        "details": {
            "condition_compiled": _compiled_text(rule.tree),
            "output_compiled": rule.output,
            "condition_fields": cond_fields,
            "output_fields": out_fields,
            "condition_operators": sorted(acc["operators"]),
            "events": sorted(rule.evttypes),
            "macros": sorted(used_macros),
            "lists": sorted(used_lists),
            "exception_fields": sorted(exc_fields),
            "exception_names": exc_names,
            "exception_operators": sorted(exc_ops),
            "plugins": plugins,
            "extra_output_formatted_fields": {},
        },
    }


def _macro_json(info: dict, lists: dict, macros: dict, used: bool) -> dict:
    from .parser import parse
    acc: dict = {"fields": set(), "operators": set(), "macros": set()}
    try:
        _walk(parse(info["condition"]), acc)
    except Exception:         # a macro the loader rejected: described by its text only
        pass
    return {"info": {"name": info["name"], "condition": info["condition"]},
            "details": {"used": used, "macros": sorted(acc["macros"] & set(macros)),
                        "lists": sorted(_lists_in(info["condition"], lists)),
                        "condition_fields": sorted(acc["fields"]),
                        "condition_operators": sorted(acc["operators"]),
                        "condition_compiled": info["condition"]}}


def describe_json(bundle: Any, name: str | None = None) -> dict | None:
    """Falco's -L document for a loaded bundle (``name``: one rule; None if it does not exist)."""
    rules = [r for r in bundle.ruleset if name is None or r.name == name]
    if name is not None and not rules:
        return None
    lists, macros, plugins = list_items([str(f) for f in getattr(bundle, "files", []) or []])
    rule_docs = [_rule_json(r, lists, macros) for r in rules]
    used_macros = set().union(*(set(d["details"]["macros"]) for d in rule_docs)) if rule_docs else set()
    used_lists: set = set()
    for d in rule_docs:
        used_lists |= set(d["details"]["lists"])
    for m in used_macros:
        used_lists |= _lists_in(macros[m]["condition"], lists)
    list_docs = []
    for ln, info in lists.items():
        inner: set = set()
        items = _expand_items(ln, lists, {ln}, inner)
        used_lists |= inner if ln in used_lists else set()
        list_docs.append({"info": {"name": ln, "items": info["items"]},
                          "details": {"used": ln in used_lists, "lists": sorted(inner), "items_compiled": items}})
    return {"required_engine_version": bundle.result.required_engine_version,
            "required_plugin_versions": plugins,
            "lists": list_docs,
            "macros": [_macro_json(info, lists, macros, mn in used_macros) for mn, info in macros.items()],
            "rules": rule_docs}
