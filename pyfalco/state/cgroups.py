# SPDX-License-Identifier: Apache-2.0
"""Container ids from cgroup paths (docker, podman/libpod, containerd/CRI, CRI-O, systemd scopes).

A process is in a container when one of its cgroup paths names one. The runtimes' styles:

* docker: ``/docker/<64 hex>``, ``/system.slice/docker-<64 hex>.scope``
* podman: ``/libpod_parent/libpod-<64 hex>``, ``/machine.slice/libpod-<64 hex>.scope[/container]``
* containerd (CRI): ``/kubepods/.../<64 hex>``, ``.../cri-containerd-<64 hex>.scope``
* containerd (plain, ``ctr``): ``/<namespace>/<64 hex>``
* CRI-O: ``/kubepods/.../crio-<64 hex>[.scope]``

``libpod-conmon-<id>`` (podman's monitor, which runs on the host) is not a container.
"""

from __future__ import annotations

import re

__all__ = ["container_from_cgroups", "TYPE_DOCKER", "TYPE_PODMAN", "TYPE_CONTAINERD", "TYPE_CRIO"]

TYPE_DOCKER, TYPE_PODMAN, TYPE_CONTAINERD, TYPE_CRIO = "docker", "podman", "containerd", "cri-o"

_ID = re.compile(r"(?:^|[-_/:])([0-9a-f]{64})(?:\.scope)?$")
_PREFIX = (("libpod-conmon-", None), ("libpod-", TYPE_PODMAN), ("docker-", TYPE_DOCKER),
           ("cri-containerd-", TYPE_CONTAINERD), ("crio-conmon-", None), ("crio-", TYPE_CRIO),
           ("containerd-", TYPE_CONTAINERD))

_cache: dict = {}
#: id(cgroups tuple) -> (that tuple, answer): the tuple is held, so its id stays its own
_by_id: dict = {}


def _remember(cgroups, res) -> None:
    if len(_by_id) > 4096:
        _by_id.clear()
    _by_id[id(cgroups)] = (cgroups, res)


def _from_path(path: str) -> tuple[str, str] | None:
    comps = [c for c in path.split("/") if c]
    # podman with systemd puts the payload in .../libpod-<id>.scope/container
    for comp in reversed(comps[-3:]):
        m = _ID.search(comp)
        if m is None:
            continue
        cid = m.group(1)
        head = comp[:m.start(1)]
        for prefix, rtype in _PREFIX:
            if head.endswith(prefix):
                return (cid, rtype) if rtype is not None else None
        if head and not head.endswith("/"):
            # some other systemd scope, e.g. "foo-<id>.scope": a container of an unknown runtime
            return cid, ""
        parents = comps[:comps.index(comp)]
        if "docker" in parents:
            return cid, TYPE_DOCKER
        if any(p.startswith("kubepods") for p in parents):
            return cid, ""            # CRI: containerd or CRI-O, told apart by the metadata lookup
        if "libpod_parent" in parents:
            return cid, TYPE_PODMAN
        return cid, TYPE_CONTAINERD   # /<containerd namespace>/<id>
    return None


def container_from_cgroups(cgroups) -> tuple[str, str] | None:
    """(full container id, runtime type or "") of a thread's cgroups [(subsystem, path), ...], or None."""
    # by identity first: Thread.set_cgroups shares one tuple per distinct list, and hashing a
    # 14-pair tuple again for every clone/execve costs more than the rest of this function
    same = _by_id.get(id(cgroups))
    if same is not None and same[0] is cgroups:
        return same[1]
    hit = _cache.get(cgroups)
    if hit is not None or cgroups in _cache:
        _remember(cgroups, hit)
        return hit
    res = None
    for _subsys, path in cgroups:
        if len(path) < 64:
            continue
        res = _from_path(path)
        if res is not None:
            break
    if len(_cache) > 4096:
        _cache.clear()
    _cache[cgroups] = res
    _remember(cgroups, res)
    return res
