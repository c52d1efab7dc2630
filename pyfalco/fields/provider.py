# SPDX-License-Identifier: Apache-2.0
"""StateProvider: the rule engine's field provider over InspectedEvents (the state engine).

Implements pyfalco.rules.provider.FieldProvider: ``field_info`` from the catalog plus the fields
this layer adds (EXTRA_FIELDS), ``accessor`` from extract.py, ``event_type`` from the event code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .catalog import FieldInfo, lookup
from .extract import EXTRACTORS, INDEXED, KEYED, NotExtractable, evt_type, make_accessor

__all__ = ["StateProvider", "EXTRA_FIELDS", "extractable"]

#: fields the state layer provides beyond the catalog (none today; keep field listing in one place)
EXTRA_FIELDS: dict[str, FieldInfo] = {}


def extractable(name: str) -> bool:
    if name.startswith("evt.arg.") or name.startswith("evt.rawarg."):
        return True
    return name in EXTRACTORS or name in INDEXED or name in KEYED


class StateProvider:
    """Fields of events parsed by an :class:`~pyfalco.inspector.Inspector`."""

    def __init__(self, extra_fields: dict[str, FieldInfo] | None = None):
        self._extra = {**EXTRA_FIELDS, **(extra_fields or {})}
        self._cache: dict[tuple, Callable] = {}

    def field_info(self, name: str) -> FieldInfo | None:
        # every catalog field is known; those this layer cannot compute are always missing
        return self._extra.get(name) or lookup(name)

    def accessor(self, name: str, arg: str | None) -> Callable[[Any], Any]:
        key = (name, arg)
        fn = self._cache.get(key)
        if fn is None:
            try:
                fn = make_accessor(name, arg)
            except NotExtractable:
                fn = _missing
            self._cache[key] = fn
        return fn

    def event_type(self, evt: Any) -> str | None:
        return evt_type(evt)


def _missing(_evt):
    return None
