# SPDX-License-Identifier: Apache-2.0
"""Checks a plugin's ``init_config`` against the JSON schema the plugin declares, as Falco does
before ``init``: an empty configuration becomes ``{}``, the configuration must be JSON, and it must
match the schema.

The checker covers the JSON-schema keywords plugins' init schemas use: ``type`` (one or a list),
``properties``, ``required``, ``additionalProperties`` (bool or schema), ``items``, ``enum``,
``const``, ``minimum``/``maximum``, ``minLength``/``maxLength``, ``minItems``/``maxItems``,
``anyOf``/``oneOf``/``allOf``. Other keywords (``$ref``, ``pattern``, formats, ...) are not checked.
"""

from __future__ import annotations

import json
from typing import Any

from pyfalco.plugins.api import PluginError

__all__ = ["check_init_config"]

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is(value: Any, t: str) -> bool:
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool) or \
            (isinstance(value, float) and value.is_integer())
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    cls = _TYPES.get(t)
    return cls is not None and isinstance(value, cls) and not (t != "boolean" and isinstance(value, bool))


def _problem(value: Any, schema: Any, path: str) -> str | None:
    """The first mismatch of ``value`` against ``schema`` (None: it matches)."""
    if schema is True or not isinstance(schema, dict):
        return None if schema is not False else f"{path}: no value is allowed here"
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is(value, t) for t in names):
            return f"{path}: expected {' or '.join(names)}, got {type(value).__name__}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{path}: {value!r} is not one of {schema['enum']!r}"
    if "const" in schema and value != schema["const"]:
        return f"{path}: expected {schema['const']!r}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{path}: {value} is less than the minimum {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{path}: {value} is more than the maximum {schema['maximum']}"
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            return f"{path}: shorter than {schema['minLength']} characters"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"{path}: longer than {schema['maxLength']} characters"
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            return f"{path}: fewer than {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return f"{path}: more than {schema['maxItems']} items"
        items = schema.get("items")
        if isinstance(items, dict):
            for i, v in enumerate(value):
                p = _problem(v, items, f"{path}[{i}]")
                if p:
                    return p
    if isinstance(value, dict):
        for key in schema.get("required") or ():
            if key not in value:
                return f"{path}: missing required property '{key}'"
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties", True)
        for key, v in value.items():
            sub = props.get(key)
            if sub is None:
                if extra is False:
                    return f"{path}: unknown property '{key}'"
                sub = extra if isinstance(extra, dict) else True
            p = _problem(v, sub, f"{path}.{key}")
            if p:
                return p
    for sub in schema.get("allOf") or ():
        p = _problem(value, sub, path)
        if p:
            return p
    if schema.get("anyOf") and all(_problem(value, s, path) for s in schema["anyOf"]):
        return f"{path}: matches none of the allowed forms (anyOf)"
    if schema.get("oneOf") and sum(1 for s in schema["oneOf"] if not _problem(value, s, path)) != 1:
        return f"{path}: does not match exactly one allowed form (oneOf)"
    return None


def check_init_config(plugin: str, config: str, schema_text: str) -> str:
    """The configuration to pass to ``init`` ("" becomes "{}"), after checking it against the
    plugin's JSON schema; PluginError naming the plugin when it does not match."""
    try:
        schema = json.loads(schema_text)
    except ValueError:
        schema = None
    if not isinstance(schema, dict):
        raise PluginError(plugin, "the plugin's init schema is not a JSON object")
    if not config:
        config = "{}"
    try:
        value = json.loads(config)
    except ValueError as exc:
        raise PluginError(plugin, f"init config is not valid JSON ({exc.msg} at line {exc.lineno} column "
                                  f"{exc.colno}); the plugin's init schema expects JSON") from None
    problem = _problem(value, schema, "init_config")
    if problem:
        raise PluginError(plugin, f"init config does not match the plugin's schema: {problem}")
    return config
