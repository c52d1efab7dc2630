# SPDX-License-Identifier: Apache-2.0
"""Users and groups, resolved inside the root of the process that asks (a container's /etc/passwd).

The host's tables come from the initial state (the /proc scan or the capture's user list). For a
thread in a container (or chroot), a live inspector reads ``/proc/<pid>/root/etc/{passwd,group}``
once per container and caches it; a replay has only the capture's tables.
"""

from __future__ import annotations

from ..initial_state import GroupInfo, UserInfo

__all__ = ["UserTable"]


class UserTable:
    def __init__(self, users: dict[int, UserInfo] | None = None, groups: dict[int, GroupInfo] | None = None,
                 live: bool = False, max_roots: int = 1024):
        self.host_users = dict(users or {})
        self.host_groups = dict(groups or {})
        self.live = live
        self._roots: dict[str, tuple[dict[int, UserInfo], dict[int, GroupInfo]]] = {}
        self.max_roots = max_roots

    def _tables(self, t) -> tuple[dict[int, UserInfo], dict[int, GroupInfo]]:
        key = t.container_id
        if not key and t.proc.root in ("/", ""):
            return self.host_users, self.host_groups
        if not key:
            key = "root:" + t.proc.root
        hit = self._roots.get(key)
        if hit is not None:
            return hit
        if not self.live:
            return self.host_users, self.host_groups
        from ..procscan import PROC, read_groups, read_users
        root = f"{PROC}/{t.pid}/root"     # $HOST_ROOT/proc in a container (hostroot.py)
        users, groups = read_users(root), read_groups(root)
        if not users and not groups:
            # the process is gone or its root unreadable: don't cache a miss for good
            return users, groups
        if len(self._roots) >= self.max_roots:
            self._roots.pop(next(iter(self._roots)))
        self._roots[key] = (users, groups)
        return users, groups

    def user(self, t, uid: int | None = None) -> UserInfo | None:
        if t is None:
            return None
        return self._tables(t)[0].get(t.uid if uid is None else uid)

    def group(self, t, gid: int | None = None) -> GroupInfo | None:
        if t is None:
            return None
        return self._tables(t)[1].get(t.gid if gid is None else gid)

    def forget(self, container_id: str) -> None:
        self._roots.pop(container_id, None)
