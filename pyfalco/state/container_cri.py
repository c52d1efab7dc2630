# SPDX-License-Identifier: Apache-2.0
"""Container metadata from the CRI runtime (containerd, CRI-O): ``enrich_from_cri(info, socket)`` is
what ``ContainerManager`` calls from its background thread. It fills a ``ContainerInfo`` in from
ContainerStatus (when the runtime's files on disk did not describe the container) and the pod's
labels and IP from PodSandboxStatus (cached per sandbox). Clients are kept per socket."""

from __future__ import annotations

import json
import logging
import threading
import time

from .cgroups import TYPE_CONTAINERD, TYPE_CRIO
from .container_info import Mount, oci_host_namespaces, oci_privileged, set_image
from .cri import GRPC_NOT_FOUND, GRPC_UNIMPLEMENTED, NAMESPACE_NODE, CRIClient, CRIError

log = logging.getLogger("pyfalco.state.cri")

__all__ = ["enrich_from_cri", "client_for", "forget"]

_clients: dict[str, CRIClient] = {}
_runtime_names: dict[str, str] = {}
_sandboxes: dict[tuple[str, str], tuple[float, dict | None]] = {}
_SANDBOX_TTL = 30.0
_clients_lock = threading.Lock()


def client_for(path: str) -> CRIClient:
    """The client of one socket (made once, then shared)."""
    with _clients_lock:
        c = _clients.get(path)
        if c is None:
            c = _clients[path] = CRIClient(path, timeout=2.0)
        return c


def forget(path: str | None = None) -> None:
    """Drops the cached clients and sandboxes (of one socket, or all)."""
    with _clients_lock:
        for p in [p for p in _clients if path is None or p == path]:
            _clients.pop(p).close()
            _runtime_names.pop(p, None)
        for key in [k for k in _sandboxes if path is None or k[0] == path]:
            del _sandboxes[key]
        for p in [p for p in _unsupported if path is None or p == path]:
            del _unsupported[p]


def _runtime_type(client: CRIClient) -> str:
    name = _runtime_names.get(client.path)
    if name is None:
        try:
            name = client.version()["runtime_name"]
        except CRIError:
            name = ""
        _runtime_names[client.path] = name
    return TYPE_CRIO if "cri-o" in name.lower() else TYPE_CONTAINERD if "containerd" in name.lower() else ""


def _sandbox(client: CRIClient, sandbox_id: str) -> dict | None:
    key = (client.path, sandbox_id)
    hit = _sandboxes.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[0] < _SANDBOX_TTL:
        return hit[1]
    try:
        status = client.pod_sandbox_status(sandbox_id)
    except CRIError as err:
        if err.code != GRPC_NOT_FOUND:
            raise
        status = None
    if len(_sandboxes) > 1024:
        _sandboxes.clear()
    _sandboxes[key] = (now, status)
    return status


def _set_pod(info, sandbox: dict) -> None:
    info.pod_sandbox_id = info.pod_sandbox_id or sandbox["id"]
    info.pod_name = info.pod_name or sandbox["name"] or None
    info.pod_namespace = info.pod_namespace or sandbox["namespace"] or None
    info.pod_uid = info.pod_uid or sandbox["uid"] or None
    info.pod_labels = dict(sandbox["labels"])
    info.pod_ip = sandbox.get("ip") or info.pod_ip
    if info.host_network is None:
        info.host_network = sandbox.get("namespace_options", {}).get("network") == NAMESPACE_NODE


def _from_status(info, status: dict) -> None:
    if not info.name or info.name == info.id[:12]:
        info.name = status["name"] or info.name
    image = status["image"]
    image_id = status["image_id"] or status["image_ref"]
    if image.startswith("sha256:"):          # an image id, not a name
        image_id, image = image_id or image, ""
    if "@" in image_id:
        image_id = image_id.rsplit("@", 1)[1]
    set_image(info, image or info.image, image_id if image_id.startswith("sha256:") else None)
    if status["started_at"] or status["created_at"]:
        info.start_ts = status["started_at"] or status["created_at"]
    labels = status["labels"]
    info.labels = dict(labels)
    info.pod_name = info.pod_name or labels.get("io.kubernetes.pod.name")
    info.pod_namespace = info.pod_namespace or labels.get("io.kubernetes.pod.namespace")
    info.pod_uid = info.pod_uid or labels.get("io.kubernetes.pod.uid")
    if status["mounts"] and not info.mounts:
        prop = {0: "rprivate", 1: "rslave", 2: "rshared"}
        info.mounts = [Mount(m["host_path"], m["container_path"], "ro" if m["readonly"] else "rw",
                             not m["readonly"], prop.get(m["propagation"], "")) for m in status["mounts"]]
    # verbose info (containerd, CRI-O): {"sandboxID": ..., "runtimeSpec": {OCI spec}, ...}
    try:
        detail = json.loads(status["info"].get("info") or "{}")
    except ValueError:
        detail = {}
    if isinstance(detail, dict):
        info.pod_sandbox_id = info.pod_sandbox_id or detail.get("sandboxID") or None
        spec = detail.get("runtimeSpec")
        if isinstance(spec, dict):
            ann = spec.get("annotations") or {}
            info.pod_sandbox_id = info.pod_sandbox_id or ann.get("io.kubernetes.cri.sandbox-id") or None
            if info.privileged is None:
                info.privileged = oci_privileged(spec)
            if info.host_pid is None:
                oci_host_namespaces(info, spec)


_unsupported: dict[str, float] = {}     # socket -> until when it is not asked again
_UNSUPPORTED_FOR = 60.0


def enrich_from_cri(info, sock_path: str) -> bool:
    """Fills ``info`` (a ContainerInfo) from the CRI runtime on ``sock_path``; True when it knew the id.

    Runs in the ContainerManager's worker thread (it blocks for at most a few seconds). A socket
    without the CRI service (Docker's containerd has the CRI plugin disabled) is left alone for a
    minute."""
    until = _unsupported.get(sock_path)
    if until is not None:
        if time.monotonic() < until:
            return False
        del _unsupported[sock_path]
    client = client_for(sock_path)
    try:
        found = False
        need_status = not info.pod_sandbox_id or not info.image or not info.name
        if need_status or not info.labels:
            try:
                status = client.container_status(info.id, verbose=need_status)
            except CRIError as err:
                if err.code not in (GRPC_NOT_FOUND, 2):   # containerd answers "not found" with Unknown too
                    raise
                status = None
            if status is not None and status["id"]:
                _from_status(info, status)
                found = True
            elif info.pod_sandbox_id in (None, info.id):
                # the pod's sandbox ("pause") container itself: named after the pod
                sandbox = _sandbox(client, info.id)
                if sandbox is not None and sandbox["id"]:
                    info.pod_sandbox_id = sandbox["id"]
                    info.name = info.name if info.name and info.name != info.id[:12] else sandbox["name"]
                    if not info.start_ts and sandbox["created_at"]:
                        info.start_ts = sandbox["created_at"]
                    found = True
        if info.pod_sandbox_id:
            sandbox = _sandbox(client, info.pod_sandbox_id)
            if sandbox is not None:
                _set_pod(info, sandbox)
                found = True
        if found:
            if not info.type:
                info.type = _runtime_type(client)
            info.source = (info.source + "+" if info.source else "") + "cri:" + sock_path
        return found
    except CRIError as err:
        if err.code == GRPC_UNIMPLEMENTED:
            _unsupported[sock_path] = time.monotonic() + _UNSUPPORTED_FOR
        log.debug("CRI %s: %s: %s", sock_path, info.id[:12], err)
        return False
