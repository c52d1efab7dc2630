# SPDX-License-Identifier: Apache-2.0
"""user.* and group.* fields (libsinsp's sinsp_filter_check_user / group): the users table
looked up by the event thread's ids (in its container's user namespace when it has one)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .proc import on_thread as _on
from .stateview import FieldEvent

__all__ = ["EXTRACTORS", "INDEXED", "KEYED", "UNWRAPPED"]

_self = "self"


def user_name(ie: FieldEvent):
    t = ie.thread
    u = ie.inspector.users.user(t) if t is not None else None
    return u.name if u is not None else None


def _user_attr(attr: str, login: bool = False):
    def f(ie: FieldEvent):
        t = ie.thread
        if t is None:
            return None
        if login:
            if t.loginuid == 0xFFFFFFFF:
                return None
            u = ie.inspector.users.user(t, t.loginuid)
        else:
            u = ie.inspector.users.user(t)
        return getattr(u, attr) if u is not None else None
    return f


def user_loginuid(ie: FieldEvent):
    t = ie.thread
    if t is None:
        return None
    return -1 if t.loginuid == 0xFFFFFFFF else t.loginuid


def group_name(ie: FieldEvent):
    t = ie.thread
    g = ie.inspector.users.group(t) if t is not None else None
    return g.name if g is not None else None


EXTRACTORS: dict[str, Callable] = {
    "user.uid": _on(lambda t, ie: t.uid, _self), "user.name": user_name,
    "user.homedir": _user_attr("homedir"), "user.shell": _user_attr("shell"),
    "user.loginuid": user_loginuid, "user.loginname": _user_attr("name", login=True),
    "group.gid": _on(lambda t, ie: t.gid, _self), "group.name": group_name,
}

INDEXED: dict[str, Callable] = {}
KEYED: dict[str, Callable[[Any], Callable]] = {}
UNWRAPPED: frozenset = frozenset()
