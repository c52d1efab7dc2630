# SPDX-License-Identifier: Apache-2.0
"""container.* and k8s.* fields (libsinsp's container and k8s filterchecks): the container of the
event's thread, with the metadata the container model holds for it."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from typing import Any

from .stateview import FieldEvent

__all__ = ["EXTRACTORS", "INDEXED", "KEYED", "UNWRAPPED", "container_id"]


def container_id(ie: FieldEvent):
    t = ie.thread
    if t is None:
        return None
    cid = t.container_id
    return cid[:12] if cid else "host"


# as an expression of ``evt``, written into compiled rule buckets (see fields.proc.proc_name.inline)
container_id.inline = ('(None if evt.thread is None else '  # type: ignore[attr-defined]
                       '(evt.thread.container_id[:12] if evt.thread.container_id else "host"))')


def container_full_id(ie: FieldEvent):
    t = ie.thread
    if t is None:
        return None
    return t.container_id or "host"


def _cinfo(ie: FieldEvent):
    t = ie.thread
    if t is None or not t.container_id:
        return None
    return ie.inspector.container(t)


def _c(attr: str, host_value: Any = None):
    def f(ie: FieldEvent):
        t = ie.thread
        if t is None:
            return None
        if not t.container_id:
            return host_value
        info = ie.inspector.container(t)
        v = getattr(info, attr, None) if info is not None else None
        return v if v not in ("", {}) else None
    return f


def container_duration(ie: FieldEvent):
    info = _cinfo(ie)
    return ie.evt.ts - info.start_ts if info is not None and info.start_ts else None


def container_mounts(ie: FieldEvent):
    info = _cinfo(ie)
    if info is None:
        return None
    return ",".join(f"{m.source}:{m.dest}:{m.mode}:{'true' if m.rdwr else 'false'}:{m.propagation}"
                    for m in info.mounts)


def make_container_mount(attr: str | None, arg: str):
    """container.mount[key] and container.mount.<attr>[key]: the key is a mount's index or a glob
    (libs' sinsp_container_info::mount_by_source/mount_by_dest: fnmatch, ``*`` crosses ``/``) on
    the mount's destination for ``.source`` and on its source for every other field; the first
    mount that matches."""
    # fnmatch's pattern language without FNM_PATHNAME/FNM_PERIOD, as libs' glob_match calls it
    match = None if arg.isdigit() else re.compile(fnmatch.translate(arg)).match
    by_dest = attr == "source"

    def f(ie: FieldEvent):
        info = _cinfo(ie)
        if info is None:
            return None
        mounts = info.mounts
        m = None
        if match is None:
            i = int(arg)
            m = mounts[i] if i < len(mounts) else None
        else:
            for x in mounts:
                if match(x.dest if by_dest else x.source):
                    m = x
                    break
        if m is None:
            return None
        if attr is None:
            return f"{m.source}:{m.dest}:{m.mode}:{'true' if m.rdwr else 'false'}:{m.propagation}"
        if attr == "rdwr":
            return "true" if m.rdwr else "false"
        return getattr(m, attr) or None
    return f


def make_label(which: str, arg: str):
    def f(ie: FieldEvent):
        info = _cinfo(ie)
        if info is None:
            return None
        return getattr(info, which).get(arg)
    return f


def _labels(which: str):
    def f(ie: FieldEvent):
        info = _cinfo(ie)
        if info is None:
            return None
        labels = getattr(info, which)
        return ", ".join(f"{k}:{v}" for k, v in labels.items()) if labels else None
    return f


def k8s_sandbox(full: bool):
    def f(ie: FieldEvent):
        info = _cinfo(ie)
        if info is None or not info.pod_sandbox_id:
            return None
        return info.pod_sandbox_id if full else info.pod_sandbox_id[:12]
    return f


EXTRACTORS: dict[str, Callable] = {
    "container.id": container_id, "container.full_id": container_full_id,
    "container.name": _c("name", "host"), "container.image": _c("image"), "container.image.id": _c("image_id"),
    "container.type": _c("type"), "container.privileged": _c("privileged"), "container.mounts": container_mounts,
    "container.image.repository": _c("image_repository"), "container.image.tag": _c("image_tag"),
    "container.image.digest": _c("image_digest"), "container.start_ts": _c("start_ts"),
    "container.duration": container_duration, "container.ip": _c("ip"), "container.cni.json": _c("cni_json"),
    "container.host_pid": _c("host_pid"), "container.host_network": _c("host_network"),
    "container.host_ipc": _c("host_ipc"), "container.labels": _labels("labels"),
    "k8s.pod.name": _c("pod_name"), "k8s.ns.name": _c("pod_namespace"), "k8s.pod.id": _c("pod_uid"),
    "k8s.pod.uid": _c("pod_uid"), "k8s.pod.sandbox_id": k8s_sandbox(False),
    "k8s.pod.full_sandbox_id": k8s_sandbox(True), "k8s.pod.labels": _labels("pod_labels"),
    "k8s.pod.ip": _c("pod_ip"), "k8s.pod.cni.json": _c("cni_json"),
}

INDEXED: dict[str, Callable] = {}

KEYED: dict[str, Callable[[Any], Callable]] = {
    "container.mount": lambda arg: make_container_mount(None, arg),
    "container.mount.source": lambda arg: make_container_mount("source", arg),
    "container.mount.dest": lambda arg: make_container_mount("dest", arg),
    "container.mount.mode": lambda arg: make_container_mount("mode", arg),
    "container.mount.rdwr": lambda arg: make_container_mount("rdwr", arg),
    "container.mount.propagation": lambda arg: make_container_mount("propagation", arg),
    "container.label": lambda arg: make_label("labels", arg),
    "k8s.pod.label": lambda arg: make_label("pod_labels", arg),
}

#: returned as they are by make_accessor (they cannot raise)
UNWRAPPED = frozenset((container_id,))
