# SPDX-License-Identifier: Apache-2.0
"""The field provider (:class:`pyfalco.rules.provider.FieldProvider`) of a plugin event source.

A plugin source's events carry the fields of its sourcing plugin (when it extracts from its own
source), of every extractor plugin that declares the source, and Falco's generic event fields
(``evt.num``, ``evt.time``, ``evt.pluginname``, ``evt.plugininfo``, ``evt.source``, ...). Two
plugins declaring the same field for one source is an error at load, as in Falco.

Extraction is isolated: a plugin that raises, or returns a value of the wrong type for its field,
makes the field ``<NA>`` for that event and is reported once per field with an error naming the
plugin (counted in :attr:`LoadedPlugin.errors`); rules and other sources go on.
"""

from __future__ import annotations

import ipaddress
import socket
import time as _time
from typing import Any, Callable

from pyfalco.fields.catalog import FieldInfo, lookup
from pyfalco.plugins.api import FieldSpec, PluginError, PluginEvent
from pyfalco.plugins.registry import LoadedPlugin, PluginSet

__all__ = ["PluginProvider", "SyscallPluginProvider", "GENERIC_FIELDS", "ChainProvider", "field_info_of",
           "plugin_accessor"]

#: Falco's generic fields of plugin events (libsinsp's gen_event filtercheck)
GENERIC_FIELDS = ("evt.num", "evt.time", "evt.time.s", "evt.time.iso8601", "evt.datetime", "evt.datetime.s",
                  "evt.rawtime", "evt.rawtime.s", "evt.rawtime.ns", "evt.reltime", "evt.reltime.s",
                  "evt.reltime.ns", "evt.pluginname", "evt.plugininfo", "evt.source", "evt.is_async",
                  "evt.asynctype", "evt.hostname")

_TYPES = {"string": "CHARBUF", "uint64": "UINT64", "bool": "BOOL", "reltime": "RELTIME", "abstime": "ABSTIME",
          "ipaddr": "IPADDR", "ipnet": "IPNET"}


def field_info_of(spec: FieldSpec) -> FieldInfo:
    """The rule engine's view of a plugin field."""
    if spec.arg_required:
        arg = "required"
    elif spec.arg_index:
        arg = "index"
    elif spec.arg_key:
        arg = "optional"
    else:
        arg = "none"
    return FieldInfo(spec.name, _TYPES[spec.type], spec.desc, arg, spec.is_list)


def _fmt(ts: int, date: bool, ns: bool) -> str:
    secs, frac = divmod(ts, 1_000_000_000)
    out = _time.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S", _time.localtime(secs))
    return f"{out}.{frac:09d}" if ns else out


def _iso(ts: int) -> str:
    secs, frac = divmod(ts, 1_000_000_000)
    return _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(secs)) + f".{frac:09d}Z"


class PluginProvider:
    """Fields of one plugin source's events (:class:`~pyfalco.plugins.api.PluginEvent`)."""

    def __init__(self, source: str, plugins: PluginSet, hostname: str | None = None):
        self.source = source
        self.sourcing = plugins.sourcing(source)
        self.hostname = hostname if hostname is not None else socket.gethostname()
        #: ts of the first event (evt.reltime); set by the event source
        self.start_ts: int | None = None
        self._fields: dict[str, tuple[FieldSpec, LoadedPlugin]] = {}
        for lp in plugins.extractors(source):
            for spec in lp.fields:
                other = self._fields.get(spec.name)
                if other is not None:
                    raise PluginError(lp.name, f"field '{spec.name}' for source '{source}' is already "
                                               f"provided by plugin '{other[1].name}'")
                if spec.name in GENERIC_FIELDS:
                    raise PluginError(lp.name, f"field '{spec.name}' overlaps a generic event field")
                self._fields[spec.name] = (spec, lp)
        self._info = {name: field_info_of(spec) for name, (spec, _lp) in self._fields.items()}
        for name in GENERIC_FIELDS:
            info = lookup(name)
            if info is not None:
                self._info[name] = info

    # ---- FieldProvider ------------------------------------------------------------------------
    def field_info(self, name: str) -> FieldInfo | None:
        return self._info.get(name)

    def event_type(self, evt: Any) -> str | None:
        return None  # plugin-source rules are not indexed by event type

    def plugin_of(self, name: str) -> str | None:
        """The name of the plugin that provides field ``name`` (None for generic fields)."""
        hit = self._fields.get(name)
        return hit[1].name if hit is not None else None

    def fields(self) -> list[tuple[FieldSpec, LoadedPlugin]]:
        """The plugin fields of this source, in declaration order."""
        return list(self._fields.values())

    def accessor(self, name: str, arg: str | None) -> Callable[[Any], Any]:
        hit = self._fields.get(name)
        if hit is not None:
            return self._plugin_accessor(hit[0], hit[1], arg)
        return self._generic(name)

    def _generic(self, name: str) -> Callable[[Any], Any]:
        def plugin_name(e: PluginEvent) -> str | None:
            if e.plugin_name:
                return e.plugin_name
            return self.sourcing.name if self.sourcing is not None else None

        def plugin_info(e: PluginEvent) -> str | None:
            if self.sourcing is None:
                return None
            try:
                text = self.sourcing.plugin.event_to_string(e)
            except Exception as exc:
                self.sourcing.record_error("event_to_string", exc)
                return None
            return text if isinstance(text, str) else None

        def reltime(e: PluginEvent) -> int:
            return e.ts - (self.start_ts if self.start_ts is not None else e.ts)

        table: dict[str, Callable[[PluginEvent], Any]] = {
            "evt.num": lambda e: e.num,
            "evt.time": lambda e: _fmt(e.ts, False, True),
            "evt.time.s": lambda e: _fmt(e.ts, False, False),
            "evt.time.iso8601": lambda e: _iso(e.ts),
            "evt.datetime": lambda e: _fmt(e.ts, True, True),
            "evt.datetime.s": lambda e: _fmt(e.ts, True, False),
            "evt.rawtime": lambda e: e.ts,
            "evt.rawtime.s": lambda e: e.ts // 1_000_000_000,
            "evt.rawtime.ns": lambda e: e.ts % 1_000_000_000,
            "evt.reltime": reltime,
            "evt.reltime.s": lambda e: reltime(e) // 1_000_000_000,
            "evt.reltime.ns": lambda e: reltime(e) % 1_000_000_000,
            "evt.pluginname": plugin_name,
            "evt.plugininfo": plugin_info,
            "evt.source": lambda e: e.source,
            "evt.is_async": lambda e: False,
            "evt.asynctype": lambda e: None,
            "evt.hostname": lambda e: self.hostname,
        }
        fn = table.get(name)
        if fn is None:
            return lambda e: None
        return fn

    def _plugin_accessor(self, spec: FieldSpec, lp: LoadedPlugin, arg: str | None) -> Callable[[Any], Any]:
        return plugin_accessor(spec, lp, arg, PluginEvent)


def plugin_accessor(spec: FieldSpec, lp: LoadedPlugin, arg: str | None,
                    only: type | None = None) -> Callable[[Any], Any]:
    """``evt -> value`` of a plugin field, isolated: what the plugin raises or returns wrongly is
    <NA> and reported (once per field). ``only``: the event class the field applies to."""
    plugin = lp.plugin
    name = spec.name
    key = name if arg is None else f"{name}[{arg}]"
    check = _checker(spec)
    if spec.arg_index and not spec.arg_key and arg is not None and not arg.isdigit():
        return lambda evt: None  # a non-numeric index extracts nothing

    def extract(evt: Any) -> Any:
        if only is not None and not isinstance(evt, only):
            return None
        try:
            value = plugin.extract(evt, name, arg)
        except Exception as exc:
            lp.record_error(f"extract of field '{key}'", exc)
            return None
        if value is None:
            return None
        try:
            return check(value)
        except (TypeError, ValueError) as exc:
            lp.record_error(f"extract of field '{key}'",
                            PluginError(lp.name, f"extract of field '{key}' returned {exc}"))
            return None
    return extract


class SyscallPluginProvider:
    """The fields extractor plugins add to syscall events (plugins whose ``extract_event_sources``
    name ``syscall``): chained after the syscall provider (:class:`ChainProvider`). A Python
    plugin's ``extract`` receives the inspector's event (``evt.get("proc.name")`` reads other
    fields); a C plugin receives the libscap event bytes."""

    def __init__(self, plugins: PluginSet):
        self._fields: dict[str, tuple[FieldSpec, LoadedPlugin]] = {}
        for lp in plugins:
            if lp.has_extraction and "syscall" in (lp.plugin.extract_event_sources or ()):
                for spec in lp.fields:
                    other = self._fields.get(spec.name)
                    if other is not None:
                        raise PluginError(lp.name, f"field '{spec.name}' for source 'syscall' is already "
                                                   f"provided by plugin '{other[1].name}'")
                    self._fields[spec.name] = (spec, lp)
        self._info = {name: field_info_of(spec) for name, (spec, _lp) in self._fields.items()}

    def __bool__(self) -> bool:
        return bool(self._fields)

    def field_info(self, name: str) -> FieldInfo | None:
        return self._info.get(name)

    def accessor(self, name: str, arg: str | None) -> Callable[[Any], Any]:
        hit = self._fields.get(name)
        if hit is None:
            return lambda evt: None
        return plugin_accessor(hit[0], hit[1], arg)

    def event_type(self, evt: Any) -> str | None:
        return None

    def plugin_of(self, name: str) -> str | None:
        hit = self._fields.get(name)
        return hit[1].name if hit is not None else None


def _checker(spec: FieldSpec) -> Callable[[Any], Any]:
    """A function that checks/converts one extracted value to what the rule engine expects."""
    t = spec.type

    def one(v: Any) -> Any:
        if t == "string":
            if isinstance(v, bytes):
                return v.decode("utf-8", "replace")
            if not isinstance(v, str):
                raise TypeError(f"{type(v).__name__} {v!r:.40} for a string field")
            return v
        if t == "bool":
            if isinstance(v, bool):
                return v
            if isinstance(v, int) and v in (0, 1):
                return bool(v)
            raise TypeError(f"{type(v).__name__} {v!r:.40} for a bool field")
        if t in ("uint64", "reltime", "abstime"):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{type(v).__name__} {v!r:.40} for a {t} field")
            if not 0 <= v < 2 ** 64:
                raise ValueError(f"{v} out of the {t} range")
            return v
        if t == "ipaddr":
            if isinstance(v, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
                return v
            if isinstance(v, str):
                return ipaddress.ip_address(v)
            raise TypeError(f"{type(v).__name__} {v!r:.40} for an ipaddr field")
        if t == "ipnet":   # Falco's ipnet values are addresses (matched against networks in rules)
            if isinstance(v, (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network,
                              ipaddress.IPv6Network)):
                return v
            if isinstance(v, str):
                return ipaddress.ip_network(v, strict=False) if "/" in v else ipaddress.ip_address(v)
            raise TypeError(f"{type(v).__name__} {v!r:.40} for an ipnet field")
        raise TypeError(f"unknown field type {t}")

    if spec.is_list:
        def many(v: Any) -> Any:
            if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple)):
                raise TypeError(f"{type(v).__name__} {v!r:.40} for a list field")
            return tuple(one(x) for x in v)
        return many
    return one


class ChainProvider:
    """A provider extended with extra fields from other providers (first one that knows a field
    wins): the syscall source plus extractor plugins, or any source plus additions."""

    def __init__(self, base: Any, *extra: Any):
        self.base = base
        self.extra = extra

    def field_info(self, name: str) -> FieldInfo | None:
        info = self.base.field_info(name)
        if info is not None:
            return info
        for p in self.extra:
            info = p.field_info(name)
            if info is not None:
                return info
        return None

    def accessor(self, name: str, arg: str | None) -> Callable[[Any], Any]:
        if self.base.field_info(name) is not None:
            return self.base.accessor(name, arg)
        for p in self.extra:
            if p.field_info(name) is not None:
                return p.accessor(name, arg)
        return self.base.accessor(name, arg)

    def event_type(self, evt: Any) -> str | None:
        return self.base.event_type(evt)

    def __getattr__(self, attr: str) -> Any:  # the base's other attributes (render helpers, ...)
        return getattr(self.base, attr)
