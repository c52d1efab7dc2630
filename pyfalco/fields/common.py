# SPDX-License-Identifier: Apache-2.0
"""What every field module shares: the event table, NotExtractable, the never-raise wrapper, and
the thread lookups (main thread, parent) the proc/user/container fields start from.

Extractors read an :class:`~pyfalco.state.event.InspectedEvent` and reach the rest of the state
through ``ie.inspector``, typed :class:`~pyfalco.fields.stateview.StateView`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import _schema
from .stateview import FieldEvent

__all__ = ["EVENTS", "PT", "EVENT_NAMES", "NEVENTS", "NotExtractable", "SAFE_ERRORS", "safe", "main_thread",
           "parent_thread", "nz"]

EVENTS = _schema.EVENTS
PT = _schema.PT
#: evt.type by event code
EVENT_NAMES = tuple(e.name for e in EVENTS)
NEVENTS = len(EVENTS)


class NotExtractable(KeyError):
    """A field name this provider cannot extract."""


#: what an extractor may run into on odd state (a value of another type, a vanished thread): None
SAFE_ERRORS = (AttributeError, TypeError, ValueError, KeyError, IndexError, OverflowError, OSError)


def safe(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``fn`` made to return None instead of raising one of SAFE_ERRORS."""
    def safe(ie: FieldEvent):
        try:
            return fn(ie)
        except SAFE_ERRORS:
            return None
    safe.__name__ = getattr(fn, "__name__", "extract")
    safe.__wrapped__ = fn
    return safe


def main_thread(ie: FieldEvent):
    """The main thread of the event's process (the event thread when its main is unknown)."""
    t = ie.thread
    if t is None:
        return None
    if t.tid == t.pid:
        return t
    m = ie.inspector.threads.threads.get(t.pid)
    return m if m is not None else t


def parent_thread(ie: FieldEvent):
    """The parent of the event's thread, as the thread table links it."""
    t = ie.thread
    if t is None:
        return None
    return ie.inspector.threads.parent(t)


def nz(s):
    """A value, or None for an empty one."""
    return s if s else None
