# SPDX-License-Identifier: Apache-2.0
"""The agent's plugin setup: the configured plugins, their providers and the sources that run.

Falco runs every enabled source at once (syscall on the main loop, each plugin source on its own
thread); ``--enable-source``/``--disable-source`` pick them (no effect when replaying a capture
file, where the file's events are the input).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from pyfalco.plugins.api import PluginError
from pyfalco.plugins.cli import active_sources, check_sources
from pyfalco.plugins.registry import PluginSet, load_configured

__all__ = ["AgentPlugins", "setup_plugins"]

log = logging.getLogger("pyfalco.plugins")


@dataclass
class AgentPlugins:
    """What the agent needs from its plugins."""

    plugins: PluginSet
    #: source -> provider, for every plugin source (rules of each compile against these)
    providers: dict[str, Any] = field(default_factory=dict)
    #: the plugin sources that run (PluginSource objects)
    sources: list = field(default_factory=list)
    #: whether the syscall source runs
    syscall: bool = True
    #: fields extractor plugins add to syscall events (None: no such plugin)
    syscall_provider: Any = None

    def extend(self, provider: Any) -> Any:
        """The syscall provider with the syscall extractors' fields chained after it."""
        if self.syscall_provider is None:
            return provider
        from pyfalco.plugins.provider import ChainProvider
        return ChainProvider(provider, self.syscall_provider)

    def versions(self) -> dict[str, str]:
        return self.plugins.versions()

    def metrics(self) -> dict:
        """``<plugin>.<metric>`` values, as Falco names plugin metrics: the framework's counters
        (events of its source, extraction errors) and what the plugin's ``metrics()`` returns."""
        out: dict = {}
        n_by_plugin = {src.loaded.name: src.n_events for src in self.sources}
        for lp in self.plugins:
            if lp.name in n_by_plugin:
                out[f"{lp.name}.n_evts"] = n_by_plugin[lp.name]
            if lp.has_extraction:
                out[f"{lp.name}.n_extract_errors"] = sum(lp.errors.values())
            try:
                own = lp.plugin.metrics()
            except Exception as exc:  # a plugin's metrics must not stop the snapshot
                lp.record_error("metrics", exc)
                continue
            if isinstance(own, dict):
                for k, v in own.items():
                    if isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool):
                        out[f"{lp.name}.{k}"] = v
        return out

    def close(self) -> None:
        for src in self.sources:
            src.close()
        if any(src.busy for src in self.sources):
            # a source thread is still inside the plugin (it did not return within the engine's
            # join timeout): destroying the plugin under it could crash; the process is ending
            log.warning("a plugin source did not stop in time: its plugin is not destroyed")
            return
        self.plugins.destroy()


def setup_plugins(cfg: Mapping[str, Any], hostname: str | None = None, enable: Sequence[str] = (),
                  disable: Sequence[str] = (), *, open_sources: bool = True) -> AgentPlugins:
    """Load ``cfg``'s plugins and decide which sources run (opened unless ``open_sources`` is
    False: rules-only uses such as --dry-run); PluginError (one line) on failure."""
    ps = load_configured(cfg)
    try:
        providers = ps.providers(hostname)
        known = ["syscall"] + ps.sources()
        problem = check_sources(known, list(enable), list(disable))
        if problem:
            raise PluginError("", problem)
        replay = cfg.get("engine", {}).get("kind") == "replay"
        active = ["syscall"] if replay else active_sources(known, list(enable), list(disable))
        sources = ps.event_sources(providers, only=active)
        try:  # opened now: a source that cannot open stops the start with its error, as in Falco
            for src in (sources if open_sources else ()):
                src.open()
        except BaseException:
            for src in sources:
                src.close()
            raise
        from pyfalco.plugins.provider import SyscallPluginProvider
        syscall_ext = SyscallPluginProvider(ps)
        return AgentPlugins(ps, providers, sources, "syscall" in active, syscall_ext if syscall_ext else None)
    except BaseException:
        ps.destroy()
        raise
