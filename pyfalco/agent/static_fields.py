# SPDX-License-Identifier: Apache-2.0
"""The ``static.<name>`` fields of the ``static_fields`` configuration, added to any provider."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from pyfalco.fields.catalog import FieldInfo

__all__ = ["StaticFields"]


class StaticFields:
    """Adds ``static.<name>`` fields (constant strings) to a provider."""

    def __init__(self, inner: Any, values: Mapping[str, Any]):
        self.inner = inner
        self.values = {f"static.{k}": ("" if v is None else str(v)) for k, v in values.items()}

    def field_info(self, name: str) -> FieldInfo | None:
        if name in self.values:
            return FieldInfo(name, "CHARBUF", "static field from the configuration")
        return self.inner.field_info(name)

    def accessor(self, name: str, arg: str | None) -> Callable[[Any], Any]:
        if name in self.values and arg is None:
            value = self.values[name]
            return lambda evt: value
        return self.inner.accessor(name, arg)

    def event_type(self, evt: Any) -> str | None:
        return self.inner.event_type(evt)

    def __getattr__(self, item):
        return getattr(self.inner, item)
