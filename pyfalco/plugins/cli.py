# SPDX-License-Identifier: Apache-2.0
"""The plugin parts of the command line: ``--list-plugins``, ``--plugin-info``, ``--list <source>``
for plugin sources, and the ``--enable-source``/``--disable-source`` checks, as Falco has them."""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from pyfalco.plugins.api import PluginError
from pyfalco.plugins.registry import LoadedPlugin, PluginSet, load_configured, load_plugin, plugin_entry

__all__ = ["list_plugins_text", "plugin_info_text", "list_source_fields", "check_sources", "active_sources",
           "load_for_cli"]


def load_for_cli(cfg: Mapping[str, Any]) -> PluginSet:
    """The configured plugins (PluginError on failure: one line naming the plugin)."""
    return load_configured(cfg)


def _describe(p: LoadedPlugin) -> list[str]:
    out = [f"Name: {p.name}", f"Description: {p.plugin.description}", f"Contact: {p.plugin.contact}",
           f"Version: {p.version}", "Capabilities:"]
    if p.has_sourcing:
        out.append(f"  - Event Sourcing (ID={p.plugin.id}, source='{p.plugin.event_source}')")
    if p.has_extraction:
        out.append("  - Field Extraction")
    return out


def list_plugins_text(ps: PluginSet) -> str:
    """``--list-plugins``: every loaded plugin with its capabilities."""
    lines = [f"{len(ps)} Plugins Loaded:", ""]
    for p in ps:
        lines += _describe(p) + [""]
    return "\n".join(lines).rstrip("\n")


def plugin_info_text(cfg: Mapping[str, Any], name: str) -> str:
    """``--plugin-info NAME``: the plugin of the ``plugins`` entry whose name or library_path is
    ``name``, loaded with its init_config: identity, capabilities, init schema, open params."""
    entry = plugin_entry(cfg, name)
    if entry is None:
        raise PluginError(name, "no entry with this name or library_path in 'plugins'")
    p = load_plugin(entry)
    try:
        lines = _describe(p)
        lines.append(f"Required API version: {p.plugin.required_api_version}")
        if p.has_extraction:
            srcs = list(p.plugin.extract_event_sources or ())
            lines.append("Extract event sources: " + (", ".join(srcs) if srcs else
                                                       (p.event_source or "all plugin sources")))
        lines.append("")
        schema = getattr(p.plugin, "init_schema", "") or ""
        if schema:
            lines += ["Init config schema type: JSON", schema]
        else:
            lines.append("No init config schema available")
        lines.append("")
        params = p.plugin.list_open_params() if p.has_sourcing else []
        if params:
            lines.append("Suggested open params:")
            for par in params:
                value, desc = str(par.get("value", "")), str(par.get("desc", ""))
                lines.append(f"{value}" + (f": {desc}" if desc else ""))
        elif p.has_sourcing:
            lines.append("No suggested open params available")
        return "\n".join(lines)
    finally:
        p.plugin.destroy()


def _arg_suffix(spec: Any) -> str:
    if not spec.takes_arg:
        return ""
    return "[N]" if spec.arg_index and not spec.arg_key else "[key]" if spec.arg_key and not spec.arg_index else "[arg]"


def list_source_fields(ps: PluginSet, source: str | None, names_only: bool, fmt: str) -> str | None:
    """``--list`` for plugin sources: the fields of ``source`` (None: of every plugin source), per
    plugin as Falco groups them (a field class per plugin). None when no plugin serves ``source``."""
    from pyfalco.plugins.provider import GENERIC_FIELDS
    sources = ps.sources() if source is None else [source]
    if source is not None and source not in ps.sources():
        return None
    classes: list[tuple[LoadedPlugin, list[str], list]] = []
    for p in ps:
        if not p.has_extraction:
            continue
        srcs = [s for s in sources if p in ps.extractors(s)]
        if srcs:
            classes.append((p, srcs, p.fields))
    if names_only:
        names = list(GENERIC_FIELDS) if source is not None else []
        names += [f.name for _p, _s, specs in classes for f in specs if "hidden" not in f.properties]
        return "\n".join(names)
    if fmt == "json":
        return json.dumps([{"name": p.name, "desc": p.plugin.description, "event_sources": srcs,
                            "fields": [{"name": f.name, "type": f.type, "desc": f.desc, "is_list": f.is_list,
                                        "arg": {"isRequired": f.arg_required, "isIndex": f.arg_index,
                                                "isKey": f.arg_key}} for f in specs]}
                           for p, srcs, specs in classes], indent=2)
    lines: list[str] = []
    if fmt == "markdown":
        for p, srcs, specs in classes:
            lines += [f"## Field Class: {p.name}", "", p.plugin.description, "",
                      f"Event sources: {', '.join(srcs)}", "", "Name | Type | Description", ":----|:-----|:-----------"]
            lines += [f"`{f.name}{_arg_suffix(f)}` | {f.type} | {f.desc.replace('|', '/')}" for f in specs
                      if "hidden" not in f.properties]
            lines.append("")
        return "\n".join(lines)
    if source is not None:
        lines.append(f"Event Sources: {source}")
        lines += ["", "-" * 80, f"{'Field Class:':30}evt (All event types)", f"{'Event Sources:':30}{source}", ""]
        from pyfalco.fields.catalog import lookup
        for n in GENERIC_FIELDS:
            info = lookup(n)
            lines.append(f"{n:30}{info.desc if info is not None else ''}")
    for p, srcs, specs in classes:
        lines += ["", "-" * 80, f"{'Field Class:':30}{p.name} ({p.plugin.description})",
                  f"{'Event Sources:':30}{', '.join(srcs)}", ""]
        for f in specs:
            if "hidden" in f.properties:
                continue
            name = f.name + _arg_suffix(f)
            lines.append(f"{name:30}{f.desc}" if len(name) < 30 else f"{name}\n{'':30}{f.desc}")
    return "\n".join(lines)


def check_sources(known: Iterable[str], enable: list[str], disable: list[str]) -> str | None:
    """Falco's checks of ``--enable-source``/``--disable-source``: the error text, or None."""
    known = list(known)
    if enable and disable:
        return "options --enable-source and --disable-source cannot be used together"
    for src in enable + disable:
        if src not in known:
            verb = "enabling" if src in enable else "disabling"
            return f"attempted {verb} an unknown event source: {src!r} (sources: {', '.join(known)})"
    if disable and set(known) <= set(disable):
        return "attempted disabling all event sources"
    return None


def active_sources(known: Iterable[str], enable: list[str], disable: list[str]) -> list[str]:
    """The sources that run (after :func:`check_sources` passed)."""
    known = list(known)
    if enable:
        return [s for s in known if s in enable]
    return [s for s in known if s not in disable]
