# SPDX-License-Identifier: Apache-2.0
"""Rule output formats: ``%field``, ``%field[arg]``, ``%20field`` (width), ``%tolower(field)``.

A format compiles once per rule (:func:`compile_output`) into literal text and value getters.
Rendering gives Falco's text (a missing value is ``<NA>``) or the typed ``output_fields`` of a
JSON alert (a missing value is null). :func:`format_alert` adds the ``<time>: <Priority> ``
prefix and :func:`alert_json` builds the JSON alert object.
"""

from __future__ import annotations

import datetime as _dt
import re
import socket
from typing import Any, Callable

from pyfalco.rules import nodes as n
from pyfalco.rules import operators as ops
from pyfalco.rules.checker import operand_type
from pyfalco.rules.errors import ConditionSyntaxError
from pyfalco.rules.lexer import TRANSFORMERS
from pyfalco.rules.parser import Parser

__all__ = ["OutputFormat", "OutputFormatError", "compile_output", "parse_output", "format_output",
           "format_alert", "alert_json", "format_time", "value_text", "json_value"]

_START = re.compile(r"%(-?[0-9]+)?(?=[a-zA-Z])")
_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*(?:\.[a-zA-Z][a-zA-Z0-9_]*)*")


class OutputFormatError(ValueError):
    def __init__(self, msg: str, pos: int):
        super().__init__(msg)
        self.msg = msg
        self.pos = pos


#: the widest ``%<width>field`` accepted (a wider one is a load error)
MAX_FIELD_WIDTH = 4096


def parse_output(fmt: str) -> list:
    """Split ``fmt`` into literal strings and ``(text, operand node, width)`` tuples."""
    parts: list = []
    literal: list[str] = []
    i = 0
    while True:
        j = fmt.find("%", i)
        if j < 0:
            literal.append(fmt[i:])
            break
        literal.append(fmt[i:j])
        m = _START.match(fmt, j)
        name = _NAME.match(fmt, m.end()) if m else None
        if not m or name is None:
            literal.append("%")
            i = j + 1
            continue
        start = m.end()
        width = int(m.group(1)) if m.group(1) else 0
        if abs(width) > MAX_FIELD_WIDTH:
            # a width pads every alert line to it: a huge one is a mistake (or an attack on memory)
            raise OutputFormatError(f"field width {m.group(1)} is larger than {MAX_FIELD_WIDTH}", j)
        word = re.match(r"[a-zA-Z][a-zA-Z0-9_]*", fmt[start:]).group()
        parser = Parser(fmt)
        parser.lex.pos = start
        try:
            if word in TRANSFORMERS and fmt.startswith("(", start + len(word)):
                node = parser.parse_operand("in the output")
            elif "." in name.group():
                parser.lex.pos = name.end()
                node = parser.field_rest(name.group(), start)
            else:  # a '%' followed by a plain word is text
                literal.append(fmt[j:name.end()])
                i = name.end()
                continue
        except ConditionSyntaxError as exc:
            raise OutputFormatError(exc.msg.replace("the end of the condition", "the end of the output"),
                                    exc.pos) from None
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append((fmt[start:parser.lex.pos], node, width))
        i = parser.lex.pos
    if any(literal):
        parts.append("".join(literal))
    return parts


def value_text(value: Any) -> str:
    if value is None:
        return "<NA>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, tuple):
        return ",".join(value_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:.1f}"        # libs' rawval_to_string prints PT_DOUBLE as "%.1lf" (proc.fdusage)
    return value if isinstance(value, str) else str(value)


def json_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, tuple):
        return [json_value(v) for v in value]
    return str(value)


def _getter(node: n.Node, provider: Any) -> Callable[[Any], Any]:
    if isinstance(node, n.FieldRef):
        return provider.accessor(node.name, node.arg)
    fn = ops.TRANSFORMS[node.name]
    getters = [(lambda _e, _v=a.value: _v) if isinstance(a, n.Literal) else _getter(a, provider)
               for a in node.args]
    if len(getters) == 1:
        g = getters[0]
        return lambda evt: fn(g(evt))
    return lambda evt: fn(*[g(evt) for g in getters])


class OutputFormat:
    """A compiled output format; ``fields`` lists the field texts in order of appearance."""

    __slots__ = ("format", "_parts", "fields", "_getters")

    def __init__(self, fmt: str, parts: list, provider: Any):
        self.format = fmt
        self._parts = []
        self._getters = {}
        for part in parts:
            if isinstance(part, str):
                self._parts.append((part, None, 0, False))
            else:
                text, node, width = part
                if text not in self._getters:
                    self._getters[text] = _getter(node, provider)
                # a list field's values print as "(a,b)", as libsinsp prints EPF_IS_LIST fields
                info = provider.field_info(node.name) if isinstance(node, n.FieldRef) else None
                self._parts.append((None, self._getters[text], width, bool(info is not None and info.is_list)))
        self.fields = tuple(self._getters)

    def render(self, evt: Any) -> str:
        out = []
        for text, getter, width, is_list in self._parts:
            if getter is None:
                out.append(text)
                continue
            v = getter(evt)
            s = f"({value_text(v)})" if is_list and isinstance(v, tuple) else value_text(v)
            if width:
                w = abs(width)
                s = s[:w].ljust(w) if width > 0 else s[:w].rjust(w)
            out.append(s)
        return "".join(out)

    def values(self, evt: Any) -> dict:
        return {name: json_value(g(evt)) for name, g in self._getters.items()}


def compile_output(fmt: str, provider: Any) -> OutputFormat:
    """Compile ``fmt``; raises OutputFormatError (syntax) or CheckError (unknown/invalid fields)."""
    parts = parse_output(fmt)
    for part in parts:
        if not isinstance(part, str):
            operand_type(provider, part[1])
    return OutputFormat(fmt, parts, provider)


# ---- alerts ---------------------------------------------------------------------------------

def format_time(time_ns: int, iso8601: bool = False, tz: _dt.tzinfo | None = None) -> str:
    """``HH:MM:SS.nnnnnnnnn`` or ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+hhmm`` (local time unless ``tz``)."""
    sec, frac = divmod(int(time_ns), 1_000_000_000)
    stamp = _dt.datetime.fromtimestamp(sec, tz) if tz else _dt.datetime.fromtimestamp(sec).astimezone()
    if iso8601:
        return f"{stamp:%Y-%m-%dT%H:%M:%S}.{frac:09d}{stamp:%z}"
    return f"{stamp:%H:%M:%S}.{frac:09d}"


def _format_of(rule: Any, provider: Any) -> OutputFormat:
    if provider is None or provider is rule.provider:
        return rule.output_format
    return compile_output(rule.output, provider)


def format_output(rule: Any, evt: Any, provider: Any = None, json: bool = False):
    """The rule's output for ``evt``: text (``json=False``) or the ``output_fields`` dict."""
    fmt = _format_of(rule, provider)
    return fmt.values(evt) if json else fmt.render(evt)


def format_alert(rule: Any, evt: Any, time_ns: int, *, iso8601: bool = False,
                 tz: _dt.tzinfo | None = None, provider: Any = None) -> str:
    """Falco's alert line: ``<time>: <Priority> <rendered output>``."""
    return f"{format_time(time_ns, iso8601, tz)}: {rule.priority.label} {format_output(rule, evt, provider)}"


def alert_json(rule: Any, evt: Any, time_ns: int, *, hostname: str | None = None,
               iso8601: bool = False, tz: _dt.tzinfo | None = None, provider: Any = None,
               include_output: bool = True, include_output_fields: bool = True,
               include_tags: bool = True, include_message: bool = False) -> dict:
    """The JSON alert object (keys sorted as Falco serializes them)."""
    fmt = _format_of(rule, provider)
    message = fmt.render(evt)
    out: dict[str, Any] = {"hostname": hostname if hostname is not None else socket.gethostname()}
    if include_message:
        out["message"] = message
    if include_output:
        out["output"] = f"{format_time(time_ns, iso8601, tz)}: {rule.priority.label} {message}"
    if include_output_fields:
        fields = fmt.values(evt)
        fields["evt.time.iso8601" if iso8601 else "evt.time"] = int(time_ns)
        out["output_fields"] = dict(sorted(fields.items()))
    out["priority"] = rule.priority.label
    out["rule"] = rule.name
    out["source"] = rule.event_source
    if include_tags:
        out["tags"] = sorted(rule.tags)
    sec, frac = divmod(int(time_ns), 1_000_000_000)
    utc = _dt.datetime.fromtimestamp(sec, _dt.timezone.utc)
    out["time"] = f"{utc:%Y-%m-%dT%H:%M:%S}.{frac:09d}Z"
    return dict(sorted(out.items()))


