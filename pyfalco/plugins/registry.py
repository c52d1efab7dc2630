# SPDX-License-Identifier: Apache-2.0
"""Finding and loading plugins: the configuration's ``plugins``/``load_plugins``, as Falco reads them.

``library_path`` is resolved, in order, as:

1. a ``.so`` file (absolute, or relative to the working directory, ``/usr/share/pyfalco/plugins``
   or Falco's ``/usr/share/falco/plugins``): a Falco C plugin through :mod:`pyfalco.plugins.cabi`;
2. a dotted path ``package.module:Class``;
3. an entry point name in the group ``pyfalco.plugins`` (a distribution ships a plugin with
   ``[project.entry-points."pyfalco.plugins"] myplugin = "mypkg.mod:MyPlugin"``);
4. a built-in: ``libk8saudit.so``/``k8saudit`` and ``libjson.so``/``json`` when no such file exists.

:class:`LoadedPlugin` wraps every plugin (Python or C) and is where errors are isolated: whatever a
plugin raises or returns wrongly becomes a :class:`~pyfalco.plugins.api.PluginError` naming it.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from pyfalco.plugins.api import FieldSpec, Plugin, PluginError
from pyfalco.plugins.cabi import CPlugin, api_version_compatible
from pyfalco.plugins.schema import check_init_config

__all__ = ["LoadedPlugin", "PluginSet", "resolve", "load_plugin", "load_entries", "BUILTINS", "ENTRY_POINT_GROUP",
           "PLUGIN_DIRS"]

log = logging.getLogger("pyfalco.plugins")

ENTRY_POINT_GROUP = "pyfalco.plugins"
PLUGIN_DIRS = ("/usr/share/pyfalco/plugins", "/usr/share/falco/plugins")
BUILTINS = {
    "libk8saudit.so": "pyfalco.plugins.k8saudit:K8sAuditPlugin", "k8saudit": "pyfalco.plugins.k8saudit:K8sAuditPlugin",
    "libjson.so": "pyfalco.plugins.json_plugin:JsonPlugin", "json": "pyfalco.plugins.json_plugin:JsonPlugin",
}
_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
_DOTTED = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def _so_path(library_path: str) -> str | None:
    if os.path.isabs(library_path):
        return library_path if os.path.exists(library_path) else None
    for base in (os.getcwd(),) + PLUGIN_DIRS:
        cand = os.path.join(base, library_path)
        if os.path.exists(cand):
            return cand
    return None


def _import_dotted(spec: str, label: str) -> Any:
    mod_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(mod_name)
    except ImportError as exc:
        raise PluginError(label, f"cannot import module '{mod_name}': {exc}") from None
    except Exception as exc:  # a plugin module that fails on import is that plugin's error
        raise PluginError(label, f"importing module '{mod_name}' failed: {type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise PluginError(label, f"module '{mod_name}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    return obj


def _entry_point(name: str) -> Any:
    from importlib.metadata import entry_points
    try:
        eps = entry_points(group=ENTRY_POINT_GROUP)
    except TypeError:    # Python 3.9 (PyPy 3.9 too): no selection, a dict of groups
        eps = entry_points().get(ENTRY_POINT_GROUP, ())
    for ep in eps:
        if ep.name == name:
            return ep
    return None


def resolve(library_path: str, label: str = "") -> Callable[[], Plugin]:
    """A factory for the plugin ``library_path`` names (see the module docstring for the order);
    raises PluginError when nothing matches."""
    label = label or library_path
    if not isinstance(library_path, str) or not library_path.strip():
        raise PluginError(label, "library_path is empty")
    if library_path.endswith(".so") or os.sep in library_path:
        path = _so_path(library_path)
        if path is not None:
            return lambda: CPlugin(path, label)
        builtin = BUILTINS.get(os.path.basename(library_path))
        if builtin is not None:
            return _class_factory(_import_dotted(builtin, label), label)
        raise PluginError(label, f"cannot find plugin library '{library_path}' (looked in the working "
                                 f"directory and {', '.join(PLUGIN_DIRS)})")
    if _DOTTED.match(library_path):
        return _class_factory(_import_dotted(library_path, label), label)
    ep = _entry_point(library_path)
    if ep is not None:
        try:
            obj = ep.load()
        except Exception as exc:
            raise PluginError(label, f"entry point '{library_path}' ({ep.value}) failed to load: "
                                     f"{type(exc).__name__}: {exc}") from None
        return _class_factory(obj, label)
    builtin = BUILTINS.get(library_path)
    if builtin is not None:
        return _class_factory(_import_dotted(builtin, label), label)
    raise PluginError(label, f"cannot find plugin '{library_path}': not a .so file, a 'module:Class' path, "
                             f"an entry point of group '{ENTRY_POINT_GROUP}' or a built-in "
                             f"({', '.join(sorted(k for k in BUILTINS if not k.endswith('.so')))})")


def _class_factory(obj: Any, label: str) -> Callable[[], Plugin]:
    if isinstance(obj, type) and issubclass(obj, Plugin):
        return obj
    if isinstance(obj, Plugin):
        return lambda: obj
    raise PluginError(label, f"{obj!r:.80} is not a pyfalco.plugins.Plugin subclass")


def _config_text(init_config: Any) -> str:
    """Falco passes ``init_config`` as text: a mapping is serialised to JSON, a string as is."""
    if init_config is None:
        return ""
    if isinstance(init_config, str):
        return init_config
    return json.dumps(init_config)


@dataclass
class LoadedPlugin:
    """A plugin instance after validation and init, plus its configuration entry."""

    plugin: Plugin
    entry_name: str
    library_path: str
    init_config: str = ""
    open_params: str = ""
    fields: list[FieldSpec] = field(default_factory=list)
    #: errors of the extraction calls, per field (counted; logged once per field)
    errors: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        return self.plugin.name

    @property
    def version(self) -> str:
        return self.plugin.version

    @property
    def event_source(self) -> str:
        return self.plugin.event_source if self.has_sourcing else ""

    @property
    def has_sourcing(self) -> bool:
        return bool(self.plugin.has_sourcing())

    @property
    def has_extraction(self) -> bool:
        return bool(self.fields)

    def extract_sources(self) -> tuple[str, ...]:
        """Sources whose events this plugin extracts from (Falco's defaults when none declared:
        its own source, or every source for a plugin without one, marked by ``"*"``)."""
        declared = tuple(self.plugin.extract_event_sources or ())
        if declared:   # a sourcing plugin always extracts from its own source too (Falco)
            own = (self.plugin.event_source,) if self.has_sourcing and self.plugin.event_source not in declared else ()
            return declared + own
        return (self.plugin.event_source,) if self.has_sourcing else ("*",)

    def capabilities(self) -> list[str]:
        out = []
        if self.has_sourcing:
            out.append(f"Event Sourcing (ID={self.plugin.id}, source='{self.plugin.event_source}')")
        if self.has_extraction:
            srcs = ", ".join(self.extract_sources()) if self.plugin.extract_event_sources else \
                (self.plugin.event_source if self.has_sourcing else "all sources")
            out.append(f"Field Extraction (sources: {srcs})")
        return out

    def record_error(self, what: str, exc: BaseException) -> PluginError:
        """Count an error of this plugin; log it the first time per ``what``."""
        with self._lock:
            n = self.errors.get(what, 0) + 1
            self.errors[what] = n
        err = exc if isinstance(exc, PluginError) else \
            PluginError(self.name, f"{what} raised {type(exc).__name__}: {exc}")
        if n == 1:
            log.error("%s (further errors of this kind are counted, not logged)", err)
        return err


def _validate(plugin: Plugin, label: str) -> list[FieldSpec]:
    """Falco's load-time checks of a plugin's declared identity and fields."""
    name = getattr(plugin, "name", "")
    if not isinstance(name, str) or not name:
        raise PluginError(label, "the plugin has no name")
    for attr in ("description", "contact", "version", "required_api_version", "event_source"):
        if not isinstance(getattr(plugin, attr, None), str):
            raise PluginError(name, f"'{attr}' must be a string")
    if not _SEMVER.match(plugin.version):
        raise PluginError(name, f"invalid plugin version '{plugin.version}' (expected x.y.z)")
    if not api_version_compatible(plugin.required_api_version):
        from pyfalco.plugins.api import FRAMEWORK_API_VERSION
        raise PluginError(name, f"plugin required API version '{plugin.required_api_version}' is not compatible "
                                f"with the framework's API version '{FRAMEWORK_API_VERSION}'")
    pid = getattr(plugin, "id", 0)
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 <= pid < 2 ** 32:
        raise PluginError(name, f"invalid plugin id {pid!r} (an unsigned 32-bit integer)")
    if bool(pid) != bool(plugin.event_source):
        raise PluginError(name, f"plugin id {pid} and event source {plugin.event_source!r}: a sourcing plugin "
                                "declares both or neither")
    if plugin.event_source == "syscall":
        raise PluginError(name, "a plugin cannot source the 'syscall' event source")
    srcs = plugin.extract_event_sources or ()
    if isinstance(srcs, str) or not all(isinstance(s, str) for s in srcs):
        raise PluginError(name, "'extract_event_sources' must be a list of strings")
    try:
        specs = list(plugin.fields() or [])
    except Exception as exc:
        raise PluginError(name, f"fields() raised {type(exc).__name__}: {exc}") from None
    seen = set()
    for spec in specs:
        if not isinstance(spec, FieldSpec):
            raise PluginError(name, f"fields() returned {spec!r:.60}, not a FieldSpec")
        try:
            spec.validate()
        except ValueError as exc:
            raise PluginError(name, str(exc)) from None
        if spec.name in seen:
            raise PluginError(name, f"field '{spec.name}' is declared twice")
        seen.add(spec.name)
    if not plugin.has_sourcing() and not specs:
        raise PluginError(name, "the plugin implements neither event sourcing nor field extraction")
    if not isinstance(plugin, CPlugin):   # a declared capability must be implemented
        if plugin.has_sourcing() and type(plugin).open is Plugin.open:
            raise PluginError(name, "event sourcing capability is incomplete: open() is not implemented")
        if specs and type(plugin).extract is Plugin.extract:
            raise PluginError(name, "field extraction capability is incomplete: extract() is not implemented")
    return specs


def load_plugin(entry: Mapping[str, Any]) -> LoadedPlugin:
    """Load and init the plugin of one ``plugins:`` entry (``name``, ``library_path``,
    ``init_config``, ``open_params``); raises PluginError naming the entry on any failure."""
    label = str(entry.get("name") or entry.get("library_path") or "?")
    lib = entry.get("library_path")
    if not isinstance(lib, str):
        raise PluginError(label, "the plugins entry has no library_path")
    factory = resolve(lib, label)
    try:
        plugin = factory()
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(label, f"creating the plugin failed: {type(exc).__name__}: {exc}") from None
    specs = _validate(plugin, label)
    cfg = _config_text(entry.get("init_config"))
    schema = getattr(plugin, "init_schema", "") or ""
    if schema:   # as Falco: checked against the plugin's JSON schema before init ("" -> "{}")
        cfg = check_init_config(plugin.name, cfg, schema)
    try:
        plugin.init(cfg)
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(plugin.name, f"init failed: {type(exc).__name__}: {exc}") from None
    params = entry.get("open_params")
    return LoadedPlugin(plugin, label, lib, cfg, "" if params is None else str(params), specs)


class PluginSet:
    """The plugins of a configuration: loaded, checked against each other, by name and source."""

    def __init__(self, plugins: Iterable[LoadedPlugin] = ()):
        self.plugins: list[LoadedPlugin] = []
        for p in plugins:
            self.add(p)

    def add(self, p: LoadedPlugin) -> None:
        """Add a loaded plugin; Falco's conflicts (same name, same id or source) are errors."""
        for other in self.plugins:
            if other.name == p.name:
                raise PluginError(p.name, "a plugin with the same name is already loaded")
            if p.has_sourcing and other.has_sourcing:
                if other.plugin.id == p.plugin.id:
                    raise PluginError(p.name, f"plugin id {p.plugin.id} is already used by plugin '{other.name}'")
                if other.event_source == p.event_source:
                    raise PluginError(p.name, f"event source '{p.event_source}' is already provided by "
                                              f"plugin '{other.name}'")
        self.plugins.append(p)

    def __iter__(self):
        return iter(self.plugins)

    def __len__(self) -> int:
        return len(self.plugins)

    def get(self, name: str) -> LoadedPlugin | None:
        """A plugin by its name or its configuration entry's name."""
        for p in self.plugins:
            if p.name == name or p.entry_name == name:
                return p
        return None

    def versions(self) -> dict[str, str]:
        """Plugin name -> version, for ``required_plugin_versions``."""
        return {p.name: p.version for p in self.plugins}

    def sources(self) -> list[str]:
        """The event sources the sourcing plugins provide, in load order."""
        return [p.event_source for p in self.plugins if p.has_sourcing]

    def sourcing(self, source: str) -> LoadedPlugin | None:
        for p in self.plugins:
            if p.has_sourcing and p.event_source == source:
                return p
        return None

    def extractors(self, source: str) -> list[LoadedPlugin]:
        """Plugins that extract fields from events of ``source`` (in load order)."""
        out = []
        for p in self.plugins:
            if not p.has_extraction:
                continue
            srcs = p.extract_sources()
            if source in srcs or ("*" in srcs and source != "syscall"):
                out.append(p)
        return out

    def providers(self, hostname: str | None = None) -> dict[str, Any]:
        """A :class:`~pyfalco.plugins.provider.PluginProvider` per plugin source (PluginError when two
        plugins declare one field for the same source)."""
        from pyfalco.plugins.provider import PluginProvider
        return {src: PluginProvider(src, self, hostname) for src in self.sources()}

    def event_sources(self, providers: Mapping[str, Any] | None = None, only: Iterable[str] | None = None) -> list:
        """A :class:`~pyfalco.plugins.source.PluginSource` per plugin source (``only``: these
        sources), sharing ``providers`` (from :meth:`providers`) so rules and events agree."""
        from pyfalco.plugins.source import PluginSource
        provs = providers if providers is not None else self.providers()
        keep = None if only is None else set(only)
        return [PluginSource(p, self, provider=provs.get(p.event_source)) for p in self.plugins
                if p.has_sourcing and (keep is None or p.event_source in keep)]

    def destroy(self) -> None:
        """Destroy every plugin (errors are logged, not raised: shutdown goes on)."""
        for p in reversed(self.plugins):
            try:
                p.plugin.destroy()
            except Exception as exc:
                log.error("plugin '%s': destroy raised %s: %s", p.name, type(exc).__name__, exc)
        self.plugins = []


def load_configured(cfg: Mapping[str, Any]) -> PluginSet:
    """The plugins named by ``load_plugins`` from the ``plugins`` entries (Falco: an empty
    ``load_plugins`` loads none). Raises PluginError (one line naming the plugin) on failure."""
    wanted = list(cfg.get("load_plugins") or [])
    entries = list(cfg.get("plugins") or [])
    by_name: dict[str, Mapping] = {}
    for i, e in enumerate(entries):
        if not isinstance(e, Mapping):
            raise PluginError("", f"plugins[{i}]: expected a map with name, library_path, init_config, open_params")
        name = e.get("name")
        if not isinstance(name, str) or not name:
            raise PluginError("", f"plugins[{i}]: missing 'name'")
        unknown = set(e) - {"name", "library_path", "init_config", "open_params"}
        if unknown:
            log.warning("plugins[%d] (%s): unknown key(s) %s ignored", i, name, ", ".join(sorted(map(str, unknown))))
        by_name.setdefault(name, e)
    for name in wanted:
        if name not in by_name:
            raise PluginError(name, "cannot load: no entry with this name in 'plugins'")
    return load_entries(by_name[name] for name in wanted)


def load_entries(entries: Iterable[Mapping[str, Any]]) -> PluginSet:
    """Load ``plugins`` entries in order into one PluginSet, checked as Falco checks a
    configuration's plugins (conflicting names, ids, sources; an extractor must serve a source
    that exists). On any failure every plugin loaded so far is destroyed and the error raised."""
    out = PluginSet()
    try:
        for entry in entries:
            if not isinstance(entry, Mapping):
                raise PluginError("", f"plugins: expected a map with name, library_path, init_config, open_params, "
                                      f"found {type(entry).__name__}")
            loaded = load_plugin(entry)
            try:
                out.add(loaded)
            except BaseException:
                loaded.plugin.destroy()
                raise
        known = {"syscall", *out.sources()}
        for p in out:   # Falco: an extractor must serve at least one source that exists
            if p.has_extraction and not p.has_sourcing and p.plugin.extract_event_sources \
                    and not known & set(p.plugin.extract_event_sources):
                raise PluginError(p.name, "has field extraction capability but is not compatible with any known "
                                          f"event source (it extracts from: {', '.join(p.plugin.extract_event_sources)})")
    except BaseException:
        out.destroy()
        raise
    return out


def plugin_entry(cfg: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """The ``plugins`` entry whose name or library_path is ``name`` (``--plugin-info``)."""
    for e in cfg.get("plugins") or []:
        if isinstance(e, Mapping) and name in (e.get("name"), e.get("library_path")):
            return e
    return None

