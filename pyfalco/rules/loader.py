# SPDX-License-Identifier: Apache-2.0
"""Reads rules files (YAML, with positions) into collector.py, then compiles what was collected.

Pipeline: ``yaml.compose`` (nodes keep their marks) -> items decoded and checked here ->
``Collector`` (define/append/override, in order across files) -> compile: lists (inlining),
macros (list expansion, parse, macro resolution), rules (exceptions, parse, resolve, check,
event types, codegen, output format) -> ``Ruleset``. Problems are collected in a
:class:`~pyfalco.rules.result.LoadResult`; nothing here raises on bad input.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from pyfalco.rules import nodes as n
from pyfalco.rules.checker import CheckError, Checker, event_type_names
from pyfalco.rules.collector import Collector, ExceptionInfo, ItemError, RuleInfo
from pyfalco.rules.compiler import compile_condition
from pyfalco.rules.errors import ConditionSyntaxError, RulesLoadError, caret_snippet, line_col
from pyfalco.rules.evttypes import evttypes
from pyfalco.rules.limits import Budget
from pyfalco.rules.output import OutputFormatError, compile_output
from pyfalco.rules.parser import parse
from pyfalco.rules.provider import DictProvider
from pyfalco.rules.resolver import (CycleError, LimitError, ListLimitError, MacroResolver, ResolveError,
                                    compile_lists, expand_lists)
from pyfalco.rules.result import LoadMessage, LoadResult, Location
from pyfalco.rules.ruleset import Priority, Rule, Ruleset

__all__ = ["load_rules", "ENGINE_VERSION", "DEFAULT_PLUGINS", "MAX_EVTTYPES"]

ENGINE_VERSION = "0.62.0"       # the rule engine version of Falco 0.44.1
DEFAULT_PLUGINS = {"container": "0.4.0"}   # container metadata is built in
MAX_EVTTYPES = 100

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)")
_LIST_NAME = re.compile(r"[^()\"'\s=,]+")
_MACRO_NAME = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*")
_RULE_KEYS = frozenset(("rule", "condition", "output", "desc", "priority", "source", "enabled", "tags",
                        "exceptions", "warn_evttypes", "skip-if-unknown-filter", "override", "append",
                        "capture", "capture_duration"))
_MACRO_KEYS = frozenset(("macro", "condition", "override", "append"))
_LIST_KEYS = frozenset(("list", "items", "override", "append"))
_EXCEPTION_KEYS = frozenset(("name", "fields", "comps", "values"))


# ---- sources ----------------------------------------------------------------------------------

def _read_sources(sources: Iterable[Any], result_names: list[str]) -> list[tuple[str, str | None, str | None]]:
    """(name, text, read error) per source: a Path or an existing file path is read; a
    ``(name, text)`` pair is named text; any other string is rules text."""
    out = []
    for i, src in enumerate(sources):
        if isinstance(src, tuple) and len(src) == 2:
            out.append((str(src[0]), str(src[1]), None))
            continue
        if isinstance(src, Path) or (isinstance(src, str) and "\n" not in src and src.strip()
                                     and (os.path.exists(src) or src.endswith((".yaml", ".yml")))):
            name = str(src)
            try:
                with open(name, encoding="utf-8") as fh:
                    out.append((name, fh.read(), None))
            except (OSError, UnicodeDecodeError) as exc:
                out.append((name, None, f"Could not read file {name}: {exc}"))
            continue
        if isinstance(src, bytes):
            src = src.decode("utf-8", "replace")
        out.append((f"rules_content_{i}" if i else "rules_content", str(src), None))
    result_names.extend(name for name, _, _ in out)
    return out


def _semver(text: str) -> tuple[int, int, int] | None:
    m = _SEMVER.fullmatch(text.strip())
    return tuple(int(x) for x in m.groups()) if m else None


def _compatible(have: str, need: str) -> bool:
    h, w = _semver(have), _semver(need)
    return h is not None and w is not None and h[0] == w[0] and h >= w


# ---- the reader ---------------------------------------------------------------------------------

# ---- composed-node cache (the pure-Python YAML parser) --------------------------------------------
# Without libyaml (Debian's PyPy) composing Falco's stable rules is most of their load time. The
# composed nodes (tag, value, start position: all this module reads of them) are kept as JSON in
# the user's cache directory, keyed by a hash of the text and the PyYAML version; a missing,
# unreadable or corrupt entry is composed again (and rewritten). JSON only: nothing in the cache is
# executed. PYFALCO_RULES_CACHE=0 turns it off.
_CACHE_FORMAT = 1
_CACHE_MIN = 8192       # smaller texts compose in a few ms: not worth an entry
_CACHE_KEEP = 32        # entries kept (the least recently written go first)
_NODE_KINDS = {"q": yaml.SequenceNode, "m": yaml.MappingNode}


def _cache_dir() -> Path | None:
    if os.environ.get("PYFALCO_RULES_CACHE", "1") == "0":
        return None
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not root or root.startswith("~"):
        return None
    return Path(root) / "pyfalco" / "rules-yaml"


def _encode(node: yaml.Node) -> list:
    m = node.start_mark
    if isinstance(node, yaml.ScalarNode):
        value: Any = node.value
        kind = "s"
    elif isinstance(node, yaml.SequenceNode):
        value = [_encode(i) for i in node.value]
        kind = "q"
    else:
        value = [[_encode(k), _encode(v)] for k, v in node.value]
        kind = "m"
    # a scalar's style ('|', '"', ...) places condition errors; a collection's is its flow style
    style = getattr(node, "style", None) if kind == "s" else getattr(node, "flow_style", None)
    return [kind, node.tag, value, m.line, m.column, m.index, style]


def _decode(data: list) -> yaml.Node:
    kind, tag, value, line, column, index, style = data
    mark = yaml.Mark("<cache>", index, line, column, None, None)
    if style is not None and not isinstance(style, (str, bool)):
        raise ValueError("style")
    if kind == "s":
        if not isinstance(value, str):
            raise ValueError("scalar")
        if not isinstance(tag, str) or not all(isinstance(x, int) for x in (line, column, index)):
            raise ValueError("node")
        return yaml.ScalarNode(tag, value, mark, mark, style=style)
    elif kind == "q":
        value = [_decode(i) for i in value]
    elif kind == "m":
        value = [(_decode(k), _decode(v)) for k, v in value]
    else:
        raise ValueError(kind)
    if not isinstance(tag, str) or not all(isinstance(x, int) for x in (line, column, index)):
        raise ValueError("node")
    return _NODE_KINDS[kind](tag, value, mark, mark, flow_style=style)


def _prune(where: Path) -> None:
    entries = sorted(where.glob("*.json"), key=lambda p: p.stat().st_mtime)
    for old in entries[:-_CACHE_KEEP]:
        old.unlink()


def _compose(text: str) -> list:
    """``yaml.compose_all(text)``'s documents (cached when PyYAML has no libyaml binding)."""
    if _Loader is not yaml.SafeLoader:
        return list(yaml.compose_all(text, Loader=_Loader))
    import hashlib
    import json
    where = _cache_dir() if len(text) >= _CACHE_MIN else None
    path = None
    if where is not None:
        key = hashlib.sha256(f"{_CACHE_FORMAT}\0{yaml.__version__}\0".encode() + text.encode("utf-8", "surrogatepass"))
        path = where / f"{key.hexdigest()}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return [None if d is None else _decode(d) for d in data]
        except (OSError, ValueError, TypeError, KeyError, IndexError, RecursionError):
            pass        # none yet, or unusable: compose again
    docs = list(yaml.compose_all(text, Loader=_Loader))
    if path is not None:
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            blob = json.dumps([None if d is None else _encode(d) for d in docs])
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(blob, encoding="utf-8")
            os.replace(tmp, path)      # readers see a whole entry or none
            _prune(path.parent)
        except (OSError, ValueError, RecursionError):
            try:        # a read-only or full cache directory: just not cached
                tmp.unlink()
            except OSError:
                pass
    return docs


class _Reader:
    """Decodes one file's YAML nodes into collector calls. ``ItemError`` stops the file."""

    def __init__(self, loader: "_Load", name: str, text: str):
        self.load = loader
        self.name = name
        self.text = text
        self._lines: list[str] | None = None

    def loc(self, node: yaml.Node, item_type: str, item_name: str) -> Location:
        mark = node.start_mark
        return Location(item_type, item_name, self.name, mark.line + 1, mark.column + 1, mark.index)

    def snippet(self, node: yaml.Node) -> str:
        return caret_snippet(self.text, node.start_mark.index)

    def fail(self, code: str, msg: str, node: yaml.Node, locs: tuple = ()):
        raise ItemError(code, msg, locs or (self.loc(node, "", ""),), self.snippet(node))

    def warn(self, code: str, msg: str, node: yaml.Node, locs: tuple):
        self.load.message(code, msg, locs, self.snippet(node))

    def read(self) -> None:
        try:
            docs = _compose(self.text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            problem = getattr(exc, "problem", None) or str(exc)
            context = getattr(exc, "context", None)
            msg = f"{context}: {problem}" if context else str(problem)
            if mark is not None:
                loc = Location("", "", self.name, mark.line + 1, mark.column + 1, mark.index)
                self.load.message("LOAD_ERR_YAML_PARSE", msg, (loc,), caret_snippet(self.text, mark.index))
            else:
                self.load.message("LOAD_ERR_YAML_PARSE", msg, (Location("", "", self.name),))
            return
        except (ValueError, UnicodeError) as exc:  # e.g. control characters the reader refuses
            self.load.message("LOAD_ERR_YAML_PARSE", str(exc), (Location("", "", self.name),))
            return
        except RecursionError:  # PyYAML's pure-Python composer (PyPy) recurses per nesting level
            self.load.message("LOAD_ERR_YAML_PARSE", "the YAML is nested too deep (exceeded maximum nesting "
                              "depth)", (Location("", "", self.name),))
            return
        try:
            for doc in docs:
                if doc is None or (isinstance(doc, yaml.ScalarNode) and doc.tag == _NULL):
                    continue
                if not isinstance(doc, yaml.SequenceNode):
                    self.fail("LOAD_ERR_YAML_VALIDATE", "Rules content is not yaml array of objects", doc)
                for item in doc.value:
                    if not isinstance(item, yaml.MappingNode):
                        self.fail("LOAD_ERR_YAML_VALIDATE",
                                  "Unexpected element type. Each element should be a yaml associative array.",
                                  item)
                    self.read_item(item)
        except ItemError as exc:
            self.load.message(exc.code, exc.msg, exc.locations, exc.snippet)

    # ---- value decoding ----------------------------------------------------------------------
    def mapping(self, node: yaml.MappingNode, locs: tuple) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        out = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                self.fail("LOAD_ERR_YAML_VALIDATE", "Keys must be strings", key, locs)
            out[key.value] = (key, value)
        return out

    def string(self, node: yaml.Node, key: str, locs: tuple) -> str:
        if isinstance(node, yaml.ScalarNode):
            return "" if node.tag == _NULL else node.value
        self.fail("LOAD_ERR_YAML_VALIDATE", f"Value of key '{key}' must be a string", node, locs)

    def boolean(self, node: yaml.Node, key: str, locs: tuple) -> bool:
        if isinstance(node, yaml.ScalarNode) and node.tag == _BOOL:
            return node.value.lower() in ("true", "yes", "on", "y")
        self.fail("LOAD_ERR_YAML_VALIDATE", f"Value of key '{key}' must be a boolean (true or false)", node, locs)

    def integer(self, node: yaml.Node, key: str, locs: tuple) -> int:
        if isinstance(node, yaml.ScalarNode) and node.tag == _INT:
            try:
                value = int(node.value.replace("_", ""), 0)
                if value >= 0:
                    return value
            except ValueError:
                pass
        self.fail("LOAD_ERR_YAML_VALIDATE", f"Value of key '{key}' must be a non-negative integer", node, locs)

    def strings(self, node: yaml.Node, key: str, locs: tuple) -> list[str]:
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL:
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.fail("LOAD_ERR_YAML_VALIDATE", f"Value of key '{key}' must be a sequence of strings", node, locs)
        out = []
        for item in node.value:
            if not isinstance(item, yaml.ScalarNode):
                self.fail("LOAD_ERR_YAML_VALIDATE", f"Items of key '{key}' must be strings", item, locs)
            out.append(item.value)
        return out

    def name_of(self, keys: dict, kind: str, locs: tuple) -> str:
        key_node, value = keys[kind]
        name = self.string(value, kind, locs)
        if not name.strip():
            self.fail("LOAD_ERR_YAML_VALIDATE", f"Mapping for key '{kind}' is empty", value, locs)
        return name

    def unknown_keys(self, keys: dict, allowed: frozenset, locs: tuple) -> None:
        for key, (key_node, _) in keys.items():
            if key not in allowed:
                self.warn("LOAD_UNKNOWN_KEY", f"Unknown key '{key}'. The key will be ignored.", key_node, locs)

    def override(self, keys: dict, locs: tuple) -> dict[str, str] | None:
        if "override" not in keys:
            return None
        key_node, node = keys["override"]
        if not isinstance(node, yaml.MappingNode):
            self.fail("LOAD_ERR_YAML_VALIDATE", "Value of key 'override' must be a map of key: append|replace",
                      node, locs)
        out = {}
        for k, v in node.value:
            op = v.value if isinstance(v, yaml.ScalarNode) else None
            if op not in ("append", "replace"):
                self.fail("LOAD_ERR_YAML_VALIDATE",
                          f"Invalid override operation for key '{k.value}': '{op}'. Use 'append' or 'replace'.",
                          v, locs)
            out[k.value] = op
        return out

    # ---- items ------------------------------------------------------------------------------
    def read_item(self, item: yaml.MappingNode) -> None:
        base = (self.loc(item, "", ""),)
        keys = self.mapping(item, base)
        for kind in ("required_engine_version", "required_plugin_versions", "list", "macro", "rule"):
            if kind in keys:
                break
        else:
            self.warn("LOAD_UNKNOWN_ITEM", "Unknown top level item", item, (self.loc(item, "", ""),))
            return
        getattr(self, "read_" + kind)(item, keys)

    def read_required_engine_version(self, item, keys):
        locs = (self.loc(item, "required_engine_version", ""),)
        _, node = keys["required_engine_version"]
        text = self.string(node, "required_engine_version", locs).strip()
        number = None
        if node.tag == _INT or text.isdigit():
            try:   # "06" is 6 (int(x, 0) refuses leading zeros); "0x10", "+5" as YAML reads them
                number = int(text, 10) if text.isdigit() else int(text, 0)
            except ValueError:
                number = None
        if number is not None and number >= 0:
            version = f"0.{number}.0"
        elif _semver(text):
            version = text
        else:
            self.fail("LOAD_ERR_YAML_VALIDATE",
                      f"Invalid required_engine_version '{text}': expected an integer or a version x.y.z",
                      node, locs)
        if not _compatible(self.load.engine_version, version):
            self.fail("LOAD_ERR_VALIDATE",
                      f"Rules require engine version {version}, but engine version is {self.load.engine_version}",
                      node, locs)
        prev = self.load.result.required_engine_version
        if prev is None or _semver(version) > _semver(prev):
            self.load.result.required_engine_version = version

    def read_required_plugin_versions(self, item, keys):
        """Falco's check: per entry, the first alternative (in order) whose plugin is loaded
        decides (its version must be compatible: same major, not older); none loaded is an error."""
        locs = (self.loc(item, "required_plugin_versions", ""),)
        _, node = keys["required_plugin_versions"]
        if not isinstance(node, yaml.SequenceNode):
            self.fail("LOAD_ERR_YAML_VALIDATE", "Value of required_plugin_versions must be a sequence", node, locs)
        for entry in node.value:
            alternatives = [self.plugin_requirement(entry, locs)]
            entry_keys = self.mapping(entry, locs)
            if "alternatives" in entry_keys:
                alt_node = entry_keys["alternatives"][1]
                if not isinstance(alt_node, yaml.SequenceNode):
                    self.fail("LOAD_ERR_YAML_VALIDATE", "Value of key 'alternatives' must be a sequence",
                              alt_node, locs)
                alternatives += [self.plugin_requirement(a, locs) for a in alt_node.value]
            seen: set = set()
            for name, _version in alternatives:
                if name in seen:
                    self.fail("LOAD_ERR_VALIDATE",
                              f"Defined multiple alternative version requirements for plugin '{name}'", entry, locs)
                seen.add(name)
            plugins = self.load.plugins
            for name, version in alternatives:
                if name in plugins:
                    if not _compatible(plugins[name], version):
                        self.fail("LOAD_ERR_VALIDATE",
                                  f"Plugin '{name}' version '{plugins[name]}' is not compatible with required "
                                  f"plugin version '{version}'", entry, locs)
                    break
            else:
                need = ", ".join(f"{name} (>= {version})" for name, version in alternatives)
                self.fail("LOAD_ERR_VALIDATE", f"Plugin requirement not satisfied, must load one of: {need}",
                          entry, locs)

    def plugin_requirement(self, node, locs) -> tuple[str, str]:
        if not isinstance(node, yaml.MappingNode):
            self.fail("LOAD_ERR_YAML_VALIDATE", "Plugin requirements must be maps with 'name' and 'version'",
                      node, locs)
        keys = self.mapping(node, locs)
        for key in ("name", "version"):
            if key not in keys:
                self.fail("LOAD_ERR_YAML_VALIDATE", f"Item has no mapping for key '{key}'", node, locs)
        name = self.string(keys["name"][1], "name", locs)
        version = self.string(keys["version"][1], "version", locs)
        if _semver(version) is None:
            self.fail("LOAD_ERR_YAML_VALIDATE", f"Invalid required version '{version}' for plugin '{name}'",
                      keys["version"][1], locs)
        return name, version

    def _mode(self, keys, overridable, locs, item, kind) -> tuple[dict | None, bool]:
        """(override map, legacy append) after Falco's consistency checks."""
        append = False
        if "append" in keys:
            append = self.boolean(keys["append"][1], "append", locs)
        override = self.override(keys, locs)
        if append and override is not None:
            self.fail("LOAD_ERR_YAML_VALIDATE",
                      "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry "
                      "(e.g. 'condition: append') under 'override' instead.", keys["append"][0], locs)
        if append:
            self.warn("LOAD_DEPRECATED_ITEM",
                      "'append' key is deprecated. Add an 'append' entry (e.g. 'condition: append') under "
                      "'override' instead.", keys["append"][0], locs)
        if override is not None:
            appendable, replaceable = overridable
            for key, op in override.items():
                if op == "append" and key not in appendable:
                    if key in replaceable:
                        self.fail("LOAD_ERR_YAML_VALIDATE",
                                  f"Key '{key}' cannot be appended to, use 'replace' instead", item, locs)
                    self.fail("LOAD_ERR_YAML_VALIDATE", f"Key '{key}' cannot be appended to", item, locs)
                if op == "replace" and key not in replaceable:
                    self.fail("LOAD_ERR_YAML_VALIDATE", f"Key '{key}' cannot be replaced", item, locs)
                if key not in keys:
                    self.fail("LOAD_ERR_YAML_VALIDATE",
                              f"An {op} override for '{key}' was specified but '{key}' is not defined", item, locs)
            for key in keys:
                if key in (appendable | replaceable) and key not in override:
                    self.fail("LOAD_ERR_YAML_VALIDATE",
                              f"Unexpected key '{key}': no corresponding entry under 'override' is defined.",
                              keys[key][0], locs)
        return override, append

    def read_list(self, item, keys):
        locs = (self.loc(item, "list", ""),)
        name = self.name_of(keys, "list", locs)
        locs = (self.loc(item, "list", name),)
        if not _LIST_NAME.fullmatch(name):
            self.warn("LOAD_INVALID_LIST_NAME",
                      f"List name '{name}' is invalid: list names may not contain blanks, quotes, "
                      "parentheses, '=' or ','", item, locs)
        self.unknown_keys(keys, _LIST_KEYS, locs)
        override, append = self._mode(keys, (frozenset({"items"}), frozenset({"items"})), locs, item, "list")
        if "items" not in keys:
            self.fail("LOAD_ERR_YAML_VALIDATE", "Item has no mapping for key 'items'", item, locs)
        items = self.strings(keys["items"][1], "items", locs)
        op = "append" if append else (override or {}).get("items", "define")
        self.load.collector.list(name, items, op, locs[0], self.snippet(item))

    def read_macro(self, item, keys):
        locs = (self.loc(item, "macro", ""),)
        name = self.name_of(keys, "macro", locs)
        locs = (self.loc(item, "macro", name),)
        if not _MACRO_NAME.fullmatch(name):
            self.warn("LOAD_INVALID_MACRO_NAME",
                      f"Macro name '{name}' is invalid: macro names must match [a-zA-Z]+[a-zA-Z0-9_]*",
                      item, locs)
        self.unknown_keys(keys, _MACRO_KEYS, locs)
        override, append = self._mode(keys, (frozenset({"condition"}), frozenset({"condition"})), locs, item,
                                      "macro")
        if "condition" not in keys:
            self.fail("LOAD_ERR_YAML_VALIDATE", "Item has no mapping for key 'condition'", item, locs)
        cond_node = keys["condition"][1]
        cond = self.string(cond_node, "condition", locs)
        op = "append" if append else (override or {}).get("condition", "define")
        self.load.collector.macro(name, cond, op, locs[0], self.cond_loc(cond_node, "macro condition", name),
                                  self.snippet(item))

    def cond_loc(self, node, item_type, name) -> tuple:
        """(Location of a condition value, the scalar's source mapping info)."""
        style = getattr(node, "style", None)
        indent = 0
        if style == "|":  # content lines start after the block's indentation
            if self._lines is None:  # split once per file: once per condition was quadratic
                self._lines = self.text.splitlines()
            lines = self._lines
            line_no = node.start_mark.line + 1
            first = next((lines[i] for i in range(line_no, len(lines)) if lines[i].strip()), "")
            indent = len(first) - len(first.lstrip(" "))
        raw = node.value if isinstance(node, yaml.ScalarNode) else ""
        return (self.loc(node, item_type, name), style, raw, indent)

    def read_exceptions(self, node, locs) -> list[ExceptionInfo]:
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL:
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.fail("LOAD_ERR_YAML_VALIDATE", "Value of key 'exceptions' must be a sequence", node, locs)
        out = []
        for exc in node.value:
            if not isinstance(exc, yaml.MappingNode):
                self.fail("LOAD_ERR_YAML_VALIDATE", "Exceptions must be maps", exc, locs)
            keys = self.mapping(exc, locs)
            if "name" not in keys:
                self.fail("LOAD_ERR_YAML_VALIDATE", "Item has no mapping for key 'name'", exc, locs)
            name = self.string(keys["name"][1], "name", locs)
            eloc = locs + (self.loc(exc, "exception", name),)
            self.unknown_keys(keys, _EXCEPTION_KEYS, eloc)
            fields = comps = None
            if "fields" in keys:
                fields = self.scalar_or_list(keys["fields"][1], "fields", eloc)
            if "comps" in keys:
                comps = self.scalar_or_list(keys["comps"][1], "comps", eloc)
            values = None
            if "values" in keys:
                values = self.values(keys["values"][1], eloc)
            out.append(ExceptionInfo(name, fields, comps, values, eloc[-1], self.snippet(exc)))
        return out

    def scalar_or_list(self, node, key, locs):
        if isinstance(node, yaml.ScalarNode):
            return node.value
        return self.strings(node, key, locs)

    def values(self, node, locs):
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL:
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.fail("LOAD_ERR_YAML_VALIDATE", "Value of key 'values' must be a sequence", node, locs)

        def conv(v, depth):
            if isinstance(v, yaml.ScalarNode):
                return v.value
            if isinstance(v, yaml.SequenceNode) and depth < 2:
                return [conv(x, depth + 1) for x in v.value]
            self.fail("LOAD_ERR_YAML_VALIDATE", "Exception values must be strings or lists of strings", v, locs)
        return [conv(v, 0) for v in node.value]

    def read_rule(self, item, keys):
        locs = (self.loc(item, "rule", ""),)
        name = self.name_of(keys, "rule", locs)
        loc = self.loc(item, "rule", name)
        locs = (loc,)
        self.unknown_keys(keys, _RULE_KEYS, locs)
        appendable = frozenset(("condition", "output", "desc", "tags", "exceptions"))
        replaceable = frozenset(("condition", "output", "desc", "priority", "capture", "capture_duration", "tags",
                                 "exceptions", "enabled", "warn_evttypes", "skip-if-unknown-filter"))
        override, append = self._mode(keys, (appendable, replaceable), locs, item, "rule")
        values: dict[str, Any] = {}
        for key in ("condition", "output", "desc", "priority", "source"):
            if key in keys:
                values[key] = self.string(keys[key][1], key, locs)
        for key in ("enabled", "warn_evttypes", "skip-if-unknown-filter", "capture"):
            if key in keys:
                values[key] = self.boolean(keys[key][1], key, locs)
        if "capture_duration" in keys:
            values["capture_duration"] = self.integer(keys["capture_duration"][1], "capture_duration", locs)
        if "tags" in keys:
            values["tags"] = self.strings(keys["tags"][1], "tags", locs)
        if "exceptions" in keys:
            values["exceptions"] = self.read_exceptions(keys["exceptions"][1], locs)
        if "output" in values:
            values["output"] = values["output"].strip()
        if "priority" in values:
            try:
                values["priority"] = Priority.parse(values["priority"])
            except ValueError:
                self.fail("LOAD_ERR_YAML_VALIDATE", f"Invalid priority '{values['priority']}'",
                          keys["priority"][1], locs)
        cond_loc = self.cond_loc(keys["condition"][1], "rule condition", name) if "condition" in keys else None
        out_loc = self.loc(keys["output"][1], "rule output", name) if "output" in keys else None
        self.load.collector.rule(name, values, override, append, loc, cond_loc, out_loc, self.snippet(item),
                                 keys)


# ---- the whole load ---------------------------------------------------------------------------------

class _Load:
    def __init__(self, providers: Mapping[str, Any], plugins: Mapping[str, str], engine_version: str,
                 result: LoadResult):
        self.providers = providers
        self.plugins = dict(plugins)
        self.engine_version = engine_version
        self.result = result
        self.collector = Collector(self)
        self.budget = Budget()

    def message(self, code: str, msg: str, locations: tuple, snippet: str = "") -> None:
        self.result.add(LoadMessage(code, msg, tuple(locations), snippet))

    # ---- compile ------------------------------------------------------------------------------
    def compile(self, warn_unused: bool) -> list[Rule]:
        col = self.collector
        col.finish()
        used_lists: set = set()
        try:
            lists = compile_lists(col.lists_in_order(), used_lists)
        except (CycleError, ListLimitError) as exc:
            info = col.lists[exc.chain[0]]
            self.message("LOAD_ERR_VALIDATE", str(exc), (info.loc,), info.snippet)
            return []
        macros = col.macros
        for info in col.macros_in_order():
            if self.budget.exhausted:
                break
            try:
                info.text = expand_lists(info.condition, lists, used_lists)
            except LimitError as exc:
                self.condition_error("LOAD_ERR_COMPILE_CONDITION", exc.msg, exc.pos, info.condition,
                                     info.loc, info.cond_loc)
                continue
            problem = self.budget.spend_text(len(info.text))
            if problem:
                self.message("LOAD_ERR_COMPILE_CONDITION", problem, (info.loc,), info.snippet)
                break
            try:
                info.tree = parse(info.text)
            except ConditionSyntaxError as exc:
                self.condition_error("LOAD_ERR_COMPILE_CONDITION", exc.msg, exc.pos, info.text,
                                     info.loc, info.cond_loc)
        used_macros: set = set()
        resolver = MacroResolver(macros, used_macros)
        reported: set = set()
        for info in col.macros_in_order():
            if info.tree is None:
                continue
            try:
                resolver.resolve_macro(info.name)
            except ResolveError as exc:
                where = exc.macros[-1] if exc.macros else info.name
                key = frozenset(exc.cycle) if exc.cycle else (where, exc.msg)
                if key not in reported and macros[where].tree is not None \
                        and "has an invalid condition" not in exc.msg:
                    reported.add(key)
                    bad = macros[where]
                    self.condition_error("LOAD_ERR_COMPILE_CONDITION", exc.msg, exc.pos, bad.text,
                                         bad.loc, bad.cond_loc)
        rules = []
        for info in col.rules_in_order():
            if self.budget.exhausted:
                break
            try:
                rule = self.compile_rule(info, lists, used_lists, resolver)
            except (RecursionError, MemoryError) as exc:  # a safety net: the limits should prevent it
                self.message("LOAD_ERR_COMPILE_CONDITION", f"the condition is too complex to compile "
                             f"({type(exc).__name__})", (info.loc,), info.snippet)
                rule = None
            if rule is not None:
                rule.index = len(rules)
                rules.append(rule)
        if warn_unused and not self.budget.exhausted:  # after a stop, "unused" would be noise
            for info in col.macros_in_order():
                if info.name not in used_macros:
                    self.message("LOAD_UNUSED_MACRO", "Macro not referred to by any other rule/macro",
                                 (info.loc,), info.snippet)
            for info in col.lists_in_order():
                if info.name not in used_lists:
                    self.message("LOAD_UNUSED_LIST", "List not referred to by any other rule/macro",
                                 (info.loc,), info.snippet)
        return rules

    def condition_error(self, code, msg, pos, text, item_loc, cond_loc, chain=()) -> None:
        """A message about offset ``pos`` of condition ``text`` (of the item at ``item_loc``)."""
        loc, style, raw, indent = cond_loc if cond_loc else (item_loc, None, "", 0)
        line, col = line_col(text, pos)
        exact_line, exact_col = loc.line, loc.column
        if text == raw and style in (None, "", "'", '"') and "\n" not in text:
            exact_col = loc.column + pos + (1 if style in ("'", '"') else 0)
        elif text == raw and style == "|":
            exact_line, exact_col = loc.line + line, col + indent  # block content starts on the next line
        expr = Location("condition expression", "", loc.file, exact_line, exact_col, pos)
        self.message(code, msg, (item_loc, loc) + tuple(chain) + (expr,), caret_snippet(text, pos))

    def exception_condition(self, info: RuleInfo) -> str | None:
        """The rule condition with its exceptions appended; None (after reporting) when invalid."""
        provider = self.providers[info.source]
        texts = []
        ok = True
        for exc in info.exceptions:
            try:
                text = exc.condition_text(provider)
            except ItemError as err:
                self.message(err.code, err.msg, (info.loc,) + err.locations, err.snippet)
                ok = False
                continue
            if text:
                texts.append(text)
        if not ok:
            return None
        if not texts:
            return info.condition
        return f"({info.condition}) and not ({' or '.join(texts)})"

    def compile_rule(self, info: RuleInfo, lists, used_lists, resolver: MacroResolver) -> Rule | None:
        provider = self.providers.get(info.source)
        if provider is None:
            self.message("LOAD_UNKNOWN_SOURCE", f"Unknown source {info.source}, skipping", (info.loc,),
                         info.snippet)
            return None
        cond = self.exception_condition(info)
        if cond is None:
            return None
        try:
            text = expand_lists(cond, lists, used_lists)
        except LimitError as exc:
            self.condition_error("LOAD_ERR_COMPILE_CONDITION", exc.msg, exc.pos, cond, info.loc, info.cond_loc)
            return None
        problem = self.budget.spend_text(len(text))
        if problem:
            self.message("LOAD_ERR_COMPILE_CONDITION", problem, (info.loc,), info.snippet)
            return None
        try:
            tree = parse(text)
        except ConditionSyntaxError as exc:
            self.condition_error("LOAD_ERR_COMPILE_CONDITION", exc.msg, exc.pos, text, info.loc, info.cond_loc)
            return None
        try:
            tree = resolver.resolve(tree)
        except ResolveError as exc:
            if not exc.macros:  # problems inside macros were reported with the macro
                self.condition_error("LOAD_ERR_COMPILE_CONDITION", exc.msg, exc.pos, text, info.loc,
                                     info.cond_loc)
            return None
        problem = self.budget.spend(resolver.expansion(tree))
        if problem:
            self.message("LOAD_ERR_COMPILE_CONDITION", problem, (info.loc,), info.snippet)
            return None
        syscall = info.source == "syscall"
        checker = Checker(provider, check_evttypes=syscall)
        try:
            checker.check(tree)
        except CheckError as exc:
            self.check_error(exc, info, text)
            return None
        for msg, pos, chain in checker.warnings:
            self.check_message("LOAD_UNSAFE_NA_CHECK", msg, pos, chain, info, text)
        types = evttypes(tree) if syscall else frozenset()
        if syscall and info.warn_evttypes and len(types) > MAX_EVTTYPES:
            self.message("LOAD_NO_EVTTYPE",
                         "Rule matches too many evt.type values. This has a significant performance penalty.",
                         (info.loc,), info.snippet)
        try:
            fmt = compile_output(info.output, provider)
        except OutputFormatError as exc:
            self.output_error("LOAD_ERR_COMPILE_OUTPUT", exc.msg, exc.pos, info)
            return None
        except CheckError as exc:
            if exc.unknown:
                self.result.unknown_fields.add(exc.field or "")
            if exc.unknown and info.skip_unknown:
                self.output_error("LOAD_UNKNOWN_FILTER", f"{exc.msg}; the rule is skipped", exc.pos, info)
            else:
                self.output_error("LOAD_ERR_COMPILE_OUTPUT", exc.msg, exc.pos, info)
            return None
        try:
            compiled = compile_condition(tree, provider, name=repr(info.name), fn_name=f"rule_{info.index}")
        except (SyntaxError, RecursionError, MemoryError, LimitError) as exc:
            self.message("LOAD_ERR_COMPILE_CONDITION", f"condition too complex to compile: {exc}",
                         (info.loc,), info.snippet)
            return None
        return Rule(
            name=info.name, desc=info.desc, condition=text, output=info.output, priority=info.priority,
            event_source=info.source, tags=frozenset(info.tags), enabled=info.enabled, evttypes=types,
            tree=tree, source=compiled.source, fn=compiled.function, output_format=fmt, provider=provider,
            exceptions=tuple(info.exceptions), warn_evttypes=info.warn_evttypes,
            skip_if_unknown_filter=info.skip_unknown, capture=info.capture,
            capture_duration=info.capture_duration, fields=frozenset(checker.fields),
            macros=frozenset(_macro_names(tree)))

    def check_message(self, code, msg, pos, chain, info: RuleInfo, text) -> None:
        macros = self.collector.macros
        if chain:
            inner = macros[chain[-1]]
            links = tuple(Location("macro", m, macros[m].loc.file, macros[m].loc.line, macros[m].loc.column,
                                   macros[m].loc.offset) for m in chain[:-1])
            self.condition_error(code, msg, pos, inner.text, info.loc, inner.cond_loc, links)
        else:
            self.condition_error(code, msg, pos, text, info.loc, info.cond_loc)

    def check_error(self, exc: CheckError, info: RuleInfo, text: str) -> None:
        if exc.unknown:
            if exc.field:
                self.result.unknown_fields.add(exc.field)
            if info.skip_unknown:
                self.check_message("LOAD_UNKNOWN_FILTER", f"{exc.msg}; the rule is skipped", exc.pos, exc.macros,
                                   info, text)
                return
        self.check_message("LOAD_ERR_COMPILE_CONDITION", exc.msg, exc.pos, exc.macros, info, text)

    def output_error(self, code, msg, pos, info: RuleInfo) -> None:
        loc = info.out_loc or info.loc
        expr = Location("output expression", "", loc.file, loc.line, loc.column, pos)
        self.message(code, msg, (info.loc, loc, expr), caret_snippet(info.output, pos))


def _macro_names(tree: n.Node) -> set:
    """Names of the macros ``tree`` uses; each shared macro tree is walked once, without recursion."""
    out: set = set()
    seen: set = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, n.Macro):
            out.add(node.name)
            if id(node.expr) not in seen:
                seen.add(id(node.expr))
                stack.append(node.expr)
        elif isinstance(node, (n.And, n.Or)):
            stack.extend(node.items)
        elif isinstance(node, n.Not):
            stack.append(node.expr)
    return out


def load_rules(*sources: Any, provider: Any = None, strict: bool = False,
               extra_sources: Mapping[str, Any] | None = None,
               plugins: Mapping[str, str] | None = None, engine_version: str = ENGINE_VERSION,
               rule_matching: str = "first", min_priority: Priority | str = Priority.DEBUG,
               selection: Iterable[Mapping] | None = None, warn_unused: bool = True) -> LoadResult:
    """Load rules files in order and compile them into a :class:`Ruleset` (``result.ruleset``).

    ``sources`` are file paths (``str``/``Path``), rules text, or ``(name, text)`` pairs.
    ``provider`` supplies the fields of the ``syscall`` source (default: :class:`DictProvider`);
    ``extra_sources`` maps other source names (``k8s_audit``, ...) to their providers.
    ``plugins`` are the plugin versions considered loaded for ``required_plugin_versions``
    (default: the built-in container support). ``selection`` is Falco's ``rules:`` config.

    Never raises on bad rules: problems are in the result's errors and warnings. With
    ``strict=True`` a result with errors raises :class:`RulesLoadError` instead.
    """
    names: list[str] = []
    read = _read_sources(sources, names)
    result = LoadResult(names)
    providers = {"syscall": provider if provider is not None else DictProvider()}
    providers.update(extra_sources or {})
    load = _Load(providers, DEFAULT_PLUGINS if plugins is None else plugins, engine_version, result)
    for name, text, error in read:
        if error is not None:
            load.message("LOAD_ERR_FILE_READ", error, (Location("", "", name),))
            continue
        _Reader(load, name, text).read()
    if result.ok:
        rules = load.compile(warn_unused)
        if result.ok:
            result.ruleset = Ruleset(rules, providers, rule_matching=rule_matching, min_priority=min_priority,
                                     universe=event_type_names())
            if selection:
                result.ruleset.select(selection)
    if strict and not result.ok:
        raise RulesLoadError(result)
    return result

