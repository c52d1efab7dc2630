# SPDX-License-Identifier: Apache-2.0
"""The event source of a sourcing plugin (the Engine <-> source protocol of :mod:`pyfalco.engine`).

:class:`PluginSource` opens a capture of the plugin with its ``open_params`` and turns each batch
of payloads into :class:`~pyfalco.plugins.api.PluginEvent` objects (numbered, time-stamped, with the
plugin's id and source). A plugin that raises or returns something that is not a batch is
isolated: the error is logged once with the plugin's name, kept in :attr:`PluginSource.error`, and
the source ends (``next_batch`` returns None) while the other sources keep running; with
``strict=True`` the :class:`~pyfalco.plugins.api.PluginError` is raised instead.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from pyfalco.plugins.api import PluginError, PluginEvent, PluginInstance
from pyfalco.plugins.provider import PluginProvider
from pyfalco.plugins.registry import LoadedPlugin, PluginSet

__all__ = ["PluginSource", "MAX_PAYLOAD"]

log = logging.getLogger("pyfalco.plugins")

#: a payload larger than this is refused as garbage (Falco's plugin events are 4-byte-length params)
MAX_PAYLOAD = 64 << 20
_NO_TS = 0xFFFFFFFFFFFFFFFF


class PluginSource:
    """Events of one plugin source. ``plugins`` supplies the extractors of the same source;
    ``params`` overrides the configured ``open_params``; ``on_event`` sees every event (recording
    to a capture file, counting)."""

    def __init__(self, loaded: LoadedPlugin, plugins: PluginSet | None = None, *, params: str | None = None,
                 provider: Any = None, strict: bool = False, hostname: str | None = None):
        if not loaded.has_sourcing:
            raise PluginError(loaded.name, "this plugin has no event sourcing capability")
        self.loaded = loaded
        self.source = loaded.event_source
        self.params = loaded.open_params if params is None else params
        self.provider = provider if provider is not None else \
            PluginProvider(self.source, plugins if plugins is not None else PluginSet([loaded]), hostname)
        self.strict = strict
        #: the error that ended the source (None: still running or ended normally)
        self.error: PluginError | None = None
        self.n_events = 0
        self.on_event: Callable[[PluginEvent], Any] | None = None
        self._instance: PluginInstance | None = None
        self._ended = False
        self._num = 0
        # close() from another thread while next_batch runs is deferred to the end of that call:
        # a C plugin's close frees what its running next_batch uses
        self._lock = threading.Lock()
        self._busy = False
        self._close_pending = False

    @property
    def busy(self) -> bool:
        """True while a next_batch call is running (a close is then deferred to its end)."""
        return self._busy

    @property
    def ended(self) -> bool:
        return self._ended

    def open(self) -> None:
        """Open the plugin's capture (PluginError naming the plugin when it fails)."""
        if self._instance is not None or self._ended:
            return
        lp = self.loaded
        try:
            inst = lp.plugin.open(self.params)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(lp.name, f"open failed: {type(exc).__name__}: {exc}") from None
        if not callable(getattr(inst, "next_batch", None)):
            raise PluginError(lp.name, f"open() returned {inst!r:.60}, not a PluginInstance")
        self._instance = inst

    def _fail(self, err: PluginError) -> None:
        self.error = err
        self._ended = True
        log.error("%s; event source '%s' stopped", err, self.source)
        self.close()
        if self.strict:
            raise err

    def next_batch(self, timeout: float) -> list[PluginEvent] | None:
        """The next events (``[]``: none within ``timeout``; None: the source ended)."""
        if self._ended:
            return None
        if self._instance is None:
            self.open()
        lp = self.loaded
        start = time.monotonic()
        with self._lock:
            inst = self._instance
            if inst is None or self._ended:
                return None
            self._busy = True
        try:
            items = inst.next_batch(timeout)
        except PluginError as exc:
            self._done()
            self._fail(exc)
            return None
        except Exception as exc:
            self._done()
            self._fail(PluginError(lp.name, f"next_batch raised {type(exc).__name__}: {exc}"))
            return None
        if self._done():
            return None
        if items is None:
            self._ended = True
            return None
        if isinstance(items, (str, bytes)) or not hasattr(items, "__iter__"):
            self._fail(PluginError(lp.name, f"next_batch returned {type(items).__name__}, not a list of events"))
            return None
        out: list[PluginEvent] = []
        now = time.time_ns()
        pid = lp.plugin.id
        name = lp.name
        for item in items:
            ts = now
            if isinstance(item, tuple) and len(item) == 2:
                ts, item = item
                if isinstance(ts, bool) or not isinstance(ts, int) or not 0 <= ts <= _NO_TS:
                    self._fail(PluginError(lp.name, f"next_batch returned the timestamp {ts!r:.40}"))
                    return None
                if ts == _NO_TS:
                    ts = now
            if isinstance(item, (bytearray, memoryview)):
                item = bytes(item)
            elif isinstance(item, str):
                item = item.encode("utf-8")
            if not isinstance(item, bytes):
                self._fail(PluginError(lp.name, f"next_batch returned a {type(item).__name__} "
                                                "event (expected bytes or (ts, bytes))"))
                return None
            if len(item) > MAX_PAYLOAD:
                self._fail(PluginError(lp.name, f"next_batch returned a {len(item)}-byte event "
                                                f"(more than {MAX_PAYLOAD})"))
                return None
            self._num += 1
            out.append(PluginEvent(self._num, ts, pid, self.source, item, name))
        if out:
            if getattr(self.provider, "start_ts", 0) is None:
                self.provider.start_ts = out[0].ts
            self.n_events += len(out)
            if self.on_event is not None:
                for evt in out:
                    self.on_event(evt)
        elif timeout > 0:
            # a plugin that answers "nothing yet" at once must not make the caller spin
            left = min(timeout, 0.05) - (time.monotonic() - start)
            if left > 0:
                time.sleep(left)
        return out

    def _done(self) -> bool:
        """End of a next_batch call: run a close asked for meanwhile; True when it did."""
        with self._lock:
            self._busy = False
            pending, self._close_pending = self._close_pending, False
        if pending:
            self.close()
        return pending

    def close(self) -> None:
        """Close the plugin's capture (harmless when repeated; from another thread while
        next_batch runs, the capture is closed when that call returns)."""
        with self._lock:
            self._ended = True
            if self._busy:
                self._close_pending = True
                return
            inst, self._instance = self._instance, None
        if inst is not None:
            try:
                inst.close()
            except Exception as exc:
                log.error("plugin '%s': close raised %s: %s", self.loaded.name, type(exc).__name__, exc)

    def __repr__(self) -> str:
        return f"<PluginSource {self.source} plugin={self.loaded.name} events={self.n_events}>"
