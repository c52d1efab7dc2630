# SPDX-License-Identifier: Apache-2.0
"""InspectedEvent: one event plus the state it was parsed against (what field accessors read)."""

from __future__ import annotations

from typing import Any

__all__ = ["InspectedEvent"]


class InspectedEvent:
    """An event after the state engine has parsed it.

    ``evt`` is the decoded :class:`pyfalco.events.Event`; ``thread`` the thread that made it
    (None if unknown), ``fd`` the file descriptor it is about (the new one for open/socket/accept,
    the duplicated one for dup*, the closed one for close) and ``fdnum`` its number (-1 if none).
    ``name_changed`` is fd.name_changed. Field values that cost something are cached in ``cache``.
    """

    __slots__ = ("evt", "inspector", "thread", "fd", "fdnum", "name_changed", "cache", "extra", "prev_ts")

    def __init__(self, evt: Any, inspector: Any, thread: Any = None, fd: Any = None, fdnum: int = -1):
        self.evt = evt
        self.inspector = inspector
        self.thread = thread
        self.fd = fd
        self.fdnum = fdnum
        self.name_changed = False
        self.cache: dict | None = None
        self.extra: Any = None      # fds of two-fd events (pipe, socketpair)
        self.prev_ts: int | None = None

    # conveniences mirroring the raw event
    @property
    def type(self) -> int:
        return self.evt.type

    @property
    def name(self) -> str:
        return self.evt.name

    @property
    def ts(self) -> int:
        return self.evt.ts

    @property
    def tid(self) -> int:
        return self.evt.tid

    @property
    def num(self) -> int:
        return self.evt.num

    def get(self, field: str, default: Any = None) -> Any:
        """The value of a field by its text (``proc.aname[2]``); slow path for tests and tools."""
        return self.inspector.field(self, field, default)

    def __repr__(self) -> str:
        t = self.thread
        return f"<InspectedEvent #{self.evt.num} {self.evt.name} tid={self.evt.tid} " \
               f"proc={t.comm if t is not None else None!r} fd={self.fdnum}>"
