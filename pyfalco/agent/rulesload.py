# SPDX-License-Identifier: Apache-2.0
"""Loading the configured rules for the agent, and what each rule's alerts look like.

``load(cfg, provider)`` expands ``rules_files`` (files, and directories' ``.yml``/``.yaml``
files in name order; a named path that does not exist or cannot be read is a
:class:`RulesFilesError`, as Falco's "Could not open file ... for reading"), loads them with :func:`pyfalco.rules.load_rules` using the configured
``priority``, ``rule_matching`` and ``rules:`` selection, and prepares, per rule, the rendering
of its alerts with ``append_output`` (``extra_output``, ``extra_fields``, ``suggested_output``)
and ``static_fields``. A load that leaves no rule enabled is a :class:`RulesFilesError` too,
unless no rules files are named at all and ``allow_no_rules`` says that is on purpose.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from pyfalco.rules import LoadResult, compile_output, load_rules
from pyfalco.errors import ConfigError

__all__ = ["expand_rules_files", "RulesBundle", "RulesFilesError", "load", "RuleOutput", "SUGGESTED_FIELDS",
           "count_enabled", "expand_rules_files_quiet", "NO_RULES_FLAG"]

#: fields the container support suggests appending to syscall alerts (suggested_output)
SUGGESTED_FIELDS = ("container.id", "container.name", "container.image.repository", "container.image.tag",
                    "k8s.pod.name", "k8s.ns.name")


class RulesFilesError(ConfigError):
    """A named rules file or folder cannot be read, or the rules named leave nothing to detect."""


def _unreadable(kind: str, path: str, exc: OSError) -> RulesFilesError:
    return RulesFilesError(f"Could not open rules {kind} {path} for reading: {exc.strerror or exc}")


def expand_rules_files(paths: list[str]) -> tuple[list[str], list[str]]:
    """(files to load in order, warnings). Directories give their .yml/.yaml files sorted by
    name. A path that does not exist or cannot be read raises :class:`RulesFilesError` naming
    it (Falco stops too); an empty directory is fine (other files may hold the rules)."""
    files: list[str] = []
    warnings: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            try:
                names = sorted(os.listdir(p))
            except OSError as exc:
                raise _unreadable("folder", p, exc) from None
            # a broken link named *.yaml is an error below, not skipped: it was meant as rules
            found = [os.path.join(p, f) for f in names
                     if f.endswith((".yml", ".yaml")) and not os.path.isdir(os.path.join(p, f))]
            if not found:
                warnings.append(f"rules folder {p} has no .yml/.yaml files")
        else:
            found = [p]
        for f in found:
            try:  # readable now (the loader reads it next); the error names the path
                with open(f, "rb"):
                    pass
            except OSError as exc:
                raise _unreadable("file", f, exc) from None
        files.extend(found)
    return files, warnings


def expand_rules_files_quiet(paths: list[str]) -> list[str]:
    """The files ``paths`` name, as :func:`expand_rules_files`, skipping what cannot be read."""
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            try:
                out.extend(os.path.join(p, f) for f in sorted(os.listdir(p)) if f.endswith((".yml", ".yaml")))
            except OSError:
                pass
        else:
            out.append(p)
    return out


def count_enabled(ruleset: Any) -> int:
    """Rules that can fire: enabled, at or above the configured priority, of every source."""
    return sum(len(ruleset.enabled_rules(src)) for src in {r.event_source for r in ruleset.rules})


class RuleOutput:
    """Renders one rule's alert: message text and typed output_fields."""

    __slots__ = ("render", "values")

    def __init__(self, render: Callable[[Any], str], values: Callable[[Any], dict]):
        self.render = render
        self.values = values


def _entry_matches(entry: dict, rule: Any) -> bool:
    m = entry.get("match") or {}
    if "rule" in m and m["rule"] != rule.name and not fnmatch.fnmatchcase(rule.name, str(m["rule"])):
        return False
    if "source" in m and m["source"] != rule.event_source:
        return False
    if "tags" in m:
        tags = m["tags"] if isinstance(m["tags"], list) else [m["tags"]]
        if not set(map(str, tags)) <= set(rule.tags):
            return False
    return True


def _rule_output(rule: Any, provider: Any, append: list, static: dict) -> RuleOutput:
    base = rule.output_format
    texts: list = []        # compiled formats appended to the text
    extra_vals: list = []   # (name, render) added to output_fields as strings
    value_fmts: list = []   # formats whose typed values are added to output_fields
    seen = set(base.fields)
    for entry in append:
        if not _entry_matches(entry, rule):
            continue
        if entry.get("extra_output"):
            fmt = compile_output(str(entry["extra_output"]), provider)
            texts.append(fmt)
        for ef in entry.get("extra_fields") or []:
            if isinstance(ef, str):
                value_fmts.append(compile_output(f"%{ef}", provider))
            else:
                (name, f), = ef.items()
                extra_vals.append((str(name), compile_output(str(f), provider).render))
        if entry.get("suggested_output") and rule.event_source == "syscall":
            parts = [f"{f.replace('.', '_')}=%{f}" for f in SUGGESTED_FIELDS if f not in seen]
            if parts:
                fmt = compile_output(" ".join(parts), provider)
                texts.append(fmt)
                seen.update(SUGGESTED_FIELDS)
            for k, v in static.items():
                texts.append(_Const(f"static_{k}={v}"))
    static_vals = {f"static.{k}": v for k, v in static.items()}
    if not texts:
        render = base.render
    else:
        def render(evt, _b=base.render, _t=tuple(t.render for t in texts)):
            return " ".join([_b(evt)] + [t(evt) for t in _t])
    value_fmts.extend(t for t in texts if not isinstance(t, _Const))

    def values(evt, _b=base.values, _x=tuple(extra_vals), _t=tuple(value_fmts), _s=static_vals):
        out = _b(evt)
        for t in _t:
            out.update(t.values(evt))
        for name, g in _x:
            out[name] = g(evt)
        if _s:
            out.update(_s)
        return out
    return RuleOutput(render, values)


class _Const:
    def __init__(self, text: str):
        self.text = text

    def render(self, evt):
        return self.text


@dataclass
class RulesBundle:
    """A successful load: the ruleset, per-rule renderers, and where it came from."""

    result: LoadResult
    ruleset: Any
    outputs: dict = field(default_factory=dict)      # rule index -> RuleOutput
    files: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    @property
    def event_types(self) -> frozenset:
        return self.ruleset.event_types()


NO_RULES_FLAG = "--allow-no-rules"


def load(cfg: dict, provider: Any, rules_files: list[str] | None = None, *,
         allow_no_rules: bool = False, extra_sources: Any = None,
         plugins: Any = None) -> tuple[LoadResult, RulesBundle | None]:
    """Load the rules ``cfg`` names (or ``rules_files``, from ``-r``); the bundle is None when
    the rules have errors. Raises :class:`RulesFilesError` for a named path that cannot be read,
    and for a load that leaves no rule enabled (allowed only when no path is named at all and
    ``allow_no_rules`` is set). ``extra_sources``/``plugins``: the plugin sources' providers and the
    loaded plugins' versions (load_rules' arguments)."""
    paths = rules_files if rules_files is not None else cfg["rules_files"]
    named = "-r " + ", -r ".join(paths) if rules_files is not None else "rules_files: " + ", ".join(paths)
    if not paths and not allow_no_rules:
        raise RulesFilesError("no rules files: name at least one with -r or rules_files (or, to run without "
                              f"rules on purpose, leave rules_files empty and pass {NO_RULES_FLAG})")
    files, warnings = expand_rules_files(paths)
    result = load_rules(*files, provider=provider, extra_sources=extra_sources, plugins=plugins,
                        rule_matching=cfg["rule_matching"],
                        min_priority=cfg["priority"], selection=cfg["rules"] or None)
    if not result.ok:
        return result, None
    if paths:
        n_enabled = count_enabled(result.ruleset)
        if n_enabled == 0:
            defined = len(result.ruleset.rules)
            why = (f"{defined} rule(s) defined, none enabled at priority >= {cfg['priority']} with the "
                   "rules: selection and enabled flags" if defined else
                   "the files define no rules" if files else "no .yml/.yaml files in the named folder(s)")
            raise RulesFilesError(f"no rules loaded ({named}): {why}")
    bundle = RulesBundle(result, result.ruleset, files=files, warnings=warnings)
    for rule in result.ruleset:
        try:
            # a plugin source's rules render with that source's provider
            prov = provider if rule.event_source == "syscall" else getattr(rule, "provider", provider)
            bundle.outputs[rule.index] = _rule_output(rule, prov, cfg["append_output"], cfg["static_fields"])
        except (ValueError, LookupError) as exc:
            raise ConfigError(f"append_output: {getattr(exc, 'msg', exc)}") from None
    return result, bundle
