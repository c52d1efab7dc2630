# SPDX-License-Identifier: Apache-2.0
"""The Python plugin API: Falco's plugin semantics (sourcing + extraction capabilities), Pythonic.

A plugin is a subclass of :class:`Plugin`. One instance is created per configured plugin entry;
the framework calls :meth:`Plugin.init` with the entry's ``init_config`` (as text: JSON text when
the configuration gave a mapping, else the string as written, ``""`` when absent), then:

* **event sourcing** (``event_source`` non-empty): :meth:`Plugin.open` with ``open_params`` returns
  a :class:`PluginInstance` whose :meth:`PluginInstance.next_batch` yields event payloads;
  the framework wraps each payload in a :class:`PluginEvent` (``pluginevent`` in libscap terms:
  the plugin id plus an opaque byte payload);
* **field extraction** (:meth:`Plugin.fields` non-empty): :meth:`Plugin.extract` is called per
  field use per event, for events of the plugin's own source and of ``extract_event_sources``.

A minimal source (see docs/plugins.md for a complete example)::

    class Ticks(Plugin):
        name = "ticks"; description = "counts"; contact = "me"; version = "0.1.0"
        id = 999; event_source = "ticks"
        def fields(self):
            return [FieldSpec("tick.n", "uint64", desc="the counter")]
        def open(self, params):
            return TickInstance(int(params or 3))
        def extract(self, evt, field, arg):
            return int(evt.data)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field as _dc_field
from typing import Any, ClassVar, Sequence, Union

__all__ = ["Plugin", "PluginInstance", "PluginEvent", "FieldSpec", "PluginError", "FIELD_TYPES",
           "FRAMEWORK_API_VERSION", "BatchItem"]

#: The plugin API version this framework implements (Falco's ``PLUGIN_API_VERSION``): a plugin's
#: ``required_api_version`` must have the same major and a minor (then patch) not above it.
FRAMEWORK_API_VERSION = "3.3.0"

#: Falco's plugin field types (``get_fields`` JSON ``type`` values).
FIELD_TYPES = ("string", "uint64", "bool", "reltime", "abstime", "ipaddr", "ipnet")


class PluginError(Exception):
    """A plugin failed (load, init, open, next_batch, extract): the message names the plugin."""

    def __init__(self, plugin: str, message: str):
        super().__init__(f"plugin '{plugin}': {message}" if plugin else message)
        self.plugin = plugin
        self.detail = message


@dataclass(frozen=True)
class FieldSpec:
    """One extractable field, as a plugin declares it (Falco's ``get_fields`` entry).

    ``type`` is one of :data:`FIELD_TYPES`. ``is_list``: the field yields a list of values.
    ``arg_required``/``arg_index``/``arg_key``: the field takes ``name[arg]`` (numeric index or
    string key; required or optional). ``properties`` are Falco's free-form flags (``hidden``,
    ``info``, ``conversation``); ``add_output`` marks a field suggested for outputs.
    """

    name: str
    type: str
    is_list: bool = False
    arg_required: bool = False
    arg_index: bool = False
    arg_key: bool = False
    display: str = ""
    desc: str = ""
    properties: tuple[str, ...] = ()
    add_output: bool = False

    def validate(self) -> None:
        """Raise ValueError when the spec is not one Falco would accept."""
        if not isinstance(self.name, str) or not self.name or any(c.isspace() for c in self.name):
            raise ValueError(f"invalid field name {self.name!r}")
        if self.type not in FIELD_TYPES:
            raise ValueError(f"field '{self.name}': unknown type {self.type!r} (one of {', '.join(FIELD_TYPES)})")
        if self.arg_required and not (self.arg_index or self.arg_key):
            raise ValueError(f"field '{self.name}': a required argument must be an index or a key")

    @property
    def takes_arg(self) -> bool:
        """True when ``name[arg]`` is accepted."""
        return self.arg_required or self.arg_index or self.arg_key

    def to_json(self) -> dict[str, Any]:
        """The ``get_fields`` JSON object of this field."""
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.is_list:
            out["isList"] = True
        if self.takes_arg:
            out["arg"] = {"isRequired": self.arg_required, "isIndex": self.arg_index, "isKey": self.arg_key}
        if self.display:
            out["display"] = self.display
        out["desc"] = self.desc
        if self.properties:
            out["properties"] = list(self.properties)
        if self.add_output:
            out["addOutput"] = True
        return out

    @classmethod
    def from_json(cls, obj: Any) -> "FieldSpec":
        """A spec from one ``get_fields`` JSON object; ValueError when malformed."""
        if not isinstance(obj, dict):
            raise ValueError(f"field entry is not an object: {obj!r:.80}")
        arg = obj.get("arg") or {}
        if not isinstance(arg, dict):
            raise ValueError(f"field {obj.get('name')!r}: 'arg' is not an object")
        props = obj.get("properties") or ()
        if isinstance(props, str):
            props = (props,)
        spec = cls(name=obj.get("name"), type=obj.get("type"), is_list=bool(obj.get("isList", False)),
                   arg_required=bool(arg.get("isRequired", False)), arg_index=bool(arg.get("isIndex", False)),
                   arg_key=bool(arg.get("isKey", False)), display=str(obj.get("display") or ""),
                   desc=str(obj.get("desc") or ""), properties=tuple(str(p) for p in props),
                   add_output=bool(obj.get("addOutput", False)))
        spec.validate()
        return spec


@dataclass
class PluginEvent:
    """One event of a plugin source (libscap's ``pluginevent``, code 322).

    ``num``: the framework's event number; ``ts``: ns since the epoch; ``plugin_id``: the id of the
    sourcing plugin; ``source``: its event source name; ``data``: the opaque payload the plugin
    produced. ``plugin_name`` is filled by the framework (``evt.pluginname``).
    """

    num: int
    ts: int
    plugin_id: int
    source: str
    data: bytes
    plugin_name: str = ""
    # per-event cache for extractors (e.g. a parsed JSON document); not part of the event's data
    cache: dict = _dc_field(default_factory=dict, repr=False, compare=False)


#: An item of a batch: a payload (the framework stamps the current time) or ``(ts_ns, payload)``.
BatchItem = Union[bytes, "tuple[int, bytes]"]


class PluginInstance:
    """An open capture of a sourcing plugin (Falco's ``ss_instance_t``)."""

    def next_batch(self, timeout: float) -> Sequence[BatchItem] | None:
        """The next events: payloads (``bytes``) or ``(ts_ns, payload)`` pairs.

        Return ``[]`` when nothing arrived within ``timeout`` seconds, ``None`` at the end of the
        stream (a file read to its end). Raise to report an error (the source stops with it).
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release what :meth:`Plugin.open` acquired."""

    def progress(self) -> tuple[float, str] | None:
        """Optional read progress (fraction 0..1, text), None when unknown."""
        return None


class Plugin:
    """Base class of Python plugins. Subclass it; set the class attributes; override methods.

    ``id`` is Falco's registered plugin id for sourcing plugins (k8saudit = 1); ``event_source``
    names the source rules use (``source: k8s_audit``); ``extract_event_sources`` lists the sources
    whose events :meth:`extract` accepts (empty: its own source only, or every source for a plugin
    without a source of its own, as Falco does).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    contact: ClassVar[str] = ""
    version: ClassVar[str] = "0.0.0"
    required_api_version: ClassVar[str] = "3.0.0"
    id: ClassVar[int] = 0
    event_source: ClassVar[str] = ""
    extract_event_sources: ClassVar[Sequence[str]] = ()
    #: JSON schema text of ``init_config`` (Falco's ``get_init_schema``); "" = none
    init_schema: ClassVar[str] = ""

    def init(self, config: str) -> None:
        """Initialise from ``init_config`` (text). Raise to fail the load."""

    def destroy(self) -> None:
        """Release everything (called once, at shutdown)."""

    def fields(self) -> list[FieldSpec]:
        """The fields this plugin extracts (empty: no extraction capability)."""
        return []

    def open(self, params: str) -> PluginInstance:
        """Open a capture with ``open_params`` (sourcing plugins only)."""
        raise PluginError(self.name, "this plugin has no event sourcing capability")

    def extract(self, evt: PluginEvent, field: str, arg: str | None) -> Any:
        """The value of ``field`` (with its ``[arg]`` text or None) for ``evt``.

        Return a ``str``/``int``/``bool`` per the field type (a list for ``is_list`` fields), or
        None for Falco's ``<NA>`` (the field does not apply to this event).
        """
        return None

    def event_to_string(self, evt: PluginEvent) -> str:
        """One-line summary of an event (``evt.plugininfo``); default: the payload as text."""
        return evt.data.decode("utf-8", "replace")

    def list_open_params(self) -> list[dict[str, str]]:
        """Suggested ``open_params`` values: ``[{"value": ..., "desc": ...}]``."""
        return []

    def metrics(self) -> dict[str, int | float]:
        """Optional counters for the agent's metrics snapshot (``<plugin name>.<key>``)."""
        return {}

    # ---- helpers used by the framework (not meant to be overridden) ---------------------------
    @classmethod
    def has_sourcing(cls) -> bool:
        """True when the plugin implements an event source."""
        return bool(cls.event_source)

    def info(self) -> dict[str, Any]:
        """Name, versions and capabilities, as ``--plugin-info`` shows them."""
        return {"name": self.name, "description": self.description, "contact": self.contact,
                "version": self.version, "required_api_version": self.required_api_version,
                "id": self.id, "event_source": self.event_source,
                "extract_event_sources": list(self.extract_event_sources),
                "init_schema": self.init_schema}


def fields_to_json(specs: Sequence[FieldSpec]) -> str:
    """The ``get_fields`` JSON text of a list of specs."""
    return json.dumps([s.to_json() for s in specs])
