# SPDX-License-Identifier: Apache-2.0
"""The field-provider protocol the rule engine compiles against, and DictProvider for plain dicts.

A provider answers three questions, all at load time except the last two callables' calls:

* ``field_info(name)``: the :class:`~pyfalco.fields.catalog.FieldInfo` of a field name (including
  ``evt.arg.<x>`` dot forms), or None when the provider cannot extract it;
* ``accessor(name, arg)``: a callable ``evt -> value`` bound once per field use. It returns the
  value typed per field type (int for numeric types, bool for BOOL, str for CHARBUF, bytes for
  BYTEBUF, ``ipaddress`` objects or strings for IP types, a tuple for list fields or for
  "any ancestor" forms such as ``proc.aname`` without index), or None for a missing value (Falco's
  ``<NA>``);
* ``event_type(evt)``: the ``evt.type`` name of an event (used by the ruleset's type index).
"""

from __future__ import annotations

import operator
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

from pyfalco.fields.catalog import FieldInfo, lookup, split_dot_arg

__all__ = ["FieldProvider", "DictProvider", "field_key"]


@runtime_checkable
class FieldProvider(Protocol):
    def field_info(self, name: str) -> FieldInfo | None: ...

    def accessor(self, name: str, arg: str | None) -> Callable[[Any], Any]: ...

    def event_type(self, evt: Any) -> str | None: ...


def field_key(name: str, arg: str | None) -> str:
    """Canonical text of a field use: ``proc.aname[2]``, ``evt.arg.flags`` (``evt.arg[flags]``
    is written in its dot form; numeric ``evt.arg[0]`` stays as is)."""
    if arg is None:
        return name
    if name in ("evt.arg", "evt.rawarg") and not arg.lstrip("-").isdigit():
        return f"{name}.{arg}"
    return f"{name}[{arg}]"


class DictProvider:
    """Events are dicts keyed by :func:`field_key` text: ``{"evt.type": "open", "proc.aname[2]": "bash"}``.

    A missing key is a missing value. ``extra_fields`` adds or overrides catalog entries (e.g. for
    plugin sources); ``only`` restricts the known fields to a set of names (to simulate a field
    layer that does not provide everything yet).
    """

    def __init__(self, extra_fields: Mapping[str, FieldInfo] | None = None,
                 only: set[str] | frozenset[str] | None = None):
        self._extra = dict(extra_fields or {})
        self._only = frozenset(only) if only is not None else None

    def field_info(self, name: str) -> FieldInfo | None:
        info = self._extra.get(name)
        if info is None:
            base, dot_arg = split_dot_arg(name)
            if dot_arg is not None:
                info = self._extra.get(base)
        if info is None:
            info = lookup(name)
        if info is not None and self._only is not None and info.name not in self._only:
            return None
        return info

    def accessor(self, name: str, arg: str | None) -> Callable[[Any], Any]:
        key = field_key(name, arg)
        info = self.field_info(name)
        if info is not None and getattr(info, "multi", False):
            # a multi-valued field (e.g. fd.ip: both ends) given as one value is a 1-tuple
            def get_multi(evt: Any, key: str = key) -> Any:
                v = evt.get(key)
                if v is None or isinstance(v, tuple):
                    return v
                return tuple(v) if isinstance(v, list) else (v,)
            return get_multi
        return operator.methodcaller("get", key)

    def event_type(self, evt: Any) -> str | None:
        return evt.get("evt.type")
