# SPDX-License-Identifier: Apache-2.0
"""JsonPlugin: Falco's ``json`` extractor plugin, built in (``library_path: libjson.so``).

Fields, on events of any source whose payload is JSON (``k8s_audit`` in practice):

* ``json.value[<json pointer>]`` (alias ``jevt.value``): the value at an RFC 6901 pointer
  (``/requestObject/spec/volumes``, ``~1`` for ``/``, ``~0`` for ``~``; array elements by number);
  a string as its text, anything else as compact JSON; ``<NA>`` when the pointer leads nowhere;
* ``json.obj`` (alias ``jevt.obj``): the whole payload re-indented by two spaces, tokens as written
  (Go's ``json.Indent``);
* ``json.rawtime`` (alias ``jevt.rawtime``): the event timestamp (ns since the epoch) as text.

A payload that is not JSON gives ``<NA>`` for every field.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from pyfalco.plugins.api import FieldSpec, Plugin, PluginEvent
from pyfalco.plugins.k8saudit.fields import MISSING, as_text, walk
from pyfalco.plugins.k8saudit.plugin import cached_extract, event_doc

__all__ = ["JsonPlugin", "json_pointer", "indent_json"]



def json_pointer(text: str) -> tuple[str, ...]:
    """The reference tokens of a JSON pointer (a leading ``/`` optional, as the plugin accepts)."""
    if text.startswith("/"):
        text = text[1:]
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in text.split("/"))


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],:]|[^\s{}\[\],:"]+')


def indent_json(text: str, indent: str = "  ") -> str:
    """JSON text re-indented token by token, as Go's ``json.Indent`` does (what the plugin shows
    for ``json.obj``): strings and numbers stay exactly as written, each member/element on its own
    line, ``": "`` after keys, empty ``{}``/``[]`` kept together."""
    out: list[str] = []
    depth = 0
    toks = _TOKENS.findall(text)
    n = len(toks)
    i = 0
    while i < n:
        t = toks[i]
        if t in ("{", "["):
            close = "}" if t == "{" else "]"
            if i + 1 < n and toks[i + 1] == close:
                out.append(t + close)
                i += 2
                continue
            depth += 1
            out.append(t + "\n" + indent * depth)
        elif t in ("}", "]"):
            depth -= 1
            out.append("\n" + indent * depth + t)
        elif t == ",":
            out.append(",\n" + indent * depth)
        elif t == ":":
            out.append(": ")
        else:
            out.append(t)
        i += 1
    return "".join(out)


class JsonPlugin(Plugin):
    """The json plugin: extraction only, for every source."""

    name = "json"
    description = "implements extracting arbitrary fields from inputs formatted as JSON"
    contact = "github.com/falcosecurity/plugins (behaviour); built into pyfalco"
    version = "0.7.0"
    required_api_version = "3.0.0"

    _SPECS = (
        ("json.value", True, "Extracts a value from a JSON-encoded input. Syntax is json.value[<json pointer>], "
                             "where <json pointer> is a json pointer (see https://datatracker.ietf.org/doc/html/rfc6901)"),
        ("json.obj", False, "The full json message as a text string."),
        ("json.rawtime", False, "The time of the event, identical to evt.rawtime."),
        ("jevt.value", True, "Alias for json.value, provided for backwards compatibility."),
        ("jevt.obj", False, "Alias for json.obj, provided for backwards compatibility."),
        ("jevt.rawtime", False, "Alias for json.rawtime, provided for backwards compatibility."),
    )

    def __init__(self) -> None:
        self._getters: dict[tuple[str, str | None], Callable[[Any], Any]] = {}

    def fields(self) -> list[FieldSpec]:
        return [FieldSpec(n, "string", arg_required=a, arg_key=a, desc=d) for n, a, d in self._SPECS]

    def compile_extractor(self, field: str, arg: str | None) -> Callable[[Any], Any]:
        """``evt -> value`` for one field use (ValueError for a bad argument, KeyError for an
        unknown field)."""
        key = (field, arg)
        getter = self._getters.get(key)
        if getter is not None:
            return getter
        kind = field.split(".", 1)[1] if field.startswith(("json.", "jevt.")) else ""
        if kind == "value":
            if not arg:
                raise ValueError(f"field '{field}' requires an argument (a JSON pointer)")
            tokens = json_pointer(arg)

            def getter(evt: Any) -> Any:
                doc = event_doc(evt)
                if doc is None:
                    return None
                v = walk(doc, tokens)
                return None if v is MISSING else as_text(v)
        elif kind in ("obj", "rawtime"):
            if arg is not None:
                raise ValueError(f"field '{field}' does not take an argument")
            if kind == "obj":
                def getter(evt: Any) -> Any:
                    if event_doc(evt) is None:
                        return None
                    data = evt.data
                    return indent_json(data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data))
            else:
                def getter(evt: Any) -> Any:
                    # the plugin checks the payload is JSON before any field
                    return None if event_doc(evt) is None else str(evt.ts)
        else:
            raise KeyError(field)
        self._getters[key] = getter
        return getter

    def extract(self, evt: PluginEvent, field: str, arg: str | None) -> Any:
        return cached_extract(self, evt, field, arg)
