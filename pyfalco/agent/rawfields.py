# SPDX-License-Identifier: Apache-2.0
"""A field provider over raw events, for when no state inspector is available.

It serves the fields one event carries by itself (``evt.*``, ``thread.tid``); every other
catalog field is known (so any Falco ruleset loads) but has no value (``<NA>``/null). The agent
uses the stateful inspector of ``pyfalco.state`` when that package is installed and this
provider otherwise. :class:`StaticFields` adds the ``static.<name>`` fields of the
``static_fields`` configuration to any provider.
"""

from __future__ import annotations

import datetime as _dt
import errno as _errno
import socket
from typing import Any, Callable, Mapping

from pyfalco import _schema
from pyfalco.fields.catalog import FieldInfo, lookup

__all__ = ["RawProvider", "RawInspector", "StaticFields", "EVENT_NAMES"]

#: event type name by code (one tuple index per event, no property lookups)
EVENT_NAMES: tuple = tuple(e.name for e in _schema.EVENTS)
_CATEGORY = tuple(next((c.lower() for c in sorted(e.category) if c not in ("SYSCALL", "TRACEPOINT")), "other")
                  for e in _schema.EVENTS)
_RES_TYPES = frozenset((_schema.PT["ERRNO"], _schema.PT["FD"], _schema.PT["PID"]))
_RES_INDEX = tuple(0 if e.params and e.params[0].type in _RES_TYPES and e.code % 2 == 1 else -1
                   for e in _schema.EVENTS)
_NONE = (lambda evt: None)
_HOST = socket.gethostname()

# scap open flags (PPM_O_*)
_O_RDONLY, _O_WRONLY, _O_CREAT = 1, 2, 4
_OPEN_EVENTS = frozenset(("open", "openat", "openat2", "open_by_handle_at", "creat"))


def _local(ns: int) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(ns // 1_000_000_000).astimezone()


def _param_text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).replace(b"\x00", b" ").strip().decode("utf-8", "surrogateescape")
    return str(v)


def _res(evt) -> int | None:
    i = _RES_INDEX[evt.type] if evt.type < len(_RES_INDEX) else -1
    return evt.param(i) if i >= 0 and evt.nparams > 0 else None


def _evt_res(evt) -> str | None:
    r = _res(evt)
    if r is None:
        return None
    if r < 0:
        return _errno.errorcode.get(-r, str(r))
    return "SUCCESS"


def _open_flags(evt) -> int | None:
    if EVENT_NAMES[evt.type] not in _OPEN_EVENTS:
        return None
    return evt.get("flags")


def _arg_getter(arg: str, raw: bool) -> Callable[[Any], Any]:
    if arg.lstrip("-").isdigit():
        idx = int(arg)

        def by_index(evt):
            v = evt.param(idx) if idx < evt.nparams else None
            return v if raw else _param_text(v)
        return by_index

    def by_name(evt):
        v = evt.get(arg)
        return v if raw else _param_text(v)
    return by_name


_FIXED: dict[str, Callable[[Any], Any]] = {
    "evt.num": lambda e: e.num,
    "evt.type": lambda e: EVENT_NAMES[e.type],
    "syscall.type": lambda e: EVENT_NAMES[e.type],
    "evt.category": lambda e: _CATEGORY[e.type],
    "evt.cpu": lambda e: e.cpu,
    "evt.dir": lambda e: ">" if e.type % 2 == 0 else "<",
    "evt.rawtime": lambda e: e.ts,
    "evt.rawtime.s": lambda e: e.ts // 1_000_000_000,
    "evt.rawtime.ns": lambda e: e.ts % 1_000_000_000,
    "evt.time": lambda e: f"{_local(e.ts):%H:%M:%S}.{e.ts % 1_000_000_000:09d}",
    "evt.time.s": lambda e: f"{_local(e.ts):%H:%M:%S}",
    "evt.time.iso8601": lambda e: f"{_local(e.ts):%Y-%m-%dT%H:%M:%S}.{e.ts % 1_000_000_000:09d}{_local(e.ts):%z}",
    "evt.datetime": lambda e: f"{_local(e.ts):%Y-%m-%d %H:%M:%S}.{e.ts % 1_000_000_000:09d}",
    "evt.datetime.s": lambda e: f"{_local(e.ts):%Y-%m-%d %H:%M:%S}",
    "evt.source": lambda e: "syscall",
    "evt.hostname": lambda e: _HOST,
    "evt.is_async": lambda e: False,
    "evt.res": _evt_res,
    "evt.rawres": _res,
    "evt.failed": lambda e: (lambda r: r is not None and r < 0)(_res(e)),
    "evt.count": lambda e: 1,
    "evt.args": lambda e: " ".join(f"{k}={_param_text(v)}" for k, v in e.params.items()),
    "evt.info": lambda e: " ".join(f"{k}={_param_text(v)}" for k, v in e.params.items()),
    "evt.is_open_read": lambda e: (lambda f: None if f is None else bool(f & _O_RDONLY))(_open_flags(e)),
    "evt.is_open_write": lambda e: (lambda f: None if f is None else bool(f & _O_WRONLY))(_open_flags(e)),
    "evt.is_open_create": lambda e: (lambda f: None if f is None else bool(f & _O_CREAT))(_open_flags(e)),
    "thread.tid": lambda e: e.tid,
}


class RawProvider:
    """FieldProvider over :class:`pyfalco.Event`: evt.* from the event itself, the rest <NA>."""

    def field_info(self, name: str) -> FieldInfo | None:
        return lookup(name)

    def accessor(self, name: str, arg: str | None) -> Callable[[Any], Any]:
        if name in ("evt.arg", "evt.rawarg") and arg is not None:
            return _arg_getter(arg, name == "evt.rawarg")
        if arg is None and name.startswith(("evt.arg.", "evt.rawarg.")):
            base, _, a = name.partition(".arg.") if ".arg." in name else name.partition(".rawarg.")
            return _arg_getter(a, "rawarg" in name)
        return _FIXED.get(name, _NONE)

    def event_type(self, evt: Any) -> str | None:
        return EVENT_NAMES[evt.type] if evt.type < len(EVENT_NAMES) else None


class RawInspector:
    """The inspector interface the agent drives, without state: ``process`` returns the event."""

    name = "raw"

    def __init__(self, capture: Any = None):
        self.provider = RawProvider()

    def process(self, evt: Any) -> Any:
        return evt

    def stats(self) -> dict:
        return {}


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
