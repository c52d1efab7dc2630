# SPDX-License-Identifier: Apache-2.0
"""Plugin events in capture files, as Falco has them: each event of a plugin source is a libscap
``pluginevent`` (code 322) carrying the sourcing plugin's id and the payload. Replaying a file
needs the plugin loaded: its id maps the events back to its source and its fields.

* :func:`record` writes a plugin source's events to a ``.scap`` file;
* :class:`Recorder` tees a running source's events into an open :class:`CaptureWriter`;
* :func:`read_plugin_events` reads them back as :class:`~pyfalco.plugins.api.PluginEvent`;
* :func:`replay_hook` routes the plugin events of a replayed capture to their source's rules.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator

from pyfalco.plugins.api import PluginEvent
from pyfalco.plugins.registry import PluginSet

__all__ = ["record", "Recorder", "read_plugin_events", "replay_hook", "PLUGINEVENT"]

log = logging.getLogger("pyfalco.plugins")

PLUGINEVENT = 322


class Recorder:
    """Writes every event of a source to ``writer`` (set as the source's ``on_event``)."""

    def __init__(self, writer: Any):
        self.writer = writer
        self.n = 0

    def __call__(self, evt: PluginEvent) -> None:
        self.writer.write_plugin_event(evt.ts, evt.plugin_id, evt.data)
        self.n += 1


def record(source: Any, path: str, *, max_events: int | None = None, gzip: bool = False) -> int:
    """Run ``source`` (a PluginSource) to its end (or ``max_events``) into the capture file
    ``path``; returns the number of events written."""
    from pyfalco.scap.writer import CaptureWriter
    with CaptureWriter(path, gzip=gzip) as writer:
        rec = Recorder(writer)
        source.open()
        try:
            while max_events is None or rec.n < max_events:
                batch = source.next_batch(0.1)
                if batch is None:
                    break
                for evt in batch:
                    if max_events is not None and rec.n >= max_events:
                        break
                    rec(evt)
        finally:
            source.close()
        return rec.n


def _sources_by_id(plugins: PluginSet) -> dict[int, tuple[str, str]]:
    return {p.plugin.id: (p.event_source, p.name) for p in plugins if p.has_sourcing}


def _plugin_event(e: Any, by_id: dict[int, tuple[str, str]]) -> PluginEvent | None:
    params = e.params
    pid = params.get("plugin_id")
    data = params.get("event_data")
    hit = by_id.get(pid) if isinstance(pid, int) else None
    if hit is None or not isinstance(data, (bytes, bytearray, memoryview)):
        return None
    return PluginEvent(e.num, e.ts, pid, hit[0], bytes(data), hit[1])


def read_plugin_events(path: str, plugins: PluginSet) -> Iterator[PluginEvent]:
    """The plugin events of a capture file whose plugin is in ``plugins`` (others are skipped)."""
    import pyfalco
    by_id = _sources_by_id(plugins)
    cap = pyfalco.Capture(engine="replay", capture_file=path)
    try:
        while True:
            batch = cap.next_batch(100)
            if not batch:
                if cap.eof:
                    break
                continue
            for e in batch:
                if e.type == PLUGINEVENT:
                    pe = _plugin_event(e, by_id)
                    if pe is not None:
                        yield pe
    finally:
        cap.close()


def replay_hook(engine: Any, plugins: PluginSet, providers: dict[str, Any]) -> Callable[[Any], bool]:
    """An engine event hook for ``pluginevent`` events of a replayed capture: each is matched
    against the rules of its plugin's source (Falco: a capture with plugin events replays through
    the same rules when the plugin is loaded). Events of plugins not loaded are skipped, with one
    warning per plugin id."""
    by_id = _sources_by_id(plugins)
    warned: set = set()

    def hook(ie: Any) -> bool:
        e = getattr(ie, "evt", ie)
        pe = _plugin_event(e, by_id)
        if pe is None:
            pid = e.params.get("plugin_id")
            if pid not in warned:
                warned.add(pid)
                log.warning("capture file: plugin events of plugin id %s skipped (no loaded plugin has this id)",
                            pid)
            return True
        prov = providers.get(pe.source)
        if prov is not None and getattr(prov, "start_ts", 0) is None:
            prov.start_ts = pe.ts
        engine.evaluate(pe, pe.source, pe.ts)
        return True
    return hook
